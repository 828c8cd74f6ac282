"""Small models that checkpoints can describe, built by one factory from a card.

These stand in for the SPKLIP / FSVE encoders of later milestones so that
``spklip-energy report`` has real ANN and SNN models (plain torch, spikingjelly
multi-step and single-step, snnTorch, and spikingjelly's MS-ResNet-18) to
profile. A card names the model: ``{"kind": ..., "config": {...}}``.

Every kind shares these config fields (see :data:`SHARED_DEFAULTS`):

``timesteps``
    T, the number of time windows a spike clip is cut into.
``height``, ``width``
    frame size the model expects (the clip's H and W must match).
``num_classes``
    width of the output logits.
``seed``
    weights are initialised under ``torch.manual_seed(seed)``; the global RNG
    state is restored afterwards.

Adding a kind is one builder function decorated with :func:`_register`.

Inputs / outputs (see :func:`prepare_input` and :func:`run_model`):

- ANN kinds take ``[B, T, H, W]`` float32 spike rates per window.
- spiking kinds take ``[T, B, 1, H, W]`` float32 binary spikes (OR per window).
- every kind returns logits ``[B, num_classes]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import snntorch
import torch
from spikingjelly.activation_based import base as sj_base
from spikingjelly.activation_based import layer, neuron, surrogate
from spikingjelly.activation_based.model import ms_resnet
from torch import nn

from .checkpoint import CARD_FORMAT_VERSION, build_on_meta, check_weights_fit, config_cause
from .errors import CheckpointError, ConfigError, MediaError, short_repr
from .options import MAX_INT, check_positive_int, check_seed

SHARED_DEFAULTS: dict[str, int] = {
    "timesteps": 4,  # T: time windows per clip
    "height": 64,  # expected frame height in pixels
    "width": 64,  # expected frame width in pixels
    "num_classes": 8,  # output logits per sample
    "seed": 0,  # torch.manual_seed used while initialising weights
}
#: the check of each shared field's value (seed: what numpy's legacy RandomState takes, torch takes more)
_CHECKS = {
    "timesteps": partial(check_positive_int, maximum=MAX_INT),
    "height": partial(check_positive_int, maximum=MAX_INT),
    "width": partial(check_positive_int, maximum=MAX_INT),
    "num_classes": partial(check_positive_int, maximum=MAX_INT),
    "seed": check_seed,
}


@dataclass(frozen=True)
class ModelSpec:
    """One model kind of the zoo."""

    kind: str  # the card's "kind"
    description: str  # one line for listings and reports
    spiking: bool  # True: input [T, B, 1, H, W] binary spikes; False: [B, T, H, W] rates
    builder: Callable[[dict], nn.Module]  # full config -> freshly initialised model
    default_config: dict  # every config key the kind accepts, with its default


MODEL_KINDS: dict[str, ModelSpec] = {}


def _register(kind: str, description: str, spiking: bool, **extra_defaults: Any):
    """Add the decorated builder to :data:`MODEL_KINDS` under ``kind`` (once)."""

    def decorate(builder: Callable[[dict], nn.Module]) -> Callable[[dict], nn.Module]:
        if kind in MODEL_KINDS:
            raise ValueError(f"model kind {kind!r} is registered twice")
        defaults = {**SHARED_DEFAULTS, **extra_defaults}
        MODEL_KINDS[kind] = ModelSpec(kind, description, spiking, builder, defaults)
        return builder

    return decorate


# --------------------------------------------------------------------------- models


class SJMultiStepNet(nn.Module):
    """A spikingjelly network run in multi-step mode (all T steps in one call).

    Inputs: ``x`` ``[T, B, 1, H, W]``. Outputs: logits ``[B, num_classes]``, the
    mean over T of the per-step outputs.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(0)


