"""``export --format nir``: the FSVE's spiking CNN as a NIR graph (``visual_cnn.nir``).

What is exported: the spiking CNN of an ``fsve-hybrid`` / ``fsve-full``
checkpoint (``visual.starnet.spatial``: the MS-ResNet :class:`SpikingCNN`, or the
chain :class:`SpikingPlainCNN` of ``fsve.cnn = "plain"``) for **one time step**
of its dynamics, written with the ``nir`` package (``nir.write``, HDF5):

* input ``input``: the HSFE feature map of one temporal block ``[C, H, W]``
  (analog, float), presented unchanged on each of the ``fsve.time_steps`` steps;
* output ``output``: that step's block embedding ``[embed_dim]``.

Mapping (node names are the module paths inside the CNN, e.g. ``layer1.0.conv1``):

* convolution + BatchNorm / tdBN -> ``nir.Conv2d`` with bias, BN folded in at
  its eval statistics (tdBN is a BatchNorm subclass; eval uses running mean and
  variance with its weight and bias);
* spikingjelly ``LIFNode`` (hard reset) -> ``nir.LIF``; ``IFNode`` -> ``nir.IF``;
* ``AdaptiveAvgPool2d`` -> ``nir.AvgPool2d`` (kernel = stride = input size /
  output size), ``AvgPool2d`` -> ``nir.AvgPool2d``;
* ``Flatten`` -> ``nir.Flatten`` (dims without the batch axis);
* ``Linear`` -> ``nir.Affine`` (``nir.Linear`` without a bias).

Time convention (``dt = 1e-4`` s, the one every NIR converter uses): NIR's
``tau dv/dt = (v_leak - v) + r I`` integrated by forward Euler over one step is
``v += (dt / tau) (v_leak - v + r I)``. spikingjelly's LIF with
``decay_input=False`` charges ``v += -(v - v_reset) / tau_sj + x``, so
``tau = dt * tau_sj``, ``r = tau / dt = tau_sj``, ``v_leak = v_reset`` (0 here);
with ``decay_input=True`` ``r = 1``. The FSVE's LIF (``decay = 0.25``,
``tau_sj = 4/3``) thus becomes ``LIF(tau = 1.333e-4, r = 1.333, v_leak = 0,
v_threshold = V_th, v_reset = 0)``. IF (``v += x``): ``r = 1 / dt``. Parameters
are float32 arrays of the population's shape ``[C, H, W]``.

Membrane shortcuts: a residual block adds its branch output to the shortcut's
membrane value; NIR sums all edges arriving at a node, so every node that reads a
sum gets one edge from each term (the block's ``conv2``, and the shortcut's
terms: the downsampling conv, or the previous block's terms). No extra node is
written for the addition.

Thresholds: NIR (and snnTorch) fire at ``v > v_threshold``, spikingjelly (and
the project) at ``v >= V_th``; the exported ``v_threshold`` is ``V_th``
unchanged, so the two differ only where ``v`` equals ``V_th`` exactly.

Before it: the ANN HSFE (the analog front end computing the input features from
the spike stream) runs host-side; a spiking front end (``fsve.hsfe=spiking``) is
written as its own chain parts beside this graph (:mod:`.nir_front_end`), whose
last part's spikes this graph reads step by step. Host side after it: the mean over steps and the
temporal Transformer (``fsve-full``: block positions and the spiking E-SDSA
Transformer on every step's embeddings, then the mean over steps and blocks;
``fsve-hybrid``: the mean over steps, block positions, STAR-Net's ANN
Transformer). ``--format onnx`` holds the whole encoder.

:func:`.nir_verify.verify_nir` reads the file back (``nir.read``), imports it with snnTorch
(``snntorch.import_nir.import_from_nir``) and spikingjelly
(``spikingjelly.activation_based.nir_exchange.import_from_nir``), runs both for
the time steps on the HSFE features of real clips and compares outputs and
spikes with the project's torch CNN.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn as nn

from fsve.neurons import describe_neuron
from spklip.hsfe import feature_size
from spklip.io import LoadedSPKLIP
from spklip_energy.errors import ConfigError

from .cnn import cnn_orders, find_spiking_cnn, fold_bn

NIR_FILE = "visual_cnn.nir"
#: the discretisation step every NIR converter assumes (seconds)
DT = 1e-4


def _f32(shape, value: float) -> np.ndarray:
    return np.full(tuple(int(s) for s in shape), value, dtype=np.float32)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def neuron_node(name: str, node: nn.Module, shape) -> nir.NIRNode:
    """``nir.LIF`` / ``nir.IF`` of a described neuron (:func:`fsve.neurons.describe_neuron`) over a population
    of ``shape``."""
    spec = describe_neuron(node)
    if spec is None:
        raise ConfigError(
            f"{name}: {type(node).__name__} has no NIR equivalent (only neurons with a description, "
            "fsve.neurons.describe_neuron: spikingjelly's LIFNode and IFNode, are exported)"
        )
    if spec.v_reset is None:
        raise ConfigError(
            f"{name}: {type(node).__name__} with a soft reset (v_reset=None) has no NIR equivalent "
            "(NIR neurons reset to v_reset)"
        )
    if spec.v_threshold is None:
        raise ConfigError(f"{name}: {type(node).__name__} with a tensor-valued v_threshold is not exported")
    if spec.bias is not None:
        raise ConfigError(f"{name}: {type(node).__name__} with a bias current is not exported to NIR")
    vth, vr = spec.v_threshold, spec.v_reset
    meta = {"module": name, "source_fires_at": "v >= v_threshold", "dt": DT}
    if spec.family == "lif":
        return nir.LIF(
            tau=_f32(shape, DT * spec.tau),
            r=_f32(shape, 1.0 if spec.decay_input else spec.tau),
            v_leak=_f32(shape, vr),
            v_threshold=_f32(shape, vth),
            v_reset=_f32(shape, vr),
            metadata=meta,
        )
    return nir.IF(r=_f32(shape, 1.0 / DT), v_threshold=_f32(shape, vth), v_reset=_f32(shape, vr), metadata=meta)


def _wrong_rank(name: str, mod: nn.Module, shape) -> ConfigError:
    return ConfigError(
        f"{name}: {type(mod).__name__} on a {len(shape)}-d input {list(shape)} has no NIR "
        "equivalent (Linear needs a flat input, Conv2d a [C, H, W] one)"
    )


def _builders() -> dict[type, object]:
    """Layer class -> the :class:`_Graph` method that writes its NIR nodes (looked up along the MRO, nearest
    class first, as the counting rules are): one table of what NIR can hold."""
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.model.ms_resnet import _MSBlock

    return {
        **dict.fromkeys(cnn_orders(), _Graph.cnn),
        nn.Sequential: _Graph.children,
        _MSBlock: _Graph.ms_block,
        nn.Identity: _Graph.identity,
        neuron.BaseNode: _Graph.neuron,
        nn.Conv2d: _Graph.conv_alone,
        nn.AdaptiveAvgPool2d: _Graph.avgpool,
        nn.AvgPool2d: _Graph.avgpool,
        nn.Flatten: _Graph.flatten,
        nn.Linear: _Graph.linear,
    }


class _Graph:
    """Nodes and edges built while walking the CNN; ``terms`` are the nodes whose outputs sum to the tensor."""

    def __init__(self) -> None:
        self.nodes: dict = {}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node, terms: list[str]) -> list[str]:
        if name in self.nodes:
            raise ConfigError(f"{name}: module is used twice; NIR nodes are not shared")
        self.nodes[name] = node
        self.edges += [(src, name) for src in terms]
        return [name]

    def graph(self, path: str, metadata: dict | None = None) -> nir.NIRGraph:
        """The NIR graph, node names relative to module ``path`` (``layer1.0.conv1``)."""
        cut = len(path) + 1

        def short(n: str) -> str:
            return n[cut:] if n.startswith(path + ".") else n

        return nir.NIRGraph(
            nodes={short(k): v for k, v in self.nodes.items()},
            edges=[(short(a), short(b)) for a, b in self.edges],
            type_check=False,
            metadata={"source": "spklip_energy", "module": path, "dt": DT, **(metadata or {})},
        )

    # ------------------------------------------------------------------ modules

    def module(self, name: str, mod: nn.Module, terms: list[str], shape: tuple) -> tuple[list[str], tuple]:
        """The NIR nodes of ``mod``: the builder registered for the nearest class in its MRO
        (:func:`_builders`), or a one-line ConfigError naming the module."""
        builders = _builders()
        for cls in type(mod).__mro__:
            if cls in builders:
                return builders[cls](self, name, mod, terms, shape)
        raise ConfigError(f"{name}: {type(mod).__name__} has no NIR equivalent")

    def children(self, name: str, mod: nn.Sequential, terms, shape):
        return self.sequence(name, list(mod.named_children()), terms, shape)

    def identity(self, name: str, mod: nn.Module, terms, shape):
        return terms, shape

    def neuron(self, name: str, mod: nn.Module, terms, shape):
        return self.add(name, neuron_node(name, mod, shape), terms), shape

    def conv_alone(self, name: str, mod: nn.Conv2d, terms, shape):
        if len(shape) != 3:
            raise _wrong_rank(name, mod, shape)
        return self.conv(name, mod, None, None, terms, shape)

    def flatten(self, name: str, mod: nn.Flatten, terms, shape):
        start = mod.start_dim - 1 if mod.start_dim > 0 else mod.start_dim  # NIR dims exclude the batch axis
        end = mod.end_dim - 1 if mod.end_dim > 0 else mod.end_dim
        node = nir.Flatten(
            input_type={"input": np.array(shape)}, start_dim=start, end_dim=end, metadata={"module": name}
        )
        return self.add(name, node, terms), tuple(int(s) for s in node.output_type["output"])

    def linear(self, name: str, mod: nn.Linear, terms, shape):
        if len(shape) != 1:
            raise _wrong_rank(name, mod, shape)
        w = mod.weight.detach().float().numpy()
        meta = {"module": name}
        node = (
            nir.Affine(w, mod.bias.detach().float().numpy(), metadata=meta)
            if mod.bias is not None
            else nir.Linear(w, metadata=meta)
        )
        return self.add(name, node, terms), (mod.out_features,)

    def cnn(self, name: str, mod: nn.Module, terms, shape):
        order = cnn_orders()[type(mod)]
        children = dict(mod.named_children())
        extra = [c for c in children if c not in order]
        if extra:
            raise ConfigError(
                f"{name}.{extra[0]}: {type(children[extra[0]]).__name__} is not part of the CNN's "
                "forward and has no NIR place"
            )
        return self.sequence(name, [(c, children[c]) for c in order if c in children], terms, shape)

    def sequence(self, name: str, children: list, terms, shape):
        i = 0
        while i < len(children):
            cn, child = children[i]
            nxt = children[i + 1][1] if i + 1 < len(children) else None
            if isinstance(child, nn.Conv2d) and isinstance(nxt, nn.modules.batchnorm._BatchNorm):
                terms, shape = self.conv(f"{name}.{cn}", child, f"{name}.{children[i + 1][0]}", nxt, terms, shape)
                i += 2
                continue
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                raise ConfigError(
                    f"{name}.{cn}: {type(child).__name__} that does not follow a convolution has no "
                    "NIR equivalent (BN is folded into the preceding convolution)"
                )
            terms, shape = self.module(f"{name}.{cn}", child, terms, shape)
            i += 1
        return terms, shape

    def ms_block(self, name: str, block: nn.Module, terms, shape):
        """``spike1 -> conv1+bn1 -> spike2 -> conv2+bn2``, plus the membrane shortcut (summed by NIR edges)."""
        if block.downsample is None:
            identity, _ = terms, shape
        else:
            identity, _ = self.module(f"{name}.downsample", block.downsample, terms, shape)
        out, s = self.module(f"{name}.spike1", block.spike1, terms, shape)
        out, s = self.conv(f"{name}.conv1", block.conv1, f"{name}.bn1", block.bn1, out, s)
        out, s = self.module(f"{name}.spike2", block.spike2, out, s)
        out, s = self.conv(f"{name}.conv2", block.conv2, f"{name}.bn2", block.bn2, out, s)
        return out + identity, s

    def conv(self, name: str, conv: nn.Conv2d, bn_name: str | None, bn, terms, shape):

        if bn is not None:
            if bn.running_mean is None or not bn.affine:
                raise ConfigError(
                    f"{bn_name}: {type(bn).__name__} without running statistics or affine "
                    "parameters cannot be folded into the convolution"
                )
            w, b = fold_bn(conv, bn)
        else:
            w = conv.weight.detach().double()
            b = (
                conv.bias.detach().double()
                if conv.bias is not None
                else torch.zeros(conv.out_channels, dtype=torch.float64)
            )
        if conv.padding_mode != "zeros":
            raise ConfigError(f"{name}: Conv2d with padding_mode={conv.padding_mode!r} has no NIR equivalent")
        padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)
        meta = {"module": name, **({"folded_bn": bn_name} if bn is not None else {})}
        node = nir.Conv2d(
            input_shape=tuple(shape[1:]),
            weight=w.float().numpy(),
            stride=_pair(conv.stride),
            padding=padding,
            dilation=_pair(conv.dilation),
            groups=int(conv.groups),
            bias=b.float().numpy(),
            metadata=meta,
        )
        return self.add(name, node, terms), tuple(int(s) for s in node.output_type["output"])

    def avgpool(self, name: str, mod: nn.Module, terms, shape):
        c, h, w = shape
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            size = mod.output_size
            oh, ow = (size, size) if isinstance(size, int) or size is None else size
            oh, ow = int(oh or h), int(ow or w)  # None keeps the input size
            if h % oh or w % ow:
                raise ConfigError(
                    f"{name}: AdaptiveAvgPool2d from {h}x{w} to {oh}x{ow} has no fixed-kernel NIR equivalent"
                )
            kernel, stride, padding = (h // oh, w // ow), (h // oh, w // ow), (0, 0)
        else:
            if mod.ceil_mode or (not mod.count_include_pad and _pair(mod.padding) != (0, 0)) or mod.divisor_override:
                raise ConfigError(
                    f"{name}: AvgPool2d with ceil_mode/count_include_pad/divisor_override settings "
                    "has no NIR equivalent"
                )
            kernel = _pair(mod.kernel_size)
            stride = _pair(mod.stride if mod.stride is not None else mod.kernel_size)
            padding = _pair(mod.padding)
        node = nir.AvgPool2d(
            kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding), metadata={"module": name}
        )
        out = (c, (h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)
        return self.add(name, node, terms), out


def input_shape(loaded: LoadedSPKLIP) -> tuple[int, int, int]:
    """``[C, H, W]`` of the HSFE features the CNN reads."""
    cfg = loaded.model.cfg
    return (cfg.hsfe.features, *feature_size(cfg.hsfe, cfg.height, cfg.width))


def module_graph(module: nn.Module, shape: tuple, path: str = "net", metadata: dict | None = None):
    """The NIR graph of ``module`` (the FSVE CNN, or a chain of the project's layers) for inputs ``[C, H, W]``.

    Node names are module paths relative to ``module`` (``layer1.0.conv1``), plus ``input`` and ``output``;
    error messages name the full path (``path`` + ``.`` + name). Raises ConfigError for anything unmappable.
    """
    g = _Graph()
    shape = tuple(int(s) for s in shape)
    terms = g.add("input", nir.Input(input_type={"input": np.array(shape)}), [])
    terms, shape = g.module(path, module, terms, shape)
    g.add("output", nir.Output(output_type={"output": np.array(shape)}), terms)
    return g.graph(path, metadata)


def build_nir(loaded: LoadedSPKLIP):
    """The NIR graph of the checkpoint's spiking CNN and the CNN's module path."""
    path, cnn = find_spiking_cnn(loaded, "NIR")
    cnn.eval()
    return module_graph(cnn, input_shape(loaded), path, {"kind": str(loaded.card.get("kind"))}), path


def describe(loaded: LoadedSPKLIP, graph, path: str) -> dict:
    cfg = loaded.model.cfg
    types: dict[str, int] = {}
    for node in graph.nodes.values():
        types[type(node).__name__] = types.get(type(node).__name__, 0) + 1
    fan_in: dict[str, int] = {}
    for _, dst in graph.edges:
        fan_in[dst] = fan_in.get(dst, 0) + 1
    full = cfg.model == "fsve-full"
    lif = next((n for n in graph.nodes.values() if isinstance(n, nir.LIF)), None)
    values = (
        f" (here tau={float(lif.tau.flat[0]):.6g} s, r={float(lif.r.flat[0]):.6g}, "
        f"v_threshold={float(lif.v_threshold.flat[0]):.6g})"
        if lif is not None
        else ""
    )
    out_shape = [int(s) for s in graph.nodes["output"].output_type["output"]]
    return {
        "nir": {
            "file": NIR_FILE,
            "format": "NIR graph (nir.write, HDF5); read with nir.read",
            "exported": f"{path} ({type(loaded.model.get_submodule(path)).__name__}, fsve.cnn={cfg.fsve.cnn!r}): the "
            "spiking CNN, one time step of its dynamics",
            "nodes": len(graph.nodes),
            "edges": len(graph.edges),
            "node_types": types,
            "summing_nodes": sorted(n for n, k in fan_in.items() if k > 1),
            "input": {
                "node": "input",
                "shape": list(input_shape(loaded)),
                "meaning": (
                    "spikes of the spiking HSFE for one temporal block, one map per step"
                    if cfg.front_end == "spiking"
                    else "HSFE features of one temporal block (analog float), the same on every step"
                ),
            },
            "output": {"node": "output", "shape": out_shape, "meaning": "that step's block embedding"},
            "time_steps": cfg.fsve.time_steps,
            "blocks_per_clip": cfg.hsfe.n_blocks,
            "dt": DT,
            "conventions": {
                "lif": f"nir.LIF(tau=dt*tau_sj, r=tau_sj, v_leak=0, v_threshold=V_th, v_reset=0): forward Euler "
                f"v += dt/tau*(v_leak - v + r*I) is spikingjelly's v = (1 - 1/tau_sj)*v + x{values}",
                "threshold": "NIR fires at v > v_threshold, the project (spikingjelly) at v >= V_th; v_threshold = "
                "V_th, so they differ only where v equals V_th exactly",
                "reset": "hard reset to v_reset = 0 after a spike",
                "batchnorm": "BatchNorm/tdBN folded into the preceding Conv2d at eval statistics: "
                "w' = w*g/sqrt(var+eps), b' = beta + (b - mean)*g/sqrt(var+eps)",
                "residual": "membrane shortcuts: NIR sums a node's incoming edges; a node reading a residual sum "
                "has one edge per term (listed in summing_nodes), no extra node",
                "pooling": "global average pooling as nir.AvgPool2d(kernel = stride = the final feature size)",
                "flatten": "nir.Flatten dims exclude the batch axis (start_dim=0)",
                "parameters": "float32, LIF/IF parameters as arrays of the population's shape [C, H, W]",
            },
        },
        "host": {
            "before": "HSFE (analog ANN front end): spikes [B, frames, H, W] -> temporal blocks -> features "
            "[B*blocks, C, H', W'], each block's map fed to the graph's input on every step",
            "after": (
                "per-step embeddings [T, B*blocks, D] -> block positions + the spiking E-SDSA Transformer on "
                "every step -> mean over steps and blocks"
                if full
                else "per-step embeddings [T, B*blocks, D] -> mean over steps -> block positions + STAR-Net's ANN "
                "Transformer -> mean over blocks"
            ),
            "where": "--format onnx exports the whole visual encoder (float, unrolled over time)",
        },
    }


def write_nir(loaded: LoadedSPKLIP, folder: Path, opts: dict) -> dict:
    """Write ``folder/visual_cnn.nir`` (``nir.write``), and a spiking front end's parts beside it
    (:func:`.nir_front_end.write_parts`); return their description (``opts`` is not used)."""
    from .nir_front_end import write_parts

    graph, path = build_nir(loaded)
    front = write_parts(loaded, folder)  # before the CNN's file: a front end that cannot be held writes nothing
    nir.write(Path(folder) / NIR_FILE, graph)
    desc = describe(loaded, graph, path)
    if front is not None:
        desc["nir"]["front_end"] = front
        desc["host"]["before"] = "the spiking HSFE, written as chain parts (nir.front_end): " + "; ".join(
            front["host_steps"]
        )
    return desc


# --------------------------------------------------------------------------- verification


__all__ = [
    "DT",
    "NIR_FILE",
    "build_nir",
    "module_graph",
    "neuron_node",
    "write_nir",
]
