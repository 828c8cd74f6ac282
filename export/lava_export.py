"""``export --format lava``: the FSVE's spiking CNN as a Loihi fixed-point netx network.

What goes where (written into the export folder):

* ``visual_cnn.net`` (netx HDF5, loadable by lava-dl's ``netx.hdf5.Network``):
  the chain ``LIF -> [conv + BN -> LIF] x K`` of a ``fsve.cnn = "plain"``
  encoder. Layer 0 is the netx ``input`` layer (the first LIF); every
  convolution with its BatchNorm folded in (eval statistics) and the LIF after
  it is one netx ``conv`` layer; the last is the CNN's final LIF (``head_lif``).
* ``host.onnx``: the host-side front end, ``spikes [B, frames, H, W]`` ->
  ``a_in [B * blocks, C, H', W']``: the analog HSFE, the stem convolution and
  its BN, scaled to the input layer's fixed point and rounded. The input layer
  receives it as its synaptic input ``a_in`` (the input LIF's ``a_in`` port) on
  each of the block's time steps.
* Host-side after the chip (not exported here; ``visual.onnx`` of
  ``--format onnx`` holds it in float): global average pooling of the output
  spikes, the linear head and the temporal Transformer (STAR-Net's, or E-SDSA).

Quantisation, per layer (a shared power-of-two scale ``S = 2**e``):
``weight = round(w_folded * S)`` within [-256, 254], ``bias = round(b_folded * S)``
within 13-bit signed, ``vThMant = round(V_th * S)``; ``e`` is the largest that
keeps all three in range. LIF leak: spikingjelly's ``v = decay * v + x`` is
``vDecay = round((1 - decay) * 4096)``; the current has no memory
(``iDecay = 4096``: ``u = a_in << 6``); reset to 0 on a spike, as the FSVE's
hard reset. Loihi fires at ``v > vThMant << 6`` where spikingjelly fires at
``v >= V_th``: ties (rare) differ. The MS-ResNet of the paper (``fsve.cnn =
"msresnet"``) is refused: its membrane-shortcut additions join non-adjacent
layers and netx layers form a chain.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from spklip.hsfe import feature_size, temporal_blocks
from spklip.io import LoadedSPKLIP
from spklip_energy.errors import CheckpointError, ConfigError
from spklip_energy.recording import recording

from .cnn import find_spiking_cnn, fold_bn
from .loihi_fixed import A_IN_MAX, BIAS_MAX, DECAY_UNIT, VTH_MAX, WEIGHT_RANGE, v_decay_of
from .netx_format import NetxLayer, NetxNet, NetxNeuron, write_netx
from .onnx_export import DEFAULT_OPSET, export_module
from .spiking import lif_spec

NET_FILE, HOST_FILE = "visual_cnn.net", "host.onnx"
#: fixed-point resolution of the input layer: its threshold mantissa (the host scales features by vThMant / V_th)
INPUT_VTH_MANT = 1024


def chain_cnn(loaded: LoadedSPKLIP) -> tuple[str, nn.Module]:
    """(module path, module) of the checkpoint's spiking CNN when it is a netx chain; ConfigError otherwise."""
    from fsve.plaincnn import SpikingPlainCNN

    if loaded.model.cfg.model != "spklip" and loaded.model.cfg.front_end == "spiking":
        raise ConfigError(
            f"{loaded.checkpoint.path}: visual.hsfe: the spiking front end has no netx form (netx "
            "layers form one chain; visual.hsfe.branches run side by side and are concatenated, "
            "visual.hsfe.sa multiplies spike maps, visual.hsfe.trunk adds membranes); export it with "
            "--format nir (its chain parts, docs/nir.md) or onnx, or deploy a model trained with "
            "fsve.hsfe=ann"
        )
    name, cnn = find_spiking_cnn(loaded, "Loihi")
    if not isinstance(cnn, SpikingPlainCNN):
        block = next(n for n, m in cnn.named_modules() if hasattr(m, "downsample") and hasattr(m, "conv2"))
        raise ConfigError(
            f"{name}.{block}: MS-ResNet membrane-shortcut addition has no netx form (netx layers "
            "form a chain); train with fsve.cnn=plain to deploy the CNN to Loihi"
        )
    return name, cnn


def _neuron(v_th: float, retain: float, scale: float) -> NetxNeuron:
    """Loihi CUBA-LIF of a spikingjelly LIF ``v = retain * v + x`` (no current memory) at ``scale``."""
    return NetxNeuron(i_decay=DECAY_UNIT, v_decay=v_decay_of(retain), v_th_mant=int(round(v_th * scale)))


