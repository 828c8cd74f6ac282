"""SPKLIP checkpoints: weights, tokenizer and the full config in this project's format.

The card holds ``kind="spklip"``, the config, the tokenizer (JSON), class names
and prompts, training history and evaluation results. Optimiser and RNG state
for ``--resume`` travel as tensors under the ``_train.`` prefix of the state
dict; :func:`model_state` strips them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ..errors import CheckpointError, ConfigError
from .config import SPKLIPConfig
from .spklip import SPKLIP, build_spklip
from .tokenizer import SpikeTextTokenizer

KIND = "spklip"
#: Checkpoint kinds this module loads: the ANN baseline, the two FSVE variants
#: (``SPKLIPConfig.model``) and an ANN whose layers were converted to IF neurons.
CONVERTED_KIND = "spklip-converted"
KINDS = ("spklip", "fsve-hybrid", "fsve-full", CONVERTED_KIND)
TRAIN_PREFIX = "_train."


@dataclass
class LoadedSPKLIP:
    model: SPKLIP
    tokenizer: SpikeTextTokenizer
    card: dict
    checkpoint: Checkpoint


def model_state(ck: Checkpoint) -> dict[str, torch.Tensor]:
    return {k: v for k, v in ck.state_dict.items() if not k.startswith(TRAIN_PREFIX)}


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
    layout = ck.card.get("train", {}).get("optimizer")
    if not layout:
        raise CheckpointError(f"{ck.path}: holds no optimizer state to resume from")
    state = {}
    for idx, entries in layout["state"].items():
        state[int(idx)] = {
            key: (ck.state_dict[f"{TRAIN_PREFIX}optim.{idx}.{key}"] if value == "tensor" else value)
            for key, value in entries.items()
        }
    optimizer.load_state_dict({"state": state, "param_groups": layout["param_groups"]})


def save_spklip(path: str | os.PathLike, model: SPKLIP, tokenizer: SpikeTextTokenizer, card_extra: dict,
                optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write a SPKLIP checkpoint atomically (with optimizer and RNG state when given)."""
    card = {
        "kind": CONVERTED_KIND if "conversion" in card_extra else model.cfg.model,
        "format_version": 1,
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


def load_spklip(path_or_ck: str | os.PathLike | Checkpoint) -> LoadedSPKLIP:
    """Load a SPKLIP checkpoint (refuses other kinds with a clear error)."""
    ck = path_or_ck if isinstance(path_or_ck, Checkpoint) else load_checkpoint(path_or_ck)
    if ck.kind not in KINDS:
        raise CheckpointError(f"{ck.path}: is a {ck.kind!r} checkpoint, not a SPKLIP one ({', '.join(KINDS)})")
    try:
        cfg = SPKLIPConfig.from_dict(ck.card["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{ck.path}: config in the checkpoint is invalid ({exc})") from None
    tokenizer = SpikeTextTokenizer.from_json(ck.card.get("tokenizer", ""))
    model = build_spklip(cfg)
    if ck.kind == CONVERTED_KIND:
        from ..convert import (
            apply_conversion,  # the converted structure, thresholds come with the weights
        )

        try:
            model = apply_conversion(model, ck.card["conversion"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ck.path}: conversion record in the checkpoint is invalid ({exc})") from None
    try:
        model.load_state_dict(model_state(ck), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{ck.path}: weights do not fit its config ({first})") from None
    return LoadedSPKLIP(model, tokenizer, ck.card, ck)
