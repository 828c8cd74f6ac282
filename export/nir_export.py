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

:func:`verify_nir` reads the file back (``nir.read``), imports it with snnTorch
(``snntorch.import_nir.import_from_nir``) and spikingjelly
(``spikingjelly.activation_based.nir_exchange.import_from_nir``), runs both for
the time steps on the HSFE features of real clips and compares outputs and
spikes with the project's torch CNN.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn as nn

from spklip.hsfe import feature_size, temporal_blocks
from spklip.io import CONVERTED_KIND, LoadedSPKLIP
from spklip_energy.errors import ConfigError, first_line

NIR_FILE = "visual_cnn.nir"
#: the discretisation step every NIR converter assumes (seconds)
DT = 1e-4
#: --verify: an importer passes when at least this fraction of all its spikes equals the project's
SPIKE_AGREEMENT = 0.99
#: --verify: and its per-step outputs are within this relative error (|diff| / max|project|) on this fraction
OUTPUT_TOLERANCE, OUTPUT_AGREEMENT = 1e-4, 0.95


def _cnn_orders() -> dict[type, tuple[str, ...]]:
    """The FSVE's spiking CNN classes and their children in forward order."""
    from fsve.msresnet import SpikingCNN
    from fsve.plaincnn import SpikingPlainCNN

    return {
        SpikingCNN: ("stem", "layer1", "layer2", "layer3", "layer4", "head_lif", "avgpool", "flatten", "head"),
        SpikingPlainCNN: ("stem", "stages", "head_lif", "avgpool", "flatten", "head"),
    }


def find_cnn(loaded: LoadedSPKLIP) -> tuple[str, nn.Module]:
    """(module path, module) of the checkpoint's spiking CNN; ConfigError for ANN and converted checkpoints."""
    kind = loaded.card.get("kind")
    where = loaded.checkpoint.path
    if kind == CONVERTED_KIND:
        raise ConfigError(
            f"{where}: a {kind!r} checkpoint cannot be exported to NIR: its IF neurons reset by "
            f"subtraction (rate-coded conversion needs it), which NIR {nir.__version__}'s neurons (IF, "
            "LIF, CubaLIF: reset to v_reset) cannot express; use --format onnx"
        )
    if loaded.model.cfg.model == "spklip":
        raise ConfigError(
            f"{where}: a {kind!r} checkpoint is an ANN and has no spiking network to export to NIR "
            "(use --format onnx, or train an fsve-hybrid/fsve-full model)"
        )
    for name, mod in loaded.model.named_modules():
        if type(mod) in _cnn_orders():
            return name, mod
    raise ConfigError(f"{where}: no spiking CNN found in a {kind!r} checkpoint")


def _f32(shape, value: float) -> np.ndarray:
    return np.full(tuple(int(s) for s in shape), value, dtype=np.float32)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def neuron_node(name: str, node: nn.Module, shape) -> nir.NIRNode:
    """``nir.LIF`` / ``nir.IF`` of a spikingjelly neuron over a population of ``shape``."""
    from spikingjelly.activation_based import neuron

    if node.v_reset is None:
        raise ConfigError(
            f"{name}: {type(node).__name__} with a soft reset (v_reset=None) has no NIR equivalent "
            "(NIR neurons reset to v_reset)"
        )
    if not isinstance(node.v_threshold, (int, float)):
        raise ConfigError(f"{name}: {type(node).__name__} with a tensor-valued v_threshold is not exported")
    vth, vr = float(node.v_threshold), float(node.v_reset)
    meta = {"module": name, "source_fires_at": "v >= v_threshold", "dt": DT}
    if type(node) is neuron.LIFNode:
        tau_sj = float(node.tau)
        r = 1.0 if node.decay_input else tau_sj
        return nir.LIF(
            tau=_f32(shape, DT * tau_sj),
            r=_f32(shape, r),
            v_leak=_f32(shape, vr),
            v_threshold=_f32(shape, vth),
            v_reset=_f32(shape, vr),
            metadata=meta,
        )
    if type(node) is neuron.IFNode:
        return nir.IF(r=_f32(shape, 1.0 / DT), v_threshold=_f32(shape, vth), v_reset=_f32(shape, vr), metadata=meta)
    raise ConfigError(f"{name}: {type(node).__name__} has no NIR equivalent (only LIFNode and IFNode are exported)")


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
        from spikingjelly.activation_based import neuron
        from spikingjelly.activation_based.model.ms_resnet import _MSBlock

        if type(mod) in _cnn_orders():
            return self.cnn(name, mod, terms, shape)
        if isinstance(mod, nn.Sequential):
            return self.sequence(name, list(mod.named_children()), terms, shape)
        if type(mod) is _MSBlock:
            return self.ms_block(name, mod, terms, shape)
        if isinstance(mod, nn.Identity):
            return terms, shape
        if isinstance(mod, neuron.BaseNode):
            return self.add(name, neuron_node(name, mod, shape), terms), shape
        if isinstance(mod, nn.Conv2d) and len(shape) == 3:
            return self.conv(name, mod, None, None, terms, shape)
        if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
            return self.avgpool(name, mod, terms, shape)
        if isinstance(mod, nn.Flatten):
            start = mod.start_dim - 1 if mod.start_dim > 0 else mod.start_dim  # NIR dims exclude the batch axis
            end = mod.end_dim - 1 if mod.end_dim > 0 else mod.end_dim
            node = nir.Flatten(
                input_type={"input": np.array(shape)}, start_dim=start, end_dim=end, metadata={"module": name}
            )
            return self.add(name, node, terms), tuple(int(s) for s in node.output_type["output"])
        if isinstance(mod, nn.Linear) and len(shape) == 1:
            w = mod.weight.detach().float().numpy()
            meta = {"module": name}
            node = (
                nir.Affine(w, mod.bias.detach().float().numpy(), metadata=meta)
                if mod.bias is not None
                else nir.Linear(w, metadata=meta)
            )
            return self.add(name, node, terms), (mod.out_features,)
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            raise ConfigError(
                f"{name}: {type(mod).__name__} on a {len(shape)}-d input {list(shape)} has no NIR "
                "equivalent (Linear needs a flat input, Conv2d a [C, H, W] one)"
            )
        raise ConfigError(f"{name}: {type(mod).__name__} has no NIR equivalent")

    def cnn(self, name: str, mod: nn.Module, terms, shape):
        order = _cnn_orders()[type(mod)]
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
        from .lava_export import fold_bn

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
    path, cnn = find_cnn(loaded)
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


