"""Label-aware flip augmentation for spike clips and their captions.

A horizontal or vertical mirror of a spike clip is a valid clip, but for motion
classes it may be a clip of *another* class (a digit moving left, mirrored, moves
right) and its caption must change with it. A dataset declares this in
``dataset.json`` under ``"symmetries"``::

    {"hflip": {"classes": {"left": "right", ...}, "words": {"left": "right", ...}},
     "vflip": {...}}

``classes`` maps a class to its mirror image (classes not listed are unchanged)
and ``words`` swaps whole words of the caption. A flip the dataset does not
declare is not applied, except that ``hflip`` is label-preserving for datasets
that declare nothing (the usual left-right augmentation of action datasets such
as HMDB51/UCF101). The built-in spike-digits data declares both flips
(:data:`spikedata.digits.SYMMETRIES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from spikedata.manifest import Manifest

FLIP_DIMS = {"hflip": -1, "vflip": -2}


@dataclass(frozen=True)
class Flip:
    name: str  # "hflip" or "vflip"
    label_map: tuple[int, ...]  # class index -> class index of the mirrored clip
    words: dict

    def caption(self, text: str) -> str:
        if not self.words:
            return text
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(self.words, key=len, reverse=True))) + r")\b")
        return pattern.sub(lambda m: self.words[m.group(1)], text)


def dataset_flips(manifest: Manifest) -> list[Flip]:
    """The flips a dataset allows, from its ``symmetries`` (see the module docstring)."""
    from spikedata.digits import DATASET_NAME, SYMMETRIES

    meta = manifest.meta or {}
    sym = meta.get("symmetries")
    if sym is None and meta.get("name") == DATASET_NAME:
        sym = SYMMETRIES  # datasets generated before the field existed
    if sym is None:
        sym = {"hflip": {"classes": {}, "words": {}}}
    classes = list(manifest.classes)
    flips = []
    for name in ("hflip", "vflip"):
        if name not in sym:
            continue
        cmap = dict(sym[name].get("classes", {}))
        cmap.update({v: k for k, v in list(cmap.items())})
        label_map = tuple(classes.index(cmap[c]) if cmap.get(c) in classes else i for i, c in enumerate(classes))
        flips.append(Flip(name, label_map, dict(sym[name].get("words", {}))))
    return flips


def draw_flips(n: int, flips: list[Flip], generator: torch.Generator, p: float = 0.5) -> list[tuple]:
    """Which of ``n`` clips each declared flip mirrors (probability ``p`` each), one tuple of booleans per
    clip; one ``torch.rand(n)`` per flip, in order (so the draws of a global batch are the same on every
    rank of a distributed run, which then applies its own slice)."""
    states: list[tuple] = [() for _ in range(n)]
    for _ in flips:
        draw = (torch.rand(n, generator=generator) < p).tolist()
        states = [s + (bool(d),) for s, d in zip(states, draw, strict=True)]
    return states


def apply_flips(
    spikes: torch.Tensor, labels: torch.Tensor, captions: list[str], flips: list[Flip], states: list[tuple]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Mirror the clips ``[B, F, H, W]`` as :func:`draw_flips` chose; labels and captions follow."""
    if not flips:
        return spikes, labels, captions
    labels, captions = labels.clone(), list(captions)
    dims: list[set[int]] = [set() for _ in states]  # each clip's flips composed: mirrors along a dim cancel in pairs
    for j, flip in enumerate(flips):
        for i, s in enumerate(states):
            if s[j]:
                dims[i] ^= {FLIP_DIMS[flip.name] % spikes.dim() - 1}  # the dim within one clip [F, H, W]
                labels[i] = flip.label_map[int(labels[i])]
                captions[i] = flip.caption(captions[i])
    if any(dims):  # one copy of the batch (a mirrored clip is written once), not one per flip
        spikes = torch.stack([clip.flip(tuple(sorted(d))) if d else clip for clip, d in zip(spikes, dims, strict=True)])
    return spikes, labels, captions


def flip_batch(
    spikes: torch.Tensor,
    labels: torch.Tensor,
    captions: list[str],
    flips: list[Flip],
    generator: torch.Generator,
    p: float = 0.5,
    states: list | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Mirror each clip ``[B, F, H, W]`` with probability ``p`` per declared flip; labels and
    captions follow. Deterministic for ``generator``. ``states``, when given (an empty list), receives
    each clip's flips as a tuple of booleans (one per flip), e.g. to key a cache of features."""
    drawn = draw_flips(len(spikes), flips, generator, p)
    if states is not None:
        states[:] = drawn
    return apply_flips(spikes, labels, captions, flips, drawn)


__all__ = ["Flip", "apply_flips", "dataset_flips", "draw_flips", "flip_batch"]