class SJSingleStepNet(nn.Module):
    """A spikingjelly network in single-step mode, called once per time step.

    Inputs: ``x`` ``[T, B, 1, H, W]``. Outputs: logits ``[B, num_classes]``, the
    mean over T. Forward hooks on its layers fire T times per forward.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.net(x_t) for x_t in x]).mean(0)


class SnnTorchNet(nn.Module):
    """Two conv + BN + ``snntorch.Leaky`` stages, a pooled linear readout, looped over T.

    Membranes start at zero on every forward, so calls are independent.
    Inputs: ``x`` ``[T, B, 1, H, W]``. Outputs: logits ``[B, num_classes]``, the
    mean over T of the readout of the second stage's spikes.
    """

    def __init__(self, num_classes: int, beta: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        # snnTorch reads its scalar buffers back with .item() while building, which a
        # model sized on the meta device (see build_model) cannot do; they are scalars.
        with torch.device("cpu"):
            self.lif1 = snntorch.Leaky(beta=beta)
            self.lif2 = snntorch.Leaky(beta=beta)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reset_mem() returns zeros of the previous shape; Leaky replaces a
        # membrane of the wrong shape by zeros of the input's shape.
        mem1 = self.lif1.reset_mem()
        mem2 = self.lif2.reset_mem()
        outputs = []
        for x_t in x:
            spk1, mem1 = self.lif1(self.bn1(self.conv1(x_t)), mem1)
            spk2, mem2 = self.lif2(self.bn2(self.conv2(spk1)), mem2)
            outputs.append(self.fc(self.flatten(self.pool(spk2))))
        return torch.stack(outputs).mean(0)


def _sj_layers(num_classes: int, step_mode: str) -> nn.Sequential:
    """Conv-BN-LIF twice, then pool and a linear readout, all in ``step_mode``."""

    def lif() -> neuron.LIFNode:
        return neuron.LIFNode(
            tau=2.0,
            detach_reset=True,
            surrogate_function=surrogate.Sigmoid(),  # own instance, not the shared default
            step_mode=step_mode,
        )

    return nn.Sequential(
        layer.Conv2d(1, 16, 3, stride=2, padding=1, bias=False, step_mode=step_mode),
        layer.BatchNorm2d(16, step_mode=step_mode),
        lif(),
        layer.Conv2d(16, 32, 3, stride=2, padding=1, bias=False, step_mode=step_mode),
        layer.BatchNorm2d(32, step_mode=step_mode),
        lif(),
        layer.AdaptiveAvgPool2d(1, step_mode=step_mode),
        layer.Flatten(step_mode=step_mode),
        layer.Linear(32, num_classes, step_mode=step_mode),
    )


@_register("test-ann-cnn", "two-layer CNN (plain torch) on per-window spike rates", spiking=False)
def _build_ann_cnn(cfg: dict) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cfg["timesteps"], 16, 3, stride=2, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, cfg["num_classes"]),
    )


@_register("test-sj-snn", "two-layer LIF CNN (spikingjelly, multi-step)", spiking=True)
def _build_sj_snn(cfg: dict) -> nn.Module:
    return SJMultiStepNet(_sj_layers(cfg["num_classes"], "m"))


@_register("test-sj-snn-single", "two-layer LIF CNN (spikingjelly, single-step loop)", spiking=True)
def _build_sj_snn_single(cfg: dict) -> nn.Module:
    return SJSingleStepNet(_sj_layers(cfg["num_classes"], "s"))


@_register("test-snntorch-snn", "two-layer Leaky CNN (snnTorch, loop over T)", spiking=True)
def _build_snntorch_snn(cfg: dict) -> nn.Module:
    model = SnnTorchNet(cfg["num_classes"])
    _forget_snntorch_instances(model)
    return model


@_register("sj-ms-resnet18", "MS-ResNet-18 (spikingjelly model zoo)", spiking=True)
def _build_ms_resnet18(cfg: dict) -> nn.Module:
    return ms_resnet.ms_resnet18(T=cfg["timesteps"], in_channels=1, num_classes=cfg["num_classes"])


def _forget_snntorch_instances(model: nn.Module) -> None:
    """Drop ``model``'s neurons from snnTorch's class-level list of every neuron ever built.

    snnTorch keeps that list only for ``init_hidden`` bulk resets, which these
    models do not use; without this every built model stays alive for the
    whole process.
    """
    registry = getattr(snntorch.SpikingNeuron, "instances", None)
    if isinstance(registry, list):
        ours = {id(m) for m in model.modules()}
        registry[:] = [m for m in registry if id(m) not in ours]


# --------------------------------------------------------------------------- factory


def model_spec(kind: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``kind``."""
    spec = MODEL_KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        valid = ", ".join(sorted(MODEL_KINDS))
        raise ConfigError(f"unknown model kind {short_repr(kind)}; valid kinds: {valid}")
    return spec