def layer_scale(w: torch.Tensor, b: torch.Tensor, v_th: float) -> int:
    """Largest exponent e with round(w * 2**e), round(b * 2**e), round(V_th * 2**e) all in Loihi's ranges."""
    limits = [
        (float(w.abs().max()), min(-WEIGHT_RANGE[0], WEIGHT_RANGE[1])),
        (float(b.abs().max()), BIAS_MAX),
        (v_th, VTH_MAX),
    ]
    e = min(math.floor(math.log2(lim / v)) if v > 0 else 30 for v, lim in limits)
    return min(e, 30)


def chain_of(cnn: nn.Module, path: str) -> list[tuple]:
    """The plain CNN as [(lif_name, lif), (conv_name, conv, bn_name, bn, lif_name, lif), ...]."""
    from spikingjelly.activation_based import neuron

    mods = list(cnn.stages.named_children())
    items: list[tuple] = []
    i = 0
    if not mods or not isinstance(mods[0][1], neuron.BaseNode):
        raise ConfigError(f"{path}.stages: must start with a spiking neuron")
    items.append((f"{path}.stages.{mods[0][0]}", mods[0][1]))
    i = 1
    while i < len(mods):
        (cn, conv), (bnn, bn) = mods[i], mods[i + 1]
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.modules.batchnorm._BatchNorm):
            raise ConfigError(f"{path}.stages.{cn}: {type(conv).__name__} has no netx form (expected conv + BN)")
        if i + 2 < len(mods):
            ln, lif = f"{path}.stages.{mods[i + 2][0]}", mods[i + 2][1]
        else:
            ln, lif = f"{path}.head_lif", cnn.head_lif
        items.append((f"{path}.stages.{cn}", conv, f"{path}.stages.{bnn}", bn, ln, lif))
        i += 3
    return items


