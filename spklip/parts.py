"""Which part of a SPKLIP visual encoder a profiled layer belongs to: one home for the mapping.

``report`` and ``compare`` group the energy of a SPKLIP checkpoint by model part.
The profiled module is the visual encoder (``model.visual``), so layer names are
relative to it (a leading ``visual.`` is accepted too). The parts, in display order
(:data:`PARTS`):

* **HSFE** (``hsfe`` and everything under it): the front end, ANN or spiking, from the
  input pooling through the MTF branches, spatial attention, head and trunk to the
  spiking front end's ``out_lif``;
* **CNN** (``starnet.spatial.*`` except the heads below): the per-block CNN, i.e.
  STAR-Net's modified ResNet for the ANN, the spiking MS-ResNet (or the plain
  spiking CNN's ``stages``) for the FSVE variants: ``stem``, ``layer1`` ... ``layer4``;
* **temporal Transformer** (``starnet.position``, ``starnet.temporal.*``): the block
  position embedding and the Transformer over the blocks' embeddings;
* **heads** (``starnet.spatial.{attnpool, avgpool, flatten, head, head_lif}`` and the
  no-STAR-Net ablation's ``starnet.{pool, flatten, proj}``): what turns the CNN's
  feature map into one embedding per block, i.e. the attention pool of the ANN, the
  global pool, flatten, final linear and its LIF of the spiking CNN, and
  BlockPooling's pool and projection. They are a part of their own because they are
  not feature extraction but the step from a feature map to the block embedding, which
  differs most between the variants (attention pool, global pool + linear, or pool +
  projection);
* **other**: any name this mapping does not know. No layer of the current SPKLIP
  variants falls here: energy under "other" means the mapping needs a new prefix.

Converted checkpoints (``spklip-converted``, :mod:`convert`) replace the
converted units by a rate-coded run (:class:`~convert.ratecode.RateCoded`)
with children ``pre`` (the static layers on the analog input), ``net`` (neurons and
everything after them) and ``readout`` (the accumulation over T steps):

* a run of the CNN sits at ``starnet.spatial.<first unit>`` (e.g.
  ``starnet.spatial.stem.net.1.0.conv1``): all of it is CNN, whatever units it holds;
* a run that starts with the HSFE sits at ``hsfe.snn`` and traces
  ``Sequential(HSFE head + trunk, stem, layer1, ...)``, so ``hsfe.snn.pre.K.*`` and
  ``hsfe.snn.net.K.*`` are HSFE for K = 0 and CNN for K >= 1 (the run's K-th unit).
  The run's own rows cannot be placed by name alone: the residual additions of the
  traced graph (``hsfe.snn.net.spike_add_N``), the ``readout`` and the wrapper
  ``hsfe.snn`` itself. :func:`part_of` calls them HSFE (where the run starts);
  :func:`assign_parts`, which sees all names in network order, gives an addition the
  part of the layer just before it (the add closes that layer's residual block) and the
  readout and wrapper the part of the run's last unit (they work on its output).

Zoo checkpoints (:mod:`spklip_energy.zoo`) are not SPKLIP models and get no part
grouping (the report's ``parts`` is None for them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: The parts, in display order.
PARTS = ("HSFE", "CNN", "temporal Transformer", "heads", "other")

#: modules of the per-block CNN's embedding head (``starnet.spatial.<name>``)
_CNN_HEADS = frozenset({"attnpool", "avgpool", "flatten", "head", "head_lif"})
#: modules of BlockPooling, the no-STAR-Net ablation (``starnet.<name>``): pool, flatten and projection
_POOLING_HEADS = frozenset({"pool", "flatten", "proj"})
_TEMPORAL = frozenset({"position", "temporal"})
#: a unit of a converted run that starts at the HSFE: ``hsfe.snn.(pre|net).K...``
_RUN_UNIT = re.compile(r"hsfe\.snn\.(?:pre|net)\.(\d+)(?:\.|$)")
_RUN = re.compile(r"hsfe\.snn(?:\.|$)")


def _local(name: str) -> str:
    return name[len("visual.") :] if name.startswith("visual.") else name


def part_of(name: str) -> str:
    """The part (one of :data:`PARTS`) of the layer called ``name`` in the visual encoder.

    Names of a converted HSFE run that only their neighbours can place (see the
    module's documentation) are called HSFE here; :func:`assign_parts` places them.
    """
    local = _local(name)
    head, _, rest = local.partition(".")
    if head == "hsfe":
        unit = _RUN_UNIT.match(local)
        return "CNN" if unit is not None and int(unit.group(1)) >= 1 else "HSFE"
    if head == "starnet" and rest:
        first, _, sub = rest.partition(".")
        if first == "spatial":
            return "heads" if sub.partition(".")[0] in _CNN_HEADS else "CNN"
        if first in _TEMPORAL:
            return "temporal Transformer"
        if first in _POOLING_HEADS:
            return "heads"
    return "other"


def assign_parts(names: Sequence[str]) -> list[str]:
    """The part of each of ``names``, given in network (profiling) order: :func:`part_of`, with the
    rows of a converted HSFE run that name no unit placed by their neighbours: a residual addition
    takes the part of the nearest unit row before it, the readout and the wrapper that of the run's
    last unit row."""
    parts = [part_of(n) for n in names]
    units = [i for i, n in enumerate(names) if _RUN_UNIT.match(_local(n))]
    if not units:
        return parts
    last = parts[units[-1]]
    for i, n in enumerate(names):
        local = _local(n)
        if not _RUN.match(local) or _RUN_UNIT.match(local):
            continue
        if local in ("hsfe.snn", "hsfe.snn.readout"):
            parts[i] = last
        else:
            before = [j for j in units if j < i]
            if before:
                parts[i] = parts[before[-1]]
    return parts


__all__ = ["PARTS", "assign_parts", "part_of"]