def hsfe_features(loaded: LoadedSPKLIP, spikes: torch.Tensor) -> torch.Tensor:
    """The graph's inputs for clips ``[B, frames, H, W]``: the ANN HSFE's features ``[B*blocks, C, H, W]``
    (the same at every step), or the spiking HSFE's spikes ``[T, B*blocks, C, H, W]`` (one map per step)."""
    visual = loaded.model.visual.eval()
    with torch.no_grad():
        return visual.hsfe(temporal_blocks(spikes[:, : visual.cfg.frames].float(), visual.cfg.hsfe))


def step_input(x: torch.Tensor, t: int) -> torch.Tensor:
    """Step ``t``'s input: ``x[t]`` of per-step inputs ``[T, N, ...]`` (5-D), else ``x`` itself."""
    return x[t] if x.dim() == 5 else x


def project_run(cnn: nn.Module, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, dict, dict]:
    """The project's CNN on ``x [N, C, H, W]`` repeated over ``steps`` (or per-step ``x [T, N, C, H, W]``): outputs ``[T, N, D]``, and per neuron
    (names relative to the CNN) its spikes and pre-reset membrane ``u`` ``[T, N, ...]``."""
    from spikingjelly.activation_based import functional, neuron

    spikes: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}
    hooks = []
    for n, m in cnn.named_modules():
        if isinstance(m, neuron.BaseNode):

            def hook(mod, args, out, n=n):
                inputs[n], spikes[n] = args[0].detach(), out.detach()

            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            cnn.eval()
            functional.reset_net(cnn)
            out = cnn(x if x.dim() == 5 else x.unsqueeze(0).expand(steps, *x.shape))
            functional.reset_net(cnn)
    finally:
        for h in hooks:
            h.remove()
    membranes = {}
    for n, x_seq in inputs.items():
        m = cnn.get_submodule(n)
        membranes[n] = _membrane(m, x_seq)
    return out, spikes, membranes


def _membrane(node, x_seq: torch.Tensor) -> torch.Tensor:
    """Pre-reset membrane potentials ``[T, ...]`` of a hard-reset LIF / IF from rest (spikingjelly's charge)."""
    from spikingjelly.activation_based import neuron

    vth, vr = float(node.v_threshold), float(node.v_reset if node.v_reset is not None else 0.0)
    v = torch.full_like(x_seq[0], vr)
    out = []
    for t in range(x_seq.shape[0]):
        if type(node) is neuron.LIFNode:
            tau = float(node.tau)
            h = v + (x_seq[t] - (v - vr)) / tau if node.decay_input else v - (v - vr) / tau + x_seq[t]
        else:
            h = v + x_seq[t]
        s = h >= vth
        v = torch.where(s, torch.full_like(h, vr), h)
        out.append(h)
    return torch.stack(out)