class HostFrontEnd(nn.Module):
    """Spikes ``[B, frames, H, W]`` -> the input layer's ``a_in`` ``[B * blocks, C, H', W']`` (rounded)."""

    def __init__(self, visual: nn.Module, stem: nn.Module, scale: float) -> None:
        super().__init__()
        self.hsfe, self.stem, self.scale, self.cfg = visual.hsfe, stem, float(scale), visual.cfg

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        blocks = temporal_blocks(spikes[:, : self.cfg.frames], self.cfg.hsfe)
        conv, bn = self.stem[0], self.stem[1]  # single-step functional form: no batch-size constants in the graph
        z = F.conv2d(self.hsfe(blocks), conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        return torch.round(z * self.scale).clamp(-A_IN_MAX, A_IN_MAX)


def build_netx(loaded: LoadedSPKLIP) -> tuple[NetxNet, dict, HostFrontEnd]:
    """The netx chain of the checkpoint's plain spiking CNN, its description and the host front end."""
    path, cnn = chain_cnn(loaded)
    cnn.eval()
    items = chain_of(cnn, path)
    cfg = loaded.model.cfg
    spec0 = lif_spec(items[0][0], items[0][1], "Lava")
    retain0, v_th0 = spec0.decay, spec0.v_threshold
    scale0 = INPUT_VTH_MANT / v_th0
    with torch.no_grad():
        probe = torch.zeros(1, 1, cfg.hsfe.features, *_feature_hw(loaded))
        in_shape = tuple(cnn.stem(probe).shape[2:])
    layers = [NetxLayer("input", in_shape, _neuron(v_th0, retain0, scale0))]
    described = [{"netx_layer": 0, "type": "input", "neuron": items[0][0], "scale": scale0, "shape": list(in_shape)}]
    shape = in_shape
    for k, (cn, conv, bnn, bn, ln, lif) in enumerate(items[1:], start=1):
        spec = lif_spec(ln, lif, "Lava")
        retain, v_th = spec.decay, spec.v_threshold
        w, b = fold_bn(conv, bn)
        if not (bool(torch.isfinite(w).all()) and bool(torch.isfinite(b).all())):
            raise CheckpointError(
                f"{bnn}: folding this BatchNorm into {cn} gives non-finite weights "
                "(a negative running_var?); it has no fixed-point form"
            )
        e = layer_scale(w, b, v_th)
        s = 2.0**e
        wq = torch.round(w * s).clamp(*WEIGHT_RANGE).long().numpy()
        bq = torch.round(b * s).clamp(-BIAS_MAX - 1, BIAS_MAX).long().numpy()
        h = (shape[1] + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[0] + 1
        wd = (shape[2] + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1
        shape = (conv.out_channels, h, wd)
        layers.append(
            NetxLayer(
                "conv",
                shape,
                _neuron(v_th, retain, s),
                weight=wq,
                bias=bq,
                stride=tuple(conv.stride),
                padding=tuple(conv.padding),
                dilation=tuple(conv.dilation),
                groups=conv.groups,
            )
        )
        err = float((torch.from_numpy(wq).double() / s - w).abs().max() / w.abs().max())
        described.append(
            {
                "netx_layer": k,
                "type": "conv",
                "conv": cn,
                "bn": bnn,
                "neuron": ln,
                "exponent": e,
                "shape": list(shape),
                "max_rel_weight_error": err,
            }
        )
    net = NetxNet(layers, attrs={"Ts": 1, "tSample": cfg.fsve.time_steps + len(layers) - 1})
    return net, {"cnn": path, "layers": described}, HostFrontEnd(loaded.model.visual, cnn.stem, scale0)


def _feature_hw(loaded: LoadedSPKLIP) -> tuple[int, int]:
    cfg = loaded.model.cfg
    return feature_size(cfg.hsfe, cfg.height, cfg.width)


def write_lava(loaded: LoadedSPKLIP, folder: Path, opts: dict) -> dict:
    """Write ``visual_cnn.net`` and ``host.onnx`` into ``folder``; return their description."""
    net, described, host = build_netx(loaded)
    write_netx(folder / NET_FILE, net)
    cfg = loaded.model.cfg
    spikes = torch.rand(2, cfg.frames, cfg.height, cfg.width, generator=torch.Generator().manual_seed(0)) < 0.05
    with torch.no_grad():
        export_module(
            host.eval(),
            (spikes.float(),),
            folder / HOST_FILE,
            "spikes",
            opts.get("opset", DEFAULT_OPSET),
            out_name="a_in",
        )
    synaptic = sum(lay.synaptic for lay in net.layers)
    return {
        "lava": {
            "file": NET_FILE,
            "format": "lava-dl netx HDF5 (layer/0..N: input, conv; CUBA neurons)",
            "layers": net.describe(),
            "mapping": described,
            "time_steps": cfg.fsve.time_steps,
            "latency_steps": synaptic,
            "blocks_per_clip": cfg.hsfe.n_blocks,
            "schedule": "pipelined: block b drives the input layer's a_in during steps [b*T, (b+1)*T); every "
            "layer is reset every T steps at offset (layer - 1) (netx reset_interval=T), so layer k "
            "processes block b during steps [b*T + k, (b+1)*T + k); a clip takes blocks*T + latency steps",
            "conventions": "weights round(w*2^e) in [-256,254]; vThMant=round(V_th*2^e); vDecay=round((1-decay)*4096);"
            " iDecay=4096; each conv adds one step of latency",
        },
        "host": {
            "file": HOST_FILE,
            "inputs": [{"name": "spikes", "dtype": "float32", "shape": ["batch", cfg.frames, cfg.height, cfg.width]}],
            "outputs": [
                {"name": "a_in", "dtype": "float32 (integer values)", "shape": ["batch*blocks", *net.input_shape]}
            ],
            "contains": "HSFE (analog) + stem conv/BN, scaled by the input layer's vThMant / V_th and rounded",
            "after_chip": "average pooling of the output spikes, linear head, temporal Transformer: host-side "
            "(float, see --format onnx)",
        },
        "opset": opts.get("opset", DEFAULT_OPSET),
    }


def torch_reference_spikes(loaded: LoadedSPKLIP, spikes: torch.Tensor) -> list[np.ndarray]:
    """The float spiking CNN's spikes per netx layer ``[T, B * blocks, ...]`` for clips ``spikes``."""
    from spikingjelly.activation_based import functional

    path, cnn = chain_cnn(loaded)
    items = chain_of(cnn, path)
    lifs = [items[0][1]] + [it[5] for it in items[1:]]
    with recording(dict(enumerate(lifs))) as rec, torch.no_grad():
        loaded.model.eval()
        functional.reset_net(loaded.model)
        loaded.model.visual(spikes)
    got = rec.outputs
    return [got[k].numpy().astype(bool) for k in range(len(lifs))]


__all__ = ["HOST_FILE", "NET_FILE", "build_netx", "chain_cnn", "torch_reference_spikes", "write_lava"]
