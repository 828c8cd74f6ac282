"""ANN-to-SNN conversion of SPKLIP's ReLU CNNs (paper appendix A.7), with threshold balancing.

* :mod:`.layers`: convertible units (``hsfe``, ``stem``, ``layer1``..``layer4``), groups, runs;
* :mod:`.calibrate`: spikingjelly's ``ann2snn.RateCodingRecipe`` fed from spike clips
  (methods ``max``, ``percentile``, ``robust``);
* :mod:`.ratecode`: the rate-coded wrapper (T steps, mean output, reset per call);
* :mod:`.structure`: :func:`convert_spklip` and :func:`apply_conversion` (rebuild from a card);
* :mod:`.sweep`: the library side of ``spklip-energy convert`` (accuracy and energy vs T);
* :mod:`.count_rules`: energy counting of scaled spikes as synaptic operations.

Importing this package registers its counting rules. See ``docs/convert.md``.
"""

from . import count_rules as _count_rules  # noqa: F401  (registers rules)
from .calibrate import METHODS
from .layers import CNN, GROUPS, NOT_CONVERTIBLE, UNITS, ConversionError, parse_layers, runs
from .ratecode import RateCoded, set_timesteps
from .structure import apply_conversion, convert_module, convert_spklip, converted_runs

__all__ = [
    "CNN",
    "GROUPS",
    "METHODS",
    "NOT_CONVERTIBLE",
    "UNITS",
    "ConversionError",
    "RateCoded",
    "apply_conversion",
    "convert_module",
    "convert_spklip",
    "converted_runs",
    "parse_layers",
    "runs",
    "set_timesteps",
]