def _capture(gm: nn.Module, names: list[str], store: dict) -> list:
    """Hooks on the imported graph's neuron modules (sanitised names) appending each step's spikes to ``store``."""
    hooks = []
    mods = dict(gm.named_children())
    for n in names:
        key = n.replace(".", "_")
        if key not in mods:
            continue

        def hook(mod, args, out, n=n):
            s = out[0] if isinstance(out, tuple) else out
            store.setdefault(n, []).append(s.detach().float())

        hooks.append(mods[key].register_forward_hook(hook))
    return hooks


def run_snntorch(graph, x: torch.Tensor, steps: int, neurons: list[str]) -> tuple[torch.Tensor, dict]:
    """snnTorch's import of ``graph`` on ``x [N, C, H, W]``: outputs ``[T, N, D]`` and spikes per neuron node.

    snnTorch's importer maps ``nir.Flatten(start_dim=0)`` to ``torch.nn.Flatten(0)`` (no batch shift), so each
    sample runs unbatched (``[C, H, W]``), its neurons reset before it (``init_hidden`` state)."""
    from snntorch import utils as snn_utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints warnings
        net = import_from_nir(graph)
    store: dict[str, list] = {}
    hooks = _capture(net, neurons, store)
    outs = []
    try:
        with torch.no_grad():
            for i in range(x.shape[-4]):
                snn_utils.reset(net)
                steps_out = []
                for t in range(steps):
                    y = net(step_input(x, t)[i])
                    steps_out.append((y[0] if isinstance(y, tuple) else y).detach())
                outs.append(torch.stack(steps_out))
    finally:
        for h in hooks:
            h.remove()
    out = torch.stack(outs, dim=1)  # [T, N, D]
    spikes = {n: torch.stack(v).reshape(x.shape[-4], steps, *v[0].shape).transpose(0, 1) for n, v in store.items()}
    return out, spikes


def run_spikingjelly(graph, x: torch.Tensor, steps: int, neurons: list[str]) -> tuple[torch.Tensor, dict]:
    """spikingjelly's import of ``graph`` (single-step, explicit state passed between steps) on ``x``."""
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    net = import_from_nir(graph, dt=DT, step_mode="s")
    store: dict[str, list] = {}
    hooks = _capture(net, neurons, store)
    outs = []
    try:
        with torch.no_grad():
            state = None
            for t in range(steps):
                y, state = net(step_input(x, t), state)
                outs.append(y.detach())
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(outs), {n: torch.stack(v) for n, v in store.items()}


def compare_run(
    ref_out: torch.Tensor, ref_spikes: dict, ref_u: dict, vth: dict, out: torch.Tensor, spikes: dict
) -> dict:
    """Output error and spike agreement of an importer's run against the project's."""
    ref = ref_out.double()
    got = out.double().reshape(ref.shape)
    scale = ref.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    rel = (got - ref).abs() / scale
    total = same = 0
    per_node = {}
    first = None
    for n, s_ref in ref_spikes.items():
        if n not in spikes:
            continue
        s = spikes[n].reshape(s_ref.shape).bool()
        eq = s == s_ref.bool()
        total += eq.numel()
        same += int(eq.sum())
        per_node[n] = float(eq.float().mean())
        if first is None and not bool(eq.all()):
            t = int((~eq).flatten(1).any(1).nonzero()[0])  # the first step with a difference: fresh flips only
            margin = (ref_u[n][t] - vth[n]).abs()[~eq[t]]
            first = {
                "node": n,
                "step": t,
                "differing_at_step": int((~eq[t]).sum()),
                "differing_total": int((~eq).sum()),
                "max_abs_v_minus_vth": float(margin.max()),
            }
    return {
        "max_abs_diff": float((got - ref).abs().max()),
        "max_rel_error": float(rel.max()),
        "frac_elements_over_tol": float((rel > OUTPUT_TOLERANCE).double().mean()),
        "spikes_compared": total,
        "spike_agreement": same / total if total else None,
        "spike_agreement_min_node": min(per_node.values()) if per_node else None,
        "neuron_nodes_compared": len(per_node),
        "first_differing_node": first,
    }


