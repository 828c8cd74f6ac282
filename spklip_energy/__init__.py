"""spklip-energy: deployment and energy analysis for spike-camera video-language models.

This package holds the ``spklip-energy`` CLI, the jobs it runs across packages (report and compare
analysis, the A.7 benchmark, the demo) and the plumbing every package shares (errors, options, limits,
atomic writes, progress, checkpoints, statistics, distributed runs). The domain packages are its
siblings (docs/architecture.md): :mod:`spikedata` (spike streams, camera simulator, datasets),
:mod:`spklip` (the ANN SPKLIP and its training), :mod:`fsve` (spiking visual encoder), :mod:`convert`
(ANN to SNN conversion), :mod:`energy` (operation counting, cost and energy models, the report record),
:mod:`export` (ONNX, NIR, Lava netx) and :mod:`reports` (tables and plots).
"""

__version__ = "0.1.0"

import logging as _logging

# torch warns on every CPU-only start that Triton is absent when spikingjelly's
# kernels are looked up; it is harmless here and would clutter every report.
_logging.getLogger("torch._library.triton").setLevel(_logging.ERROR)