def resolve_config(card_or_kind: Any, config: Mapping | None = None) -> tuple[ModelSpec, dict]:
    """The spec and the full config: defaults, updated by the card's config, then ``config``.

    ``card_or_kind`` is a kind name, a card dict or anything with a ``card``
    attribute (a :class:`~spklip_energy.checkpoint.Checkpoint`).
    """
    card = getattr(card_or_kind, "card", card_or_kind)
    if isinstance(card, str):
        kind, card_config = card, {}
    elif isinstance(card, Mapping):
        kind, card_config = card.get("kind"), card.get("config")
        if card_config is None:
            card_config = {}
        if not isinstance(card_config, Mapping):
            raise ConfigError(f"the config of a {short_repr(kind)} card must be a dict, got {short_repr(card_config)}")
    else:
        raise ConfigError(f"expected a model kind or a card dict, got {type(card).__name__}")
    spec = model_spec(kind)
    overrides = {**card_config, **(config or {})}
    unknown = sorted(map(str, set(overrides) - set(spec.default_config)))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(short_repr(k) for k in unknown[:5])} for model kind {kind!r}; "
            f"valid keys: {', '.join(spec.default_config)}"
        )
    full = {**spec.default_config, **overrides}
    for key, check in _CHECKS.items():
        value, name = full[key], f"config field {key!r} of model kind {kind!r}"
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):  # a card holds JSON integers
            raise ConfigError(f"{name} must be an integer, got {short_repr(value)}")
        full[key] = check(int(value), name)
    return spec, full


def default_card(kind: str, **config_overrides: Any) -> dict:
    """A card for ``kind`` with every config field spelled out."""
    spec, config = resolve_config(kind, config_overrides)
    return {"kind": spec.kind, "config": config, "format_version": CARD_FORMAT_VERSION}


def build_model(card_or_kind: Any, config: Mapping | None = None) -> nn.Module:
    """A freshly initialised model for a card (or a kind name plus ``config``).

    Initialisation is deterministic for a config ``seed``; the global torch RNG
    state is the same before and after the call. The model is first built on the
    ``meta`` device (no memory) and refused with a
    :class:`~spklip_energy.errors.ResourceError` when its weights would not fit the
    memory limit (:mod:`spklip_energy.limits`).
    """
    spec, full = resolve_config(card_or_kind, config)
    _meta_model(spec, full, _describe(card_or_kind, spec))
    return _build(spec, full)


def _build(spec: ModelSpec, full: dict) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(full["seed"])
        return spec.builder(full)


def _meta_model(spec: ModelSpec, full: dict, what: str) -> nn.Module:
    cause = config_cause(full, spec.default_config, f"kind {spec.kind!r}", ignore=("seed",))
    return build_on_meta(lambda: spec.builder(full), f"building {what}", cause)


def _describe(card_or_kind: Any, spec: ModelSpec) -> str:
    path = getattr(card_or_kind, "path", None)
    return f"the {spec.kind!r} model of checkpoint {path}" if path is not None else f"a {spec.kind!r} model"


def check_checkpoint(ck: Any) -> tuple[ModelSpec, dict]:
    """Check a zoo checkpoint without building its model: card, size, weights' names and shapes.

    Every problem is one :class:`~spklip_energy.errors.SpklipError` naming the file
    (a bad card value: :class:`CheckpointError`; too large: ``ResourceError``).
    Returns the spec and the full config.
    """
    try:
        spec, full = resolve_config(ck)
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {ck.path}: {exc}") from None
    meta = _meta_model(spec, full, _describe(ck, spec))
    check_weights_fit(meta, ck.state_dict, f"checkpoint {ck.path}", f"the {spec.kind!r} model its card describes")
    return spec, full


def load_model(ck: Any) -> nn.Module:
    """The model of a zoo checkpoint, built from its card and loaded with its weights (eval mode).

    Checked first (:func:`check_checkpoint`): nothing is allocated for a card whose
    sizes are out of bounds or whose weights do not fit it.
    """
    spec, full = check_checkpoint(ck)
    model = _build(spec, full)
    model.load_state_dict(ck.state_dict, strict=True)
    return model.eval()


