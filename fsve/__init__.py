"""The Full-Spiking Visual Encoder (paper section 3.5, appendix A.5) and its hybrid.

* :mod:`.neurons`: LIF (Eq. 7-8), SN thresholding (Eq. 9), fixed-threshold spikes;
* :mod:`.msresnet`: spikingjelly's MS-ResNet with those neurons and tdBN;
* :mod:`.esdsa`: E-SDSA attention and the spiking temporal Transformer (Eq. 9-11);
* :mod:`.encoder`: the spiking replacement of STAR-Net (``fsve-hybrid``, ``fsve-full``);
* :mod:`.firing`: per-layer firing rates for the training log;
* :mod:`.count_rules`: energy-counting rules for the layers above.

Select a variant with ``SPKLIPConfig.model`` (``--model fsve-full`` on the CLI).
"""

from . import count_rules as _count_rules  # noqa: F401  (registers rules)
from .encoder import SpikingStarNet
from .esdsa import ESDSA, ESDSABlock, SpikeMatMul, SpikingTransformer
from .msresnet import SpikingCNN, use_tdbn
from .neurons import Heaviside, SpikeNorm, lif_kernel, make_lif, rect_spike

__all__ = [
    "ESDSA",
    "ESDSABlock",
    "Heaviside",
    "SpikeMatMul",
    "SpikeNorm",
    "SpikingCNN",
    "SpikingStarNet",
    "SpikingTransformer",
    "lif_kernel",
    "make_lif",
    "rect_spike",
    "use_tdbn",
]
