"""spklip-energy: deployment and energy analysis for spike-camera video-language models.

Subpackages: :mod:`spklip_energy.data` (spike streams, camera simulator, datasets),
:mod:`spklip_energy.fsve` (spiking visual encoder), :mod:`spklip_energy.convert`
(ANN to SNN conversion), :mod:`spklip_energy.energy` (operation counting and
cost models), :mod:`spklip_energy.export` (ONNX, NIR, Lava netx) and
:mod:`spklip_energy.reports` (tables and plots).
"""

__version__ = "0.1.0"