def prepare_input(card: Any, spikes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Turn a batch of spike clips into the model input of ``card``'s kind.

    ``spikes`` is ``[B, F, H, W]`` (uint8 0/1 or bool) with ``F >= timesteps``
    and H, W equal to the config's. The F frames are cut into T equal
    consecutive windows of ``F // T`` frames; the last ``F % T`` frames are
    dropped. Spiking kinds get, per window, the OR of its frames: float32
    ``[T, B, 1, H, W]`` with values 0/1. ANN kinds get the spike rate of each
    window as a channel: float32 ``[B, T, H, W]`` in [0, 1].
    """
    spec, cfg = resolve_config(card)
    if isinstance(spikes, np.ndarray):
        spikes = torch.from_numpy(np.ascontiguousarray(spikes))  # np.flipud gives negative strides
    if not isinstance(spikes, torch.Tensor):
        raise MediaError(f"spikes must be a tensor or array, got {type(spikes).__name__}")
    if spikes.dtype not in (torch.uint8, torch.bool):
        raise MediaError(f"spikes must be uint8 or bool, found dtype {spikes.dtype}")
    t, h, w = cfg["timesteps"], cfg["height"], cfg["width"]
    if spikes.ndim != 4 or tuple(spikes.shape[2:]) != (h, w):
        raise MediaError(
            f"spikes for model kind {spec.kind!r} must have shape [B, F, {h}, {w}], found {list(spikes.shape)}"
        )
    b, f = spikes.shape[:2]
    if f < t:
        raise MediaError(f"spikes have {f} frames, fewer than the {t} timesteps of model kind {spec.kind!r}")
    window = f // t
    fired = (spikes[:, : window * t] != 0).reshape(b, t, window, h, w)
    if spec.spiking:
        steps = fired.any(dim=2).to(torch.float32)  # [B, T, H, W]
        return steps.transpose(0, 1).unsqueeze(2).contiguous()  # [T, B, 1, H, W]
    return fired.sum(dim=2, dtype=torch.float32) / window  # [B, T, H, W]


def input_layout(card: Any) -> tuple[int | str, ...]:
    """The input shape of ``card``'s kind with ``"B"`` for the batch size, e.g. ``(4, "B", 1, 64, 64)``."""
    spec, cfg = resolve_config(card)
    t, h, w = cfg["timesteps"], cfg["height"], cfg["width"]
    return (t, "B", 1, h, w) if spec.spiking else ("B", t, h, w)


def reset_states(model: nn.Module) -> None:
    """Reset every neuron's state in ``model`` (spikingjelly memories, snnTorch membranes).

    Walks the module tree each time (spikingjelly's ``reset_net`` caches the
    module list, which goes stale when modules are swapped after a first call).
    """
    for module in model.modules():
        if isinstance(module, sj_base.MemoryModule):
            module.reset()
        elif isinstance(module, snntorch.SpikingNeuron) and hasattr(module, "reset_mem"):
            module.reset_mem()


def run_model(model: nn.Module, card: Any, inputs: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on ``inputs`` from :func:`prepare_input`; logits ``[B, num_classes]``.

    Neuron state is reset first, so calls are independent. ``inputs`` are moved
    to the device of the model's parameters. Gradient mode and train/eval mode
    are the caller's.
    """
    spec, cfg = resolve_config(card)
    if not isinstance(inputs, torch.Tensor):
        raise MediaError(f"inputs must be a tensor, got {type(inputs).__name__}")
    layout = input_layout(card)
    fits = inputs.ndim == len(layout) and all(d == "B" or d == n for d, n in zip(layout, inputs.shape, strict=True))
    if not fits:
        shown = ", ".join(map(str, layout))
        raise MediaError(f"inputs for model kind {spec.kind!r} must have shape [{shown}], found {list(inputs.shape)}")
    batch = inputs.shape[layout.index("B")]
    param = next(model.parameters(), None)
    if param is not None:
        inputs = inputs.to(param.device)
    reset_states(model)
    logits = model(inputs)
    if tuple(logits.shape) != (batch, cfg["num_classes"]):
        raise ConfigError(
            f"model of kind {spec.kind!r} returned shape {list(logits.shape)}, expected {[batch, cfg['num_classes']]}"
        )
    return logits
