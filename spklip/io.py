"""SPKLIP checkpoints: weights, tokenizer and the full config in this project's format.

The card holds ``kind="spklip"``, the config, the tokenizer (JSON), class names
and prompts, training history and evaluation results. Optimiser and RNG state
for ``--resume`` travel as tensors under the ``_train.`` prefix of the state
dict; :func:`model_state` strips them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spklip_energy.checkpoint import (
    CARD_FORMAT_VERSION,
    TRAIN_STATE_PREFIX,
    Checkpoint,
    build_on_meta,
    check_weights_fit,
    load_checkpoint,
    save_checkpoint,
)
from spklip_energy.errors import CheckpointError, ConfigError, ResourceError, first_line, short_repr
from spklip_energy.options import check_float

from .config import SPKLIPConfig, size_cause, visual_forward_bytes
from .hsfe import legacy_state
from .model import SPKLIP, build_spklip
from .tokenizer import SpikeTextTokenizer

KIND = "spklip"
#: Checkpoint kinds this module loads: the ANN baseline, the two FSVE variants
#: (``SPKLIPConfig.model``) and an ANN whose layers were converted to IF neurons.
CONVERTED_KIND = "spklip-converted"
KINDS = ("spklip", "fsve-hybrid", "fsve-full", CONVERTED_KIND)
TRAIN_PREFIX = TRAIN_STATE_PREFIX


@dataclass
class LoadedSPKLIP:
    model: SPKLIP
    tokenizer: SpikeTextTokenizer
    card: dict
    checkpoint: Checkpoint

    @property
    def converted(self) -> list[str]:
        """The units of the visual encoder that run as rate-coded IF neurons (``hsfe``, ``stem``,
        ``layer1`` ..; a ``spklip-converted`` checkpoint), empty for any other."""
        record = self.card.get("conversion") if self.card.get("kind") == CONVERTED_KIND else None
        if not isinstance(record, dict):
            return []
        from convert.layers import parse_layers

        return parse_layers(record["layers"], self.model.cfg.starnet.enabled)  # checked when it was rebuilt

    def forward_bytes(self, clips: int) -> int:
        """Peak memory of one forward pass of ``clips`` clips through its visual encoder
        (:func:`~spklip.config.visual_forward_bytes`)."""
        return visual_forward_bytes(self.model.cfg, clips, self.converted)


def model_state(ck: Checkpoint) -> dict[str, torch.Tensor]:
    """The model's weights of a checkpoint (training state left out), under today's names."""
    return legacy_state({k: v for k, v in ck.state_dict.items() if not k.startswith(TRAIN_PREFIX)})


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer's state into tensors plus a JSON-able description."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    layout: dict = {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        layout["state"][str(idx)] = {}
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{TRAIN_PREFIX}optim.{idx}.{key}"] = value.detach().cpu().clone()
                layout["state"][str(idx)][key] = "tensor"
            else:
                layout["state"][str(idx)][key] = value
    return tensors, layout


def restore_optimizer(optimizer: torch.optim.Optimizer, ck: Checkpoint) -> None:
    """Load the optimizer state saved by :func:`save_spklip` into ``optimizer``.

    The record is checked against ``optimizer`` first (groups, parameter counts,
    tensor entries and their shapes); a malformed one is one :class:`CheckpointError`.
    """
    where = f"{ck.path}"
    train = ck.card.get("train", {})
    layout = train.get("optimizer") if isinstance(train, dict) else None
    if not layout:
        raise CheckpointError(f"{where}: holds no optimizer state to resume from")

    def bad(problem: str) -> CheckpointError:
        return CheckpointError(f"{where}: the optimizer state to resume from is malformed ({problem})")

    if (
        not isinstance(layout, dict)
        or not isinstance(layout.get("param_groups"), list)
        or not isinstance(layout.get("state"), dict)
    ):
        raise bad("expected an object with a 'param_groups' list and a 'state' object")
    groups = layout["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        raise bad(f"{len(groups)} parameter groups, the model being trained has {len(optimizer.param_groups)}")
    params: dict[int, torch.Tensor] = {}
    for i, (saved, current) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        ids = saved.get("params") if isinstance(saved, dict) else None
        if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            raise bad(f"parameter group {i} has no list of parameter ids")
        if len(ids) != len(current["params"]):
            raise bad(
                f"parameter group {i} holds {len(ids)} parameters, the model being trained "
                f"{len(current['params'])} (a different config or --set?)"
            )
        for key, value in saved.items():
            if key != "params" and key in current and not _same_kind(value, current[key]):
                raise bad(f"parameter group {i} has {key!r} = {short_repr(value)}")
        try:  # AdamW's hyperparameters in their ranges (out of range, step() computes complex numbers)
            for key, low, high in (("lr", 0.0, None), ("weight_decay", 0.0, None), ("eps", 0.0, 1.0)):
                if key in saved:
                    check_float(saved[key], key, low, high)
            for beta in saved.get("betas", ()):
                check_float(beta, "betas", 0.0, 1.0)
                if beta >= 1.0:
                    raise ConfigError(f"betas must be below 1, got {beta}")
        except ConfigError as exc:
            raise bad(f"parameter group {i}: {exc}") from None
        params.update(zip(ids, current["params"], strict=True))
    state = {}
    for idx, entries in layout["state"].items():
        try:
            pid = int(idx)
        except ValueError:
            raise bad(f"state key {idx!r} is not a parameter id") from None
        if pid not in params or not isinstance(entries, dict):
            raise bad(f"state entry {idx!r} names no parameter of the model being trained")
        restored = {}
        for key, value in entries.items():
            if value != "tensor":
                restored[key] = value
                continue
            tensor = ck.state_dict.get(f"{TRAIN_PREFIX}optim.{idx}.{key}")
            if tensor is None:
                raise bad(f"tensor {TRAIN_PREFIX}optim.{idx}.{key} is missing")
            if key != "step" and tuple(tensor.shape) != tuple(params[pid].shape):
                raise bad(
                    f"tensor {TRAIN_PREFIX}optim.{idx}.{key} has shape {list(tensor.shape)}, "
                    f"its parameter {list(params[pid].shape)}"
                )
            if not tensor.is_floating_point():
                raise bad(f"tensor {TRAIN_PREFIX}optim.{idx}.{key} is {tensor.dtype}, not floating point")
            if not bool(torch.isfinite(tensor).all()) or (key == "exp_avg_sq" and bool((tensor < 0).any())):
                raise bad(
                    f"tensor {TRAIN_PREFIX}optim.{idx}.{key} holds "
                    f"{'NaN or Inf' if not bool(torch.isfinite(tensor).all()) else 'negative second moments'}"
                )
            restored[key] = tensor
        state[pid] = restored
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise bad(first_line(exc, 160)) from None


def _same_kind(saved, current) -> bool:
    """Whether a saved optimizer hyper-parameter can stand where ``current`` stands (JSON gives lists)."""
    if current is None or isinstance(current, bool):
        return saved is None or isinstance(saved, bool)
    if isinstance(current, (int, float)):
        return (
            isinstance(saved, int) and not isinstance(saved, bool) or isinstance(saved, float) and math.isfinite(saved)
        )
    if isinstance(current, (list, tuple)):
        return (
            isinstance(saved, (list, tuple))
            and len(saved) == len(current)
            and all(_same_kind(a, b) for a, b in zip(saved, current, strict=True))
        )
    return type(saved) is type(current)


def restore_rng(ck: Checkpoint) -> None:
    """Set torch's CPU random state to the one saved with the optimizer (if any)."""
    rng = ck.state_dict.get(f"{TRAIN_PREFIX}rng.torch")
    if rng is None:
        return
    try:
        if rng.dtype != torch.uint8 or rng.dim() != 1:
            raise ValueError(f"a {rng.dtype} tensor of shape {list(rng.shape)}, not a 1-D uint8 one")
        torch.set_rng_state(rng)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{ck.path}: the random state {TRAIN_PREFIX}rng.torch to resume from is malformed ({first_line(exc, 160)})"
        ) from None


