"""Convert a SPKLIP ANN (``convert_spklip``) and rebuild a converted one from its record (``apply_conversion``).

Where a run goes in the model:

* a run that starts with ``hsfe`` becomes ``visual.hsfe.snn`` (the HSFE turns into a
  :class:`~.ratecode.ConvertedHSFE`: MTF branches and SA analog, then the run);
  STAR-Net units in the same run are replaced by ``nn.Identity``;
* a run that starts at ``stem`` or ``layerK`` replaces that module of
  ``visual.starnet.spatial``; its other units become ``nn.Identity``.

The record (``spec``, stored in the checkpoint card under ``"conversion"``) holds
everything needed to rebuild the structure; weights, fused biases and the
threshold-balancing scales travel in the state dict (scales are buffers).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from spklip.model import SPKLIP

from .calibrate import build_snn, captured_inputs, check_method, neuron_name
from .layers import ConversionError, parse_layers, runs
from .ratecode import ConvertedHSFE, HSFETrunk, RateCoded, check_timesteps, split_static

#: version of the conversion record; 1 (legacy neurons, no bias) is still read
FORMAT = 2
DEFAULT_PERCENTILE = 99.9


def default_v_init(method: str) -> float:
    """θ/2 where the method comes with it (QCFS, spikingjelly's robust recipe), else 0 (as before)."""
    return 0.5 if method in ("qcfs", "robust") else 0.0


def _check_model(model: SPKLIP) -> None:
    if not isinstance(model, SPKLIP):
        raise TypeError(f"expected a SPKLIP model, got {type(model).__name__}")
    if model.cfg.model != "spklip":
        raise ConversionError(f"the model is already spiking ({model.cfg.model}); only the ANN SPKLIP converts")
    if any(isinstance(m, RateCoded) for m in model.modules()):
        raise ConversionError("the model is already converted")


def _site(model: SPKLIP, unit: str) -> nn.Module:
    """The module whose input is the input of a run starting at ``unit``."""
    if unit == "hsfe":
        return model.visual.hsfe.head
    return getattr(model.visual.starnet.spatial, unit)


def _subnet(model: SPKLIP, run: list[str]) -> nn.Sequential:
    hsfe = model.visual.hsfe
    parts = [HSFETrunk(hsfe.head, hsfe.trunk) if u == "hsfe" else getattr(model.visual.starnet.spatial, u) for u in run]
    return nn.Sequential(*parts)


def _install(model: SPKLIP, run: list[str], net, timesteps: int) -> None:
    wrapper = RateCoded(*split_static(net), timesteps, run)
    if run[0] == "hsfe":
        hsfe = model.visual.hsfe
        hsfe.__class__ = ConvertedHSFE
        del hsfe.head, hsfe.trunk
        hsfe.snn = wrapper
    else:
        setattr(model.visual.starnet.spatial, run[0], wrapper)
    for unit in run[1:]:
        setattr(model.visual.starnet.spatial, unit, nn.Identity())


def _parse_spec(model: SPKLIP, spec: dict) -> tuple[list[str], int, str, float, float | None, bool]:
    if not isinstance(spec, dict):
        raise TypeError(f"conversion record must be an object, got {type(spec).__name__}")
    fmt = spec.get("format", 1)
    if fmt not in (1, FORMAT):
        raise ValueError(f"conversion record format {fmt!r} is not supported (this version reads 1 and {FORMAT})")
    layers = spec["layers"]
    if not isinstance(layers, list) or not layers:
        raise TypeError(f"'layers' must be a non-empty list of names, got {layers!r}")
    layers = parse_layers(layers, model.cfg.starnet.enabled)
    method, percentile = check_method(spec["method"], spec.get("percentile", DEFAULT_PERCENTILE))
    v_init, bias = None, False
    if fmt == FORMAT:
        v_init = spec["v_init"]
        if isinstance(v_init, bool) or not isinstance(v_init, (int, float)) or not 0 <= v_init < 1:
            raise ValueError(f"'v_init' must be a number in [0, 1), got {v_init!r}")
        bias = spec.get("bias_calibration") is not None
    elif method == "qcfs":
        raise ValueError("a QCFS conversion record must have format 2")
    return (
        layers,
        check_timesteps(spec["timesteps"]),
        method,
        percentile,
        float(v_init) if fmt == FORMAT else None,
        bias,
    )


def make_spec(
    layers: list[str],
    timesteps: int,
    method: str,
    percentile: float,
    calib_clips: int,
    v_init: float = 0.0,
    bias_calibration: dict | None = None,
    qcfs: dict | None = None,
) -> dict:
    """The JSON record of a conversion (what ``apply_conversion`` reads back).

    ``bias_calibration``: what :mod:`.biascal` did (None: no bias currents); ``qcfs``: levels and the fine-tuning
    record of a QCFS conversion."""
    return {
        "format": FORMAT,
        "layers": list(layers),
        "runs": runs(layers),
        "timesteps": timesteps,
        "method": method,
        "percentile": percentile,
        "calib_clips": calib_clips,
        "neuron": neuron_name(method, v_init),
        "v_init": v_init,
        "bias_calibration": bias_calibration,
        **({"qcfs": qcfs} if qcfs is not None else {}),
        "reset": "soft (subtract threshold)",
        "coding": "rate: T steps on the same analog input, mean output, neurons reset per call",
        "recipe": "spikingjelly.activation_based.ann2snn.RateCodingRecipe"
        + (" (channel_wise)" if method == "robust" else "")
        + (" with the QCFS thresholds learned by fine-tuning" if method == "qcfs" else ""),
    }


def apply_conversion(model: SPKLIP, spec: dict) -> SPKLIP:
    """Rebuild the converted structure described by ``spec`` on a freshly built SPKLIP (in place).

    No calibration data is needed: thresholds get placeholders, and
    ``model.load_state_dict(saved_state, strict=True)`` then restores weights and scales.
    Raises ValueError / KeyError / TypeError for a bad record.
    """
    _check_model(model)
    layers, timesteps, method, percentile, v_init, bias = _parse_spec(model, spec)
    nets = [
        (run, build_snn(_subnet(model, run), method, percentile, None, v_init=v_init, bias=bias))
        for run in runs(layers)
    ]
    for run, net in nets:
        _install(model, run, net, timesteps)
    return model


def convert_spklip(
    model: SPKLIP,
    layers: str | Sequence[str],
    timesteps: int,
    calib_batches: Sequence[torch.Tensor],
    method: str = "max",
    percentile: float = DEFAULT_PERCENTILE,
    progress: Callable[[int, int], None] | None = None,
    v_init: float | None = None,
    bias: bool = False,
) -> tuple[SPKLIP, dict]:
    """Convert ``layers`` of an ANN SPKLIP to IF neurons, thresholds balanced on ``calib_batches``.

    ``calib_batches``: a sequence of spike-clip batches ``[B, F, H, W]`` (read once per run, so it
    may load them lazily). ``v_init``: the neurons' initial membrane potential as a fraction of the
    threshold (None: :func:`default_v_init` of the method). ``bias``: give the neurons per-channel bias
    currents (zero here; :func:`~.biascal.calibrate_bias` sets them). For ``method="qcfs"`` ``model`` must
    carry learned thresholds on its ReLUs (:func:`~.qcfs.to_relu`).
    Returns ``(converted copy, spec)``; ``model`` itself is left unchanged.
    """
    _check_model(model)
    method, percentile = check_method(method, percentile)
    v_init = default_v_init(method) if v_init is None else float(v_init)
    timesteps = check_timesteps(timesteps)
    names = parse_layers(list(layers) if not isinstance(layers, str) else layers, model.cfg.starnet.enabled)
    batches = calib_batches
    n_batches = len(batches)
    if not n_batches:
        raise ConversionError("no calibration data: give at least one clip")
    ann = copy.deepcopy(model).eval()
    groups = runs(names)
    seen = [0]
    nets = []
    for i, run in enumerate(groups):
        site = _site(ann, run[0])

        def stream(site=site, first=i == 0):
            for b in batches:
                if first:
                    seen[0] += int(b.shape[0])
                yield from captured_inputs(ann, site, [b], ann.encode_spikes)

        def step(done: int, i=i) -> None:
            if progress is not None:
                progress(i * n_batches + done, len(groups) * n_batches)

        try:
            nets.append((run, build_snn(_subnet(ann, run), method, percentile, stream, step, v_init=v_init, bias=bias)))
        except ValueError as exc:
            if "no calibration data" in str(exc):
                raise ConversionError("no calibration data: give at least one clip") from None
            raise
    for run, net in nets:
        _install(ann, run, net, timesteps)
    return ann.eval(), make_spec(
        names, timesteps, method, percentile, seen[0], v_init, {"calibrated": False} if bias else None
    )


def convert_module(
    net: nn.Module,
    calib_inputs: Sequence[torch.Tensor],
    timesteps: int,
    method: str = "max",
    percentile: float = DEFAULT_PERCENTILE,
    units: Sequence[str] = ("net",),
    v_init: float | None = None,
    bias: bool = False,
) -> RateCoded:
    """Convert any FX-traceable ReLU CNN to a :class:`RateCoded` run, thresholds balanced on
    ``calib_inputs`` (batches of ``net``'s input); for ``qcfs`` its ReLUs carry learned thresholds
    (:func:`~.qcfs.to_relu`). ``net`` itself is left unchanged."""
    method, percentile = check_method(method, percentile)
    v_init = default_v_init(method) if v_init is None else float(v_init)
    snn = build_snn(copy.deepcopy(net).eval(), method, percentile, lambda: iter(calib_inputs), v_init=v_init, bias=bias)
    return RateCoded(*split_static(snn), check_timesteps(timesteps), list(units)).eval()


def converted_runs(model: nn.Module) -> list[RateCoded]:
    """The rate-coded runs of a model (empty for an ANN)."""
    return [m for m in model.modules() if isinstance(m, RateCoded)]


__all__ = ["apply_conversion", "convert_module", "convert_spklip", "converted_runs", "make_spec"]
