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
* ``qcfs``: the thresholds are the λ learned by QCFS fine-tuning (:mod:`.qcfs`), carried on the
  ReLUs that replaced the QCFS modules; no calibration data;
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

from spklip_energy.errors import ConfigError, short_repr
from spklip_energy.options import check_percentile

from .layers import ConversionError
from .neurons import ConvertedIF

METHODS = ("max", "percentile", "robust", "qcfs")
#: Elements of one calibration chunk's input (activations inside stay below quantile's 2**24 limit).
CHUNK_ELEMENTS = 2**18


def neuron_name(method: str, v_init: float | None = None) -> str:
    """How a conversion's neurons are described in its record (``v_init`` None: the legacy neurons)."""
    if v_init is None:
        return "IF (half-threshold start)" if method == "robust" else "IF"
    return f"IF, soft reset, membrane starts at {v_init:g}·θ"


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

    def __init__(
        self,
        method: str,
        percentile: float,
        batches: Callable[[], Iterable[torch.Tensor]] | None,
        progress: Callable[[int], None] | None = None,
        v_init: float | None = None,
    ) -> None:
        mode = "Max" if method in ("max", "qcfs") else f"{percentile:g}%"
        robust = method == "robust"
        factory = None if v_init is None else (lambda _scale: ConvertedIF(v_init))
        super().__init__(
            dataloader=[] if batches is None else batches,
            mode=mode,
            fuse_flag=True,
            channel_wise=robust,
            half_threshold=robust and v_init is None,
            neuron_factory=factory,
        )
        self.batches = batches
        self.progress = progress
        self.method = method

    def calibrate(self, converter, fx_model: fx.GraphModule) -> fx.GraphModule:
        if self.batches is None:
            _placeholder_scales(fx_model)
            return fx_model
        if self.method == "qcfs":  # thresholds are the learned λ, no data needed
            _learned_scales(fx_model)
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


def _learned_scales(fx_model: fx.GraphModule) -> None:
    """Each hook's scale = the λ its ReLU carries from QCFS fine-tuning (:func:`~.qcfs.to_relu`)."""
    from .qcfs import THRESHOLD_ATTR

    modules = dict(fx_model.named_modules())
    for node in fx_model.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], VoltageHook):
            relu = node.args[0]
            lam = getattr(modules.get(relu.target), THRESHOLD_ATTR, None) if relu.op == "call_module" else None
            if lam is None:
                raise ConversionError("a ReLU of the selected layers has no learned QCFS threshold")
            modules[node.target].scale = torch.tensor(float(lam))


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


def build_snn(
    subnet: nn.Module,
    method: str,
    percentile: float,
    batches: Callable[[], Iterable[torch.Tensor]] | None,
    progress: Callable[[int], None] | None = None,
    v_init: float | None = None,
    bias: bool = False,
) -> fx.GraphModule:
    """Convert ``subnet`` (ReLU CNN) with spikingjelly's recipe.

    ``batches()`` yields inputs of ``subnet`` for calibration; None builds the structure
    only, with placeholder scales (for loading a converted checkpoint). ``v_init``: the neurons
    are :class:`~.neurons.ConvertedIF` starting at ``v_init``·θ (None: spikingjelly's ``IFNode``, or
    ``HalfThresholdIFNode`` for ``robust``, as conversions before version 2 of the record); ``bias``:
    they get a per-channel bias current (zero until :mod:`.biascal` sets it).
    """
    from .ratecode import make_event_layers

    if method == "qcfs" and v_init is None:
        raise ConversionError("a QCFS conversion needs ConvertedIF neurons (v_init)")
    was_training = subnet.training
    recipe = _Recipe(method, percentile, batches, progress, v_init)
    net = FXConverter(recipe=recipe, device=_device(subnet)).convert(subnet)
    subnet.train(was_training)
    net.eval()
    if bias:
        _add_bias(net)
    return make_event_layers(net)


def _add_bias(net: fx.GraphModule) -> None:
    """Give every :class:`~.neurons.ConvertedIF` of ``net`` a zero per-channel bias of its channel count."""
    modules = dict(net.named_modules())
    for node in net.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], ConvertedIF):
            m = modules[node.target]
            m.bias = torch.zeros(_channels(node.args[0], modules), device=m.bias.device)


def _device(m: nn.Module) -> torch.device:
    p = next(m.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _Captured(Exception):
    pass


def captured_inputs(
    model: nn.Module, site: nn.Module, clip_batches: Iterable[torch.Tensor], run: Callable[[torch.Tensor], object]
) -> Iterator[torch.Tensor]:
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