def save_spklip(
    path: str | os.PathLike,
    model: SPKLIP,
    tokenizer: SpikeTextTokenizer,
    card_extra: dict,
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write a SPKLIP checkpoint atomically (with optimizer and RNG state when given)."""
    card = {
        "kind": CONVERTED_KIND if "conversion" in card_extra else model.cfg.model,
        "format_version": CARD_FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "tokenizer": tokenizer.to_json(),
        **card_extra,
    }
    state = {k: v for k, v in model.state_dict().items()}
    if optimizer is not None:
        tensors, layout = optimizer_tensors(optimizer)
        state.update(tensors)
        state[f"{TRAIN_PREFIX}rng.torch"] = torch.get_rng_state()
        card.setdefault("train", {})["optimizer"] = layout
    json.dumps(card)  # fail here, not halfway through writing
    return save_checkpoint(path, state, card)


def card_config(ck: Checkpoint) -> SPKLIPConfig:
    """The config a SPKLIP checkpoint's card describes, checked (cards older than ``fsve.hsfe`` read as
    ``ann``), without building the model."""
    if "config" not in ck.card:
        raise CheckpointError(f"{ck.path}: the card has no 'config'")
    data = ck.card["config"]
    if isinstance(data, dict) and isinstance(data.get("fsve"), dict) and "hsfe" not in data["fsve"]:
        data = {**data, "fsve": {**data["fsve"], "hsfe": "ann"}}  # written before the spiking front end
    try:
        cfg = SPKLIPConfig.from_dict(data)
    except ConfigError as exc:
        raise CheckpointError(f"{ck.path}: config in the checkpoint is invalid ({exc})") from None
    except ResourceError as exc:  # a depth beyond the documented ceiling
        raise ResourceError(f"{ck.path}: {exc}") from None
    expected = "spklip" if ck.kind == CONVERTED_KIND else ck.kind
    if cfg.model != expected:
        raise CheckpointError(f"{ck.path}: its card says kind {ck.kind!r} but its config says model {cfg.model!r}")
    if ck.kind == CONVERTED_KIND and not isinstance(ck.card.get("conversion"), dict):
        raise CheckpointError(f"{ck.path}: a {CONVERTED_KIND!r} card needs a 'conversion' object")
    return cfg


def trained_differently(ck: Checkpoint, cfg: SPKLIPConfig) -> tuple[str, Any, Any] | None:
    """The first ``(dotted key, trained value, planned value)`` where the checkpoint's config means another
    model than ``cfg`` (``fsve.hsfe=auto`` resolved; the FSVE's fields ignored for an ANN), else None: a
    finished run reused for a plan must have trained what the plan asks for."""
    from .config import config_differences

    def meaning(c: SPKLIPConfig) -> dict:
        flat = c.to_dict()
        flat["fsve"]["hsfe"] = c.front_end
        if c.model == "spklip":
            flat.pop("fsve")
        return flat

    diff = config_differences(meaning(card_config(ck)), meaning(cfg))
    return diff[0] if diff else None


def load_spklip(path_or_ck: str | os.PathLike | Checkpoint) -> LoadedSPKLIP:
    """Load a SPKLIP checkpoint (refuses other kinds with a clear error).

    The card is checked before anything is built: its config, that the config's
    model is its kind, the model's size (on the meta device, against the memory
    limit), and that the stored tensors have exactly the names and shapes of the
    model the card describes.
    """
    ck = path_or_ck if isinstance(path_or_ck, Checkpoint) else load_checkpoint(path_or_ck)
    if ck.kind not in KINDS:
        raise CheckpointError(f"{ck.path}: is a {ck.kind!r} checkpoint, not a SPKLIP one ({', '.join(KINDS)})")
    cfg = card_config(ck)
    try:
        tokenizer = SpikeTextTokenizer.from_json(ck.card.get("tokenizer", ""))
    except ConfigError as exc:
        raise CheckpointError(f"{ck.path}: {exc}") from None
    weights = model_state(ck)
    what = f"the {ck.kind!r} model its card describes"
    meta = build_on_meta(lambda: build_spklip(cfg), f"building the model of checkpoint {ck.path}", size_cause(cfg))
    if ck.kind != CONVERTED_KIND:  # a converted structure is only known once built for real
        check_weights_fit(meta, weights, str(ck.path), what)
    del meta
    model = build_spklip(cfg)
    if ck.kind == CONVERTED_KIND:
        from convert import (
            apply_conversion,  # the converted structure, thresholds come with the weights
        )

        try:
            model = apply_conversion(model, ck.card["conversion"])
        except ConfigError as exc:
            raise CheckpointError(f"{ck.path}: conversion record in the checkpoint is invalid ({exc})") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{ck.path}: conversion record in the checkpoint is invalid ({first_line(exc)})"
            ) from None
        check_weights_fit(model, weights, str(ck.path), what)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:  # checked above; a last guard that stays one line
        raise CheckpointError(f"{ck.path}: weights do not fit its config ({first_line(exc)})") from None
    return LoadedSPKLIP(model, tokenizer, ck.card, ck)
