"""The ANN SPKLIP model: HSFE + STAR-Net visual encoder, text tower, contrastive loss.

Importing this package registers the energy-counting rules of its own layers.
"""

from . import count_rules as _count_rules  # noqa: F401  (registers rules)
from .config import PRESETS, SPKLIPConfig, apply_overrides, preset_config
from .model import SPKLIP, SPKLIPOutput, build_spklip

__all__ = ["PRESETS", "SPKLIP", "SPKLIPConfig", "SPKLIPOutput", "apply_overrides", "build_spklip", "preset_config"]
