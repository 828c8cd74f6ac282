"""``export --format nir`` of a spiking front end (``fsve.hsfe=spiking``): its chain parts as NIR graphs.

The spiking HSFE (:class:`~fsve.hsfe.SpikingHSFE`) is written as up to
three graphs beside ``visual_cnn.nir``, each for one time step of its dynamics, with
the conventions of :mod:`.nir_export` (LIF mapping, BN/tdBN folded into the
preceding convolution, membrane sums as several edges into one node). Node names
are module paths inside ``visual.hsfe``.

* ``hsfe_mtf.nir`` - input: one step's binary frames of one temporal block
  ``[2r+1, H', W']`` (after the host's OR pooling and step encoding, below); output:
  the branches' spike maps ``[branches, H', W']``. Per branch ``k``:
  ``branches.k.conv1`` (temporal mask folded in, tdBN folded in) reads all frames
  with zero weights outside the branch's frame range (NIR has no slicing node), a
  LIF, ``branches.k.conv2`` with zero weights and bias outside output channel
  ``k``, and a LIF over all ``branches`` channels of which only channel ``k`` can
  fire (the others receive nothing and rest at 0 below the threshold). A node
  ``concat``, an identity 1x1 convolution, sums the branches' LIFs, which is their
  concatenation (NIR has no concatenation node, and the importers read one edge
  into an output node).
* ``hsfe_sa_gate.nir`` (only with ``hsfe.sa``) - input: those spike maps; output:
  the SA's gate spikes ``[branches, H', W']`` (``sa.conv1`` -> LIF -> ``sa.conv2``
  -> ``sa.gate``).
* ``hsfe_trunk.nir`` - input: the SA's output ``[branches, H', W']``; output: the
  front end's spikes ``[features, H', W']``, which ``visual_cnn.nir`` reads. The
  head convolution's membrane current, the MS-ResNet blocks (membrane shortcuts:
  several edges into one LIF) and the long skip, for which a second copy of the
  head convolution (``head.long_skip``) adds the head's current again (NIR edges
  carry no weights), into ``out_lif``.

Host side, per step (what no NIR node holds):

* before ``hsfe_mtf``: the temporal blocks of the clip, the ``hsfe.input_pool``
  max pool (an OR of binary spikes; NIR has no max pool), and the step encoding
  (``fsve.hsfe_encoding``: ``subwindows`` zeroes the frames outside step ``t``'s
  slice, ``repeat`` presents the whole block at every step);
* between ``hsfe_sa_gate`` and ``hsfe_trunk``: ``visual.hsfe.sa``'s product of the
  branch spikes and their gate (an AND of two spike maps; NIR has no product node).

:func:`verify_front_end` imports each part with snnTorch and spikingjelly and
compares its spikes and outputs with the project's modules on the part's real
inputs from test clips (:func:`.nir_verify.compare_importers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn as nn

from spklip.hsfe import feature_size, temporal_blocks
from spklip.io import LoadedSPKLIP
from spklip_energy.errors import ConfigError

from .nir_export import _Graph, neuron_node
from .nir_verify import compare_importers

PATH = "visual.hsfe"
MTF_FILE, GATE_FILE, TRUNK_FILE = "hsfe_mtf.nir", "hsfe_sa_gate.nir", "hsfe_trunk.nir"
PART_FILES = (MTF_FILE, GATE_FILE, TRUNK_FILE)


@dataclass
class Part:
    """One exported chain part: its graph, and the project's multi-step reference for verification."""

    name: str
    file: str
    graph: nir.NIRGraph
    reference: nn.Module
    input_meaning: str
    output_meaning: str
    #: neuron nodes whose NIR population is wider than the project's: name -> (channel, channels)
    widened: dict[str, tuple[int, int]] = field(default_factory=dict)


class _Reference(nn.Module):
    """The project's own modules of one part (registered under their names in the HSFE, so neuron names
    match the graph's nodes) and the HSFE's own method that runs them."""

    def __init__(self, hsfe: nn.Module, children: tuple[str, ...], run: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        for c in children:
            self.add_module(c, getattr(hsfe, c))
        self._run = run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)


def spiking_front_end(loaded: LoadedSPKLIP) -> nn.Module | None:
    """The checkpoint's :class:`SpikingHSFE`, or None when its front end is the ANN's."""
    from fsve.hsfe import SpikingHSFE

    hsfe = getattr(loaded.model.visual, "hsfe", None)
    return hsfe if isinstance(hsfe, SpikingHSFE) else None


def _graph(g: _Graph, kind: str) -> nir.NIRGraph:
    return g.graph(PATH, {"kind": kind})


