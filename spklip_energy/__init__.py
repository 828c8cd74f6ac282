"""spklip-energy: deployment and energy analysis for spike-camera video-language models.

Subpackages: :mod:`spikedata` (spike streams, camera simulator, datasets),
:mod:`fsve` (spiking visual encoder), :mod:`convert`
(ANN to SNN conversion), :mod:`energy` (operation counting and
cost models), :mod:`export` (ONNX, NIR, Lava netx) and
:mod:`reports` (tables and plots).
"""

__version__ = "0.1.0"

import logging as _logging

# torch warns on every CPU-only start that Triton is absent when spikingjelly's
# kernels are looked up; it is harmless here and would clutter every report.
_logging.getLogger("torch._library.triton").setLevel(_logging.ERROR)
