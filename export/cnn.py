"""The FSVE's spiking CNN as the NIR and Lava exporters see it: finding it in a checkpoint, folding its
BatchNorms into the convolutions before them."""

from __future__ import annotations

import torch
import torch.nn as nn

from spklip.io import CONVERTED_KIND, LoadedSPKLIP
from spklip_energy.errors import ConfigError


def _resets(target: str) -> str:
    """Why ``target`` cannot take a converted checkpoint's soft-reset IF neurons."""
    if target == "NIR":
        import nir  # only to name the version that was checked

        return f"NIR {nir.__version__}'s neurons (IF, LIF, CubaLIF: reset to v_reset)"
    return {"Loihi": "Loihi's CUBA-LIF (reset to 0)"}.get(target, target)


def cnn_orders() -> dict[type, tuple[str, ...]]:
    """The FSVE's spiking CNN classes and their children in forward order."""
    from fsve.msresnet import SpikingCNN
    from fsve.plaincnn import SpikingPlainCNN

    return {
        SpikingCNN: ("stem", "layer1", "layer2", "layer3", "layer4", "head_lif", "avgpool", "flatten", "head"),
        SpikingPlainCNN: ("stem", "stages", "head_lif", "avgpool", "flatten", "head"),
    }


def find_spiking_cnn(loaded: LoadedSPKLIP, target: str) -> tuple[str, nn.Module]:
    """(module path, module) of the checkpoint's spiking CNN; one-line :class:`ConfigError` naming the export
    ``target`` for an ANN or a converted checkpoint, or when none is found."""
    kind = loaded.card.get("kind")
    where = loaded.checkpoint.path
    if kind == CONVERTED_KIND:
        raise ConfigError(
            f"{where}: a {kind!r} checkpoint cannot be exported to {target}: its IF neurons reset by "
            f"subtraction (rate-coded conversion needs it), which {_resets(target)} cannot "
            "express; use --format onnx"
        )
    if loaded.model.cfg.model == "spklip":
        raise ConfigError(
            f"{where}: a {kind!r} checkpoint is an ANN and has no spiking network to export to {target} "
            "(use --format onnx, or train an fsve-hybrid/fsve-full model)"
        )
    orders = cnn_orders()
    for name, mod in loaded.model.named_modules():
        if type(mod) in orders:
            return name, mod
    raise ConfigError(f"{where}: no spiking CNN found in a {kind!r} checkpoint")


def fold_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias (float64) of ``bn(conv(x))`` at eval statistics (tdBN is a BatchNorm2d)."""
    g = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    w = conv.weight.detach().double() * g.reshape(-1, 1, 1, 1)
    b0 = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(g)
    b = bn.bias.detach().double() + (b0 - bn.running_mean.double()) * g
    return w, b


__all__ = ["cnn_orders", "find_spiking_cnn", "fold_bn"]
