"""Threshold balancing with spikingjelly's ``RateCodingRecipe`` (``ann2snn``), fed from SPKLIP clips.

The recipe (FX tracing, Conv-BN fusion, activation hooks after every ReLU,
``ReLU -> scaler(1/s) -> IFNode -> scaler(s)`` replacement) is spikingjelly's.
Written here only what it lacks:

* calibration on the *inputs of one run* captured from the whole ANN on spike
  clips, streamed batch by batch (nothing is cached), in chunks small enough
  for ``torch.quantile`` (which refuses tensors over 2**24 elements), with a
  progress callback instead of spikingjelly's tqdm bar;
* a *structure-only* mode for loading a converted checkpoint: the same graph
  with placeholder scales (the real ones come with the state dict), no data.

Methods (``--method``):

* ``max``: layer-wise threshold = running max of the ReLU activation (momentum 0.1
  per calibration chunk, spikingjelly's ``VoltageHook``), soft-reset IF neurons;
* ``percentile``: layer-wise ``p``-th percentile (default 99.9 %), soft-reset IF;
* ``robust``: channel-wise ``p``-th percentile (``ChannelVoltageHook``) and IF neurons
  whose membrane starts at half the threshold (``HalfThresholdIFNode``), the
  recipe spikingjelly's ImageNet example calls "robust".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn as nn
from spikingjelly.activation_based.ann2snn import FXConverter, RateCodingRecipe
from spikingjelly.activation_based.ann2snn.modules import VoltageHook
from spikingjelly.activation_based.ann2snn.recipes.rate_coding import ChannelVoltageHook
from torch import fx

from ..errors import ConfigError, short_repr
from ..options import check_percentile
from .layers import ConversionError

METHODS = ("max", "percentile", "robust")
#: Elements of one calibration chunk's input (activations inside stay below quantile's 2**24 limit).
CHUNK_ELEMENTS = 2**18


def neuron_name(method: str) -> str:
    return "IF (half-threshold start)" if method == "robust" else "IF"


def check_method(method, percentile, name: str = "percentile") -> tuple[str, float]:
    """A calibration method of :data:`METHODS` and a percentile in (0, 100] (checked whatever the method;
    ``name`` is how the caller's user knows it); :class:`~.layers.ConversionError` otherwise."""
    if method not in METHODS:
        raise ConversionError(f"unknown method {short_repr(method)}; choose one of {', '.join(METHODS)}")
    try:
        return method, check_percentile(percentile, name)
    except ConfigError as exc:
        raise ConversionError(str(exc)) from None


class _Recipe(RateCodingRecipe):
    """spikingjelly's rate-coding recipe with streamed calibration, or none (structure only)."""

    def __init__(self, method: str, percentile: float, batches: Callable[[], Iterable[torch.Tensor]] | None,
                 progress: Callable[[int], None] | None = None) -> None:
        mode = "Max" if method == "max" else f"{percentile:g}%"
        robust = method == "robust"
        super().__init__(dataloader=[] if batches is None else batches, mode=mode, fuse_flag=True,
                         channel_wise=robust, half_threshold=robust)
        self.batches = batches
        self.progress = progress

    def calibrate(self, converter, fx_model: fx.GraphModule) -> fx.GraphModule:
        if self.batches is None:
            _placeholder_scales(fx_model)
            return fx_model
        done = 0  # the hooks are new modules, in training mode: VoltageHook records only then
        with torch.no_grad():
            for x in self.batches():
                x = x.to(converter.device)
                per_sample = max(x[:1].numel(), 1)
                step = max(CHUNK_ELEMENTS // per_sample, 1)
                for lo in range(0, x.shape[0], step):
                    fx_model(x[lo : lo + step])
                done += 1
                if self.progress is not None:
                    self.progress(done)
        if done == 0:
            raise ValueError("no calibration data")
        return fx_model


def _placeholder_scales(fx_model: fx.GraphModule) -> None:
    """Give every hook a valid scale of the right shape without data (the state dict replaces it)."""
    modules = dict(fx_model.named_modules())
    for node in fx_model.graph.nodes:
        if node.op != "call_module":
            continue
        hook = modules[node.target]
        if isinstance(hook, ChannelVoltageHook):
            hook.scale = torch.ones(_channels(node.args[0], modules))
        elif isinstance(hook, VoltageHook):
            hook.scale = torch.tensor(1.0)


def _channels(node, modules: dict[str, nn.Module]) -> int:
    """Channels of a node's output, from the layer that produced it (through ReLU, add, ...)."""
    seen = 0
    while isinstance(node, fx.Node) and seen < 1000:
        seen += 1
        if node.op == "call_module":
            m = modules[node.target]
            for attr in ("out_channels", "num_features", "num_channels"):
                if isinstance(getattr(m, attr, None), int):
                    return getattr(m, attr)
        node = next((a for a in node.args if isinstance(a, fx.Node)), None)
    raise ValueError("cannot tell the channel count of an activation in the converted network")


def build_snn(subnet: nn.Module, method: str, percentile: float,
              batches: Callable[[], Iterable[torch.Tensor]] | None,
              progress: Callable[[int], None] | None = None) -> fx.GraphModule:
    """Convert ``subnet`` (ReLU CNN) with spikingjelly's recipe.

    ``batches()`` yields inputs of ``subnet`` for calibration; None builds the structure
    only, with placeholder scales (for loading a converted checkpoint).
    """
    from .ratecode import make_event_layers

    was_training = subnet.training
    recipe = _Recipe(method, percentile, batches, progress)
    net = FXConverter(recipe=recipe, device=_device(subnet)).convert(subnet)
    subnet.train(was_training)
    net.eval()
    return make_event_layers(net)


def _device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _Captured(Exception):
    pass


def captured_inputs(model: nn.Module, site: nn.Module, clip_batches: Iterable[torch.Tensor],
                    run: Callable[[torch.Tensor], object]) -> Iterator[torch.Tensor]:
    """For each batch of clips, the input of ``site`` when ``run(batch)`` executes the ANN
    (the forward stops there)."""
    box: list[torch.Tensor] = []

    def hook(_mod, args):
        box.append(args[0].detach())
        raise _Captured

    dev = _device(model)
    for clips in clip_batches:
        handle = site.register_forward_pre_hook(hook)
        try:
            with torch.no_grad():
                run(clips.to(dev))
        except _Captured:
            pass
        finally:
            handle.remove()
        if box:
            yield box.pop()


__all__ = ["METHODS", "build_snn", "captured_inputs", "check_method", "neuron_name"]