def compare_importers(
    nir_path: str | os.PathLike,
    module: nn.Module,
    x: torch.Tensor,
    steps: int,
    widened: dict[str, tuple[int, int]] | None = None,
) -> dict:
    """Run ``module`` (the project's multi-step network) and both importers of the file ``nir_path`` on
    ``x [N, C, H, W]`` (or per-step ``[T, N, C, H, W]``) for ``steps`` steps; figures per importer
    (``{"ok": False, "reason": ...}`` when an importer cannot load or run the graph). ``widened``: neuron nodes
    whose NIR population has ``channels`` channels where the project's has one, placed at ``channel``
    (name -> (channel, channels)); their other channels are compared with silence."""
    from spikingjelly.activation_based import neuron

    ref_out, ref_spikes, ref_u = project_run(module, x, steps)
    for n, (c, k) in (widened or {}).items():
        for store in (ref_spikes, ref_u):
            r = store[n]
            wide = r.new_zeros(*r.shape[:-3], k, *r.shape[-2:])
            wide[..., c : c + 1, :, :] = r
            store[n] = wide
    vth = {n: float(m.v_threshold) for n, m in module.named_modules() if isinstance(m, neuron.BaseNode)}
    graph = nir.read(nir_path)
    neurons = [n for n in ref_spikes if n in graph.nodes]
    total = sum(s.numel() for s in ref_spikes.values())
    res: dict = {
        "nodes_read": len(graph.nodes),
        "edges_read": len(graph.edges),
        "project_spike_rate": (sum(float(s.sum()) for s in ref_spikes.values()) / total) if total else None,
    }
    for name, run in (("snntorch", run_snntorch), ("spikingjelly", run_spikingjelly)):
        try:
            out, sp = run(nir.read(nir_path), x, steps, neurons)  # a fresh graph each: importers may edit it
            fig = compare_run(ref_out, ref_spikes, ref_u, vth, out, sp)
            fig["ok"] = bool(
                (fig["spike_agreement"] is None or fig["spike_agreement"] >= SPIKE_AGREEMENT)
                and 1.0 - fig["frac_elements_over_tol"] >= OUTPUT_AGREEMENT
            )
            if name == "snntorch":
                fig["note"] = (
                    "snnTorch maps nir.Flatten(start_dim=0) to torch.nn.Flatten(0) without the batch "
                    "shift: samples run unbatched, one at a time"
                )
            res[name] = fig
        except Exception as exc:  # an importer's limitation is a finding, not a crash
            res[name] = {"ok": False, "reason": first_line(exc, 300)}
    return res


def verify_nir(
    loaded: LoadedSPKLIP, folder: Path, data: str | os.PathLike = "builtin", samples: int = 4, progress=None
) -> dict:
    """Read ``visual_cnn.nir`` back, import it with snnTorch and spikingjelly, compare with the project's CNN.

    Inputs: the HSFE features of ``samples`` test clips of ``data`` (every temporal block), presented for
    ``fsve.time_steps`` steps. ``ok``: both importers ran, reached :data:`SPIKE_AGREEMENT` identical spikes
    and kept :data:`OUTPUT_AGREEMENT` of the output elements within :data:`OUTPUT_TOLERANCE` relative.
    """
    from .verify import verify_inputs

    _, cnn = find_cnn(loaded)
    spikes, _ = verify_inputs(loaded, data, samples, progress)
    x = hsfe_features(loaded, spikes)
    steps = loaded.model.cfg.fsve.time_steps
    res = {
        "clips": int(spikes.shape[0]),
        "inputs": int(x.shape[-4]),
        "input_shape": list(x.shape[-3:]),
        "time_steps": steps,
        "file": NIR_FILE,
        "spike_agreement_required": SPIKE_AGREEMENT,
        "output_tolerance": OUTPUT_TOLERANCE,
        "output_agreement_required": OUTPUT_AGREEMENT,
        **compare_importers(Path(folder) / NIR_FILE, cnn, x, steps),
    }
    res["ok"] = bool(res["snntorch"]["ok"] and res["spikingjelly"]["ok"])
    if loaded.model.cfg.front_end == "spiking":
        from .nir_front_end import verify_front_end

        res["front_end"] = verify_front_end(loaded, folder, spikes)
        res["ok"] = res["ok"] and res["front_end"]["ok"]
    res["note"] = (
        "project fires at v >= V_th, NIR and snnTorch at v > V_th, spikingjelly's importer at v >= V_th; "
        "spikes can also differ where v is within float rounding of V_th (BN folded, summation order); "
        "first_differing_node: the first neuron node whose spikes differ, its first step with a "
        "difference and the largest |v - V_th| (project's v) among the spikes differing at that step"
    )
    return res


__all__ = [
    "DT",
    "NIR_FILE",
    "build_nir",
    "compare_importers",
    "find_cnn",
    "hsfe_features",
    "module_graph",
    "neuron_node",
    "project_run",
    "run_snntorch",
    "step_input",
    "run_spikingjelly",
    "verify_nir",
    "write_nir",
]
