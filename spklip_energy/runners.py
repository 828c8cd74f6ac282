"""One way to turn any checkpoint into a runnable model for analysis: a :class:`Runner`.

A runner knows which module to profile, how to feed it a batch of spike clips
``[B, F, H, W]`` (uint8), and whether its output are class logits. Kinds:

* the zoo's reference models (:mod:`spklip_energy.zoo`): classifier logits;
* ``spklip``: the visual encoder of SPKLIP (what runs once per video; the text
  tower runs once per class prompt and is not profiled), embeddings; the same
  for its spiking variants ``fsve-hybrid`` and ``fsve-full``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from spikedata.clips import ClipSelection, SpikeClips
from spikedata.manifest import Manifest

from .checkpoint import Checkpoint
from .errors import MediaError


@dataclass
class Runner:
    kind: str
    spiking: bool
    module: nn.Module  # what the energy counter hooks
    run: Callable[[torch.Tensor], torch.Tensor]  # spikes [B, F, H, W] uint8 -> output
    logits: bool  # the output are class logits (for measured accuracy)
    config: dict  # the model's config, as recorded in the card
    clips: Callable[[Manifest, str | None], SpikeClips]  # the dataset view this model needs
    forward_bytes: Callable[[int, SpikeClips], int]  # peak memory of one forward pass of B clips of a dataset
    steps: int | None = None  # time steps of a spiking model per pass of its spiking layers (None: not spiking)


def _zoo_runner(ck: Checkpoint) -> Runner:
    from .zoo import load_model, prepare_input, resolve_config, run_model

    model = load_model(ck)  # card, sizes and weights checked before anything is built
    spec, cfg = resolve_config(ck.card)

    def clips(manifest: Manifest, split: str | None) -> SpikeClips:
        ds = SpikeClips(manifest, split=split, selection=ClipSelection())
        if (ds.height, ds.width) != (cfg["height"], cfg["width"]):
            raise MediaError(
                f"{manifest.root}: clips are {ds.height}x{ds.width}, model kind {spec.kind!r} expects "
                f"{cfg['height']}x{cfg['width']}"
            )
        return ds

    def forward_bytes(batch: int, ds: SpikeClips) -> int:
        return batch * ds.frames * ds.height * ds.width * 5  # the clips as uint8 and as the float32 input

    return Runner(
        spec.kind,
        spec.spiking,
        model,
        lambda s: run_model(model, ck.card, prepare_input(ck.card, s)),
        True,
        cfg,
        clips,
        forward_bytes,
        cfg.get("timesteps") if spec.spiking else None,
    )


def _spklip_runner(ck: Checkpoint) -> Runner:
    from spklip.data import clips_for
    from spklip.io import load_spklip

    loaded = load_spklip(ck)
    model = loaded.model.eval()
    cfg = model.cfg
    conversion = ck.card.get("conversion") if isinstance(ck.card.get("conversion"), dict) else None
    steps = conversion["timesteps"] if conversion else cfg.fsve.time_steps if ck.kind != "spklip" else None
    return Runner(
        ck.kind,
        ck.kind != "spklip",
        model.visual,
        model.encode_spikes,
        False,
        cfg.to_dict(),
        lambda manifest, split: clips_for(cfg, manifest, split),
        lambda batch, _ds: loaded.forward_bytes(batch),
        steps,
    )


_RUNNERS: dict[str, Callable[[Checkpoint], Runner]] = {
    "spklip": _spklip_runner,
    "fsve-hybrid": _spklip_runner,
    "fsve-full": _spklip_runner,
    "spklip-converted": _spklip_runner,  # spiking: ANN layers converted to IF neurons (convert)
}


def runner_for(ck: Checkpoint) -> Runner:
    """The runner for a checkpoint's kind (zoo kinds, ``spklip``)."""
    factory = _RUNNERS.get(ck.kind, _zoo_runner)
    return factory(ck)
