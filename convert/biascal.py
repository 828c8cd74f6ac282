"""Bias calibration of a converted model on the calibration clips (Li et al., ICML 2021, "bias correction").

After conversion, the mean output of a rate-coded layer differs from the ANN activation
it stands for (quantisation, the residual charge left at the end, the irregular input
spike trains of deeper layers). Layer by layer, in the order data flows, for each
neuron layer k of each converted run:

1. the target: the mean per channel of the activation the neurons replace (the ANN's
   ReLU or, after QCFS fine-tuning, the quantized activation), over the calibration clips;
2. the converted model's mean spike rate per channel of layer k over T steps, with the
   corrections of layers 0..k-1 already in place;
3. ``bias_k += target / s − rate`` (per channel, in the neuron's scaled units, s the
   layer's threshold): a constant current that shifts the layer's mean output onto the
   target's.

The correction is computed for one T (the error depends on T); the record says which.
spikingjelly has no such calibration (its recipes balance thresholds only), hence this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from spikingjelly.activation_based import functional

from .layers import ConversionError
from .neurons import ConvertedIF
from .ratecode import RateCoded

METHOD = "bias correction (Li et al., ICML 2021): per channel, layer by layer, towards the ANN's mean activation"


def _channel_mean(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().float()
    return t.mean(dim=[d for d in range(t.dim()) if d != 1]) if t.dim() > 1 else t


class _Mean:
    """Running sum per channel of what a hook sees, and how many tensors were summed."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.weight = 0

    def add(self, t: torch.Tensor, n: int) -> None:
        m = _channel_mean(t) * n
        self.total = m if self.total is None else self.total + m
        self.weight += n

    def value(self) -> torch.Tensor:
        return self.total / max(self.weight, 1)


def _activation_modules(units: Sequence[nn.Module]) -> list[nn.Module]:
    """The ReLU / QCFS modules of ``units`` in call order (pre-order module order, which every convertible
    unit follows: a block's body before its closing activation)."""
    from .qcfs import QCFS

    return [m for u in units for m in u.modules() if type(m) is nn.ReLU or isinstance(m, QCFS)]


def _neuron_scales(run: RateCoded) -> list[tuple[ConvertedIF, torch.Tensor]]:
    """Each ConvertedIF of ``run`` in graph order, with ``1/s`` (per channel or scalar): ``s`` is the scale of
    the scaler that multiplies its spikes back (spikingjelly's ``scaler1``; the scaler before it may sit in the
    run's static part)."""
    graph_modules = dict(run.net.named_modules())
    out = []
    for node in run.net.graph.nodes:
        if node.op == "call_module" and isinstance(graph_modules[node.target], ConvertedIF):
            users = list(node.users)
            scale = (
                getattr(graph_modules.get(users[0].target), "scale", None)
                if len(users) == 1 and users[0].op == "call_module"
                else None
            )
            if not isinstance(scale, torch.Tensor):
                raise ConversionError("a converted neuron's spikes are not scaled back by a threshold-balancing scaler")
            out.append((graph_modules[node.target], 1.0 / scale.detach().float().reshape(-1)))
    return out


def calibrate_bias(
    target: nn.Module,
    model: nn.Module,
    target_units: Sequence[Sequence[nn.Module]],
    clip_batches: Sequence[torch.Tensor],
    run: Callable[[nn.Module, torch.Tensor], object],
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Set the bias currents of every :class:`ConvertedIF` of ``model``'s rate-coded runs (see the module doc).

    ``target``: the model before conversion; ``target_units[i]``: its modules that the i-th run of ``model``
    replaced; ``run(m, batch)`` executes a model on a batch of clips. Returns the record for the card.
    """
    from .calibrate import captured_inputs

    runs = [m for m in model.modules() if isinstance(m, RateCoded)]
    if len(runs) != len(target_units):
        raise ConversionError(f"{len(runs)} converted runs but {len(target_units)} groups of target layers")
    plan = [(r, _neuron_scales(r), _activation_modules(u)) for r, u in zip(runs, target_units, strict=True)]
    for r, neurons, acts in plan:
        if not neurons or any(n.bias.numel() == 0 for n, _ in neurons):
            raise ConversionError("bias calibration needs neurons built with bias currents (bias=True)")
        if len(neurons) != len(acts):
            raise ConversionError(
                f"{r.extra_repr()}: {len(neurons)} neuron layers but {len(acts)} activations in the layers they replace"
            )
    total = sum(len(n) for _, n, _ in plan)
    done, shifts = 0, []
    for r, neurons, acts in plan:
        # the targets: mean activation per channel in the model before conversion, one pass
        means = [_Mean() for _ in acts]
        handles = [
            a.register_forward_hook(lambda _m, _i, out, s=s: s.add(out, out.shape[0]))
            for a, s in zip(acts, means, strict=True)
        ]
        try:
            with torch.no_grad():
                for b in clip_batches:
                    run(target, b)
        finally:
            for h in handles:
                h.remove()
        # this run's inputs in the converted model (earlier runs already corrected)
        inputs = list(captured_inputs(model, r, clip_batches, lambda b: run(model, b)))
        for k, (neuron, inv) in enumerate(neurons):
            rate = _Mean()
            handle = neuron.register_forward_hook(lambda _m, _i, out, s=rate: s.add(out, out.shape[0]))
            try:
                with torch.no_grad():
                    for x in inputs:
                        r(x)
            finally:
                handle.remove()
                functional.reset_net(r.net)
            target_mean = means[k].value().to(inv.device)
            if target_mean.numel() != neuron.bias.numel():
                raise ConversionError(
                    f"neuron layer {k} of {r.extra_repr()} has {neuron.bias.numel()} channels but "
                    f"the activation it replaces has {target_mean.numel()}"
                )
            # the target in the neuron's units, minus its mean firing rate (mean over steps, clips and positions)
            delta = target_mean * inv - rate.value().to(inv.device)
            neuron.bias += delta.to(neuron.bias.device, neuron.bias.dtype)
            shifts.append(float(delta.abs().mean()))
            done += 1
            if progress is not None:
                progress(done, total)
    return {
        "calibrated": True,
        "method": METHOD,
        "timesteps": runs[0].timesteps if runs else None,
        "clips": sum(int(b.shape[0]) for b in clip_batches),
        "layers": total,
        "mean_abs_shift": sum(shifts) / max(len(shifts), 1),
    }


def reset_bias(model: nn.Module) -> None:
    """Zero every bias current (before calibrating again for another T)."""
    for m in model.modules():
        if isinstance(m, ConvertedIF) and m.bias.numel():
            m.bias.zero_()


__all__ = ["METHOD", "calibrate_bias", "reset_bias"]