def _conv(weight: torch.Tensor, bias: torch.Tensor, like: nn.Conv2d) -> nn.Conv2d:
    """A plain Conv2d with ``like``'s geometry holding ``weight`` and ``bias`` (for the graph walker)."""
    conv = nn.Conv2d(
        weight.shape[1],
        weight.shape[0],
        tuple(weight.shape[-2:]),
        stride=like.stride,
        padding=like.padding,
        dilation=like.dilation,
        bias=True,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


def _check_shapes(hsfe: nn.Module, frames: int, where: str) -> None:
    for k, br in enumerate(hsfe.branches):
        if br.conv1.groups != 1 or br.conv2.groups != 1:
            raise ConfigError(f"{where}.branches.{k}: grouped convolutions are not exported")
        if br.conv2.out_channels != 1:
            raise ConfigError(
                f"{where}.branches.{k}.conv2: {br.conv2.out_channels} output channels; the front end's "
                "branches each give one map"
            )
        if not 0 <= br.lo < br.hi <= frames:
            raise ConfigError(f"{where}.branches.{k}: frames [{br.lo}, {br.hi}) outside the block's {frames}")


def mtf_graph(hsfe: nn.Module, shape: tuple[int, int, int], kind: str) -> tuple[nir.NIRGraph, dict]:
    """Input ``[frames, H, W]`` -> the branches' spikes ``[branches, H, W]`` (module docstring); returns the
    graph and the widened LIF nodes."""
    from .cnn import fold_bn

    frames, h, w = shape
    _check_shapes(hsfe, frames, PATH)
    k_all = len(hsfe.branches)
    g = _Graph()
    inp = g.add("input", nir.Input(input_type={"input": np.array(shape)}), [])
    est: list[str] = []
    widened = {}
    for k, br in enumerate(hsfe.branches):
        p = f"{PATH}.branches.{k}"
        w1 = br.conv1.folded_weight().detach().double()
        full = w1.new_zeros(w1.shape[0], frames, *w1.shape[-2:])
        full[:, br.lo : br.hi] = w1
        b1 = br.conv1.bias.detach().double() if br.conv1.bias is not None else w1.new_zeros(w1.shape[0])
        terms, s = g.conv(f"{p}.conv1", _conv(full, b1, br.conv1), f"{p}.bn1", br.bn1, inp, shape)
        g.nodes[f"{p}.conv1"].metadata.update({"frames": [br.lo, br.hi], "temporal_mask": "folded into the weights"})
        terms = g.add(f"{p}.lif1", neuron_node(f"{p}.lif1", br.lif1, s), terms)
        w2, b2 = fold_bn(br.conv2, br.bn2)
        wide_w = w2.new_zeros(k_all, *w2.shape[1:])
        wide_w[k] = w2[0]
        wide_b = b2.new_zeros(k_all)
        wide_b[k] = b2[0]
        terms, s = g.conv(f"{p}.conv2", _conv(wide_w, wide_b, br.conv2), None, None, terms, s)
        g.nodes[f"{p}.conv2"].metadata.update({"folded_bn": f"{p}.bn2", "output_channel": k})
        est += g.add(f"{p}.lif2", neuron_node(f"{p}.lif2", br.lif2, s), terms)
        g.nodes[f"{p}.lif2"].metadata["fires_only_in_channel"] = k
        widened[f"branches.{k}.lif2"] = (k, k_all)
        if tuple(s[1:]) != (h, w):
            raise ConfigError(
                f"{p}: its maps are {s[1]}x{s[2]}, the block's {h}x{w}; the branches must keep the size "
                "to be concatenated"
            )
    # the importers read one edge into an output node: an identity 1x1 convolution sums the branches first
    concat = g.add(
        "concat",
        nir.Conv2d(
            input_shape=(h, w),
            weight=np.eye(k_all, dtype=np.float32)[:, :, None, None],
            stride=(1, 1),
            padding=(0, 0),
            dilation=(1, 1),
            groups=1,
            bias=np.zeros(k_all, dtype=np.float32),
            metadata={
                "role": "identity 1x1 convolution: the sum of the branch LIFs' spikes, which is their concatenation"
            },
        ),
        est,
    )
    g.add("output", nir.Output(output_type={"output": np.array((k_all, h, w))}), concat)
    return _graph(g, kind), widened


def gate_graph(hsfe: nn.Module, shape: tuple[int, int, int], kind: str) -> nir.NIRGraph:
    """The SA's gate: the branches' spikes ``[branches, H, W]`` -> gate spikes of the same shape."""
    sa = hsfe.sa
    g = _Graph()
    terms = g.add("input", nir.Input(input_type={"input": np.array(shape)}), [])
    children = [(n, getattr(sa, n)) for n in ("conv1", "bn1", "lif1", "conv2", "bn2", "gate")]
    terms, s = g.sequence(f"{PATH}.sa", children, terms, tuple(shape))
    g.add("output", nir.Output(output_type={"output": np.array(s)}), terms)
    return _graph(g, kind)


def trunk_graph(hsfe: nn.Module, shape: tuple[int, int, int], kind: str) -> nir.NIRGraph:
    """The SA's output ``[branches, H, W]`` -> the front end's spikes ``[features, H, W]``."""
    from fsve.hsfe import MSBlock

    g = _Graph()
    inp = g.add("input", nir.Input(input_type={"input": np.array(shape)}), [])
    head = list(hsfe.head.named_children())
    t, s = g.sequence(f"{PATH}.head", head, inp, tuple(shape))
    terms = t
    for i, block in hsfe.trunk.named_children():
        if type(block) is not MSBlock:
            raise ConfigError(f"{PATH}.trunk.{i}: {type(block).__name__} has no NIR place in the front end")
        body, s = g.sequence(f"{PATH}.trunk.{i}.body", list(block.body.named_children()), terms, s)
        terms = body + terms  # the membrane shortcut: both terms into the next node
    conv, norm = hsfe.head[0], hsfe.head[1]
    skip, _ = g.conv(f"{PATH}.head.long_skip", conv, f"{PATH}.head.1", norm, inp, tuple(shape))
    g.nodes[skip[0]].metadata.update(
        {
            "module": f"{PATH}.head.0",
            "role": "the long skip: the head's current a second time (NIR edges carry no weights)",
        }
    )
    terms = terms + skip
    terms = g.add(f"{PATH}.out_lif", neuron_node(f"{PATH}.out_lif", hsfe.out_lif, s), terms)
    g.add("output", nir.Output(output_type={"output": np.array(s)}), terms)
    return _graph(g, kind)


def _block_of(steps: torch.Tensor, encoding: str) -> torch.Tensor:
    """The pooled block whose encoded steps ``[T, N, F, H, W]`` are (sub-windows are disjoint slices)."""
    return steps[0] if encoding == "repeat" else steps.sum(0)


def front_end_parts(loaded: LoadedSPKLIP) -> list[Part]:
    """The spiking front end's parts (module docstring); ConfigError naming the module that has no form."""
    hsfe = spiking_front_end(loaded)
    if hsfe is None:
        return []
    cfg = loaded.model.cfg
    hsfe.eval()
    kind = str(loaded.card.get("kind"))
    h, w = feature_size(cfg.hsfe, cfg.height, cfg.width)
    k_all = len(hsfe.branches)
    encoding = cfg.fsve.hsfe_encoding
    mtf, widened = mtf_graph(hsfe, (cfg.hsfe.block_frames(), h, w), kind)
    parts = [
        Part(
            "mtf",
            MTF_FILE,
            mtf,
            _Reference(hsfe, ("branches",), lambda x: hsfe.mtf(_block_of(x, encoding))),
            f"one step's binary frames of a temporal block, OR-pooled, {encoding} encoding",
            "the branches' spike maps (concatenated)",
            widened,
        )
    ]
    if not isinstance(hsfe.sa, nn.Identity):
        parts.append(
            Part(
                "sa_gate",
                GATE_FILE,
                gate_graph(hsfe, (k_all, h, w), kind),
                _Reference(hsfe, ("sa",), hsfe.sa.gate_spikes),
                "the branches' spike maps",
                "the SA's gate spikes (the host multiplies the branch maps by them: visual.hsfe.sa)",
            )
        )
    parts.append(
        Part(
            "trunk",
            TRUNK_FILE,
            trunk_graph(hsfe, (k_all, h, w), kind),
            _Reference(hsfe, ("head", "trunk", "out_lif"), hsfe.trunk_spikes),
            "the SA's output (branch maps AND their gate)" if len(parts) > 1 else "the branches' spike maps",
            "the front end's spikes, visual_cnn.nir's input",
        )
    )
    return parts


def describe_parts(loaded: LoadedSPKLIP, parts: list[Part]) -> dict:
    """The record's ``front_end`` entry: files, shapes and the host-side steps between them."""
    cfg = loaded.model.cfg
    out = []
    for p in parts:
        fan_in: dict[str, int] = {}
        for _, dst in p.graph.edges:
            fan_in[dst] = fan_in.get(dst, 0) + 1
        out.append(
            {
                "part": p.name,
                "file": p.file,
                "nodes": len(p.graph.nodes),
                "edges": len(p.graph.edges),
                "input": {
                    "shape": [int(s) for s in p.graph.nodes["input"].input_type["input"]],
                    "meaning": p.input_meaning,
                },
                "output": {
                    "shape": [int(s) for s in p.graph.nodes["output"].output_type["output"]],
                    "meaning": p.output_meaning,
                },
                "summing_nodes": sorted(n for n, k in fan_in.items() if k > 1),
                "widened_lif_nodes": {
                    n: {"fires_only_in_channel": c, "channels": k} for n, (c, k) in p.widened.items()
                },
            }
        )
    host = [
        f"before {MTF_FILE}: temporal blocks of {cfg.hsfe.block_frames()} frames, the hsfe.input_pool="
        f"{cfg.hsfe.input_pool} max pool (an OR of binary spikes; NIR has no max pool), and the "
        f"{cfg.fsve.hsfe_encoding!r} step encoding (fsve.hsfe_encoding) over fsve.time_steps={cfg.fsve.time_steps}"
    ]
    if any(p.name == "sa_gate" for p in parts):
        host.append(
            f"between {GATE_FILE} and {TRUNK_FILE}: visual.hsfe.sa multiplies the branch spikes ({MTF_FILE}'s "
            f"output) by their gate spikes ({GATE_FILE}'s output), an AND (NIR has no product node)"
        )
    host.append(f"{TRUNK_FILE}'s output is visual_cnn.nir's input, step by step")
    return {
        "module": PATH,
        "encoding": cfg.fsve.hsfe_encoding,
        "parts": out,
        "host_steps": host,
        "conventions": {
            "branches": "each branch's first convolution reads every frame, its weights zero outside the "
            "branch's frames; its second writes only its own output channel, so the concat node's "
            "sum of the branch LIFs is their concatenation",
            "long_skip": "head.long_skip is a second copy of the head convolution (tdBN folded): the trunk's "
            "long skip adds the head's current to out_lif's input again",
        },
    }


def write_parts(loaded: LoadedSPKLIP, folder: Path) -> dict | None:
    """Write the front end's parts (nothing for an ANN front end); return :func:`describe_parts` or None."""
    parts = front_end_parts(loaded)
    if not parts:
        return None
    for p in parts:
        nir.write(Path(folder) / p.file, p.graph)
    return describe_parts(loaded, parts)


def part_inputs(loaded: LoadedSPKLIP, spikes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each part's real inputs for clips ``[B, frames, H, W]``, per step ``[T, N, ...]``, from the project's
    own forward of the front end."""
    from spikingjelly.activation_based import functional

    from fsve.hsfe import encode_steps

    hsfe = spiking_front_end(loaded)
    cfg = loaded.model.cfg
    with torch.no_grad():
        hsfe.eval()
        functional.reset_net(hsfe)
        pooled = hsfe.pooled(temporal_blocks(spikes[:, : cfg.frames].float(), cfg.hsfe))
        est = hsfe.mtf(pooled)
        out = {"mtf": encode_steps(pooled, cfg.fsve.time_steps, cfg.fsve.hsfe_encoding).contiguous(), "sa_gate": est}
        out["trunk"] = hsfe.sa(est)
        functional.reset_net(hsfe)
    return out


def verify_front_end(loaded: LoadedSPKLIP, folder: Path, spikes: torch.Tensor) -> dict:
    """Each written part read back and run by snnTorch and spikingjelly against the project's modules on its
    real inputs; ``{part: figures}`` (:func:`.nir_verify.compare_importers`) plus ``ok`` for all."""
    parts = front_end_parts(loaded)
    inputs = part_inputs(loaded, spikes)
    steps = loaded.model.cfg.fsve.time_steps
    res: dict = {}
    for p in parts:
        fig = compare_importers(Path(folder) / p.file, p.reference, inputs[p.name], steps, widened=p.widened)
        fig["ok"] = bool(fig["snntorch"]["ok"] and fig["spikingjelly"]["ok"])
        res[p.name] = {"file": p.file, "input_shape": list(inputs[p.name].shape[-3:]), **fig}
    res["ok"] = all(r["ok"] for r in res.values())
    return res


__all__ = [
    "GATE_FILE",
    "MTF_FILE",
    "PART_FILES",
    "Part",
    "TRUNK_FILE",
    "describe_parts",
    "front_end_parts",
    "gate_graph",
    "mtf_graph",
    "part_inputs",
    "spiking_front_end",
    "trunk_graph",
    "verify_front_end",
    "write_parts",
]
