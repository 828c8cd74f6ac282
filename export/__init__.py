"""Deployment exports of SPKLIP checkpoints.

Now: ONNX (``visual.onnx`` + ``text.onnx`` + ``export.json``, optional
onnxruntime verification); see ``docs/export.md``. Planned: NIR, Lava netx and
the fixed-point CUBA-LIF simulator, as further entries of :data:`FORMATS`.
"""

from .pipeline import FORMATS, export_checkpoint

__all__ = ["FORMATS", "export_checkpoint"]
