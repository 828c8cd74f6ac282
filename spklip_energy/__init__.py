"""spklip-energy: deployment and energy analysis for spike-camera video-language models.

Subpackages: :mod:`spklip_energy.data` (spike streams, camera simulator, datasets),
:mod:`spklip_energy.fsve` (spiking visual encoder), :mod:`spklip_energy.convert`
(ANN to SNN conversion), :mod:`spklip_energy.energy` (operation counting and
cost models), :mod:`spklip_energy.export` (ONNX, NIR, Lava netx) and
:mod:`spklip_energy.reports` (tables and plots).
"""

__version__ = "0.1.0"

import logging as _logging

# torch warns on every CPU-only start that Triton is absent when spikingjelly's
# kernels are looked up; it is harmless here and would clutter every report.
_logging.getLogger("torch._library.triton").setLevel(_logging.ERROR)
