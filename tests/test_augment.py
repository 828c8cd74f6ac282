"""Label-aware flip augmentation and the class-prompt loss."""

from __future__ import annotations

import math

import torch

from spikedata.digits import MOTIONS, SYMMETRIES
from spikedata.manifest import Manifest
from spklip.augment import (
    FLIP_DIMS,
    apply_flips,
    dataset_flips,
    draw_flips,
    flip_batch,
)
from spklip.loss import class_prompt_loss


def _manifest(meta):
    return Manifest(root=None, clips=[], classes=list(MOTIONS), class_prompts={m: m for m in MOTIONS}, meta=meta)


def test_digit_flips_swap_classes_and_caption_words():
    flips = {f.name: f for f in dataset_flips(_manifest({"name": "spike-digits", "symmetries": SYMMETRIES}))}
    h, v = flips["hflip"], flips["vflip"]
    idx = MOTIONS.index
    assert h.label_map[idx("left")] == idx("right") and h.label_map[idx("right")] == idx("left")
    assert h.label_map[idx("rotate_cw")] == idx("rotate_ccw") and h.label_map[idx("up")] == idx("up")
    assert v.label_map[idx("up")] == idx("down") and v.label_map[idx("zoom_in")] == idx("zoom_in")
    assert h.caption("a two drifts slowly to the left on the right") == "a two drifts slowly to the right on the left"
    assert v.caption("a seven rises quickly near the bottom") == "a seven falls quickly near the top"
    assert h.caption("a one spins slowly counterclockwise") == "a one spins slowly clockwise"


def test_unknown_dataset_gets_label_preserving_hflip_only():
    flips = dataset_flips(_manifest({"name": "ucf101-s"}))
    assert [f.name for f in flips] == ["hflip"] and flips[0].label_map == tuple(range(len(MOTIONS)))


def test_flip_batch_mirrors_spikes_with_labels_deterministically():
    flips = dataset_flips(_manifest({"name": "spike-digits"}))
    x = torch.zeros(64, 3, 4, 5, dtype=torch.uint8)
    x[:, :, 0, 0] = 1  # a spike in the top-left corner
    labels = torch.full((64,), MOTIONS.index("left"))
    caps = ["moves to the left"] * 64
    a = flip_batch(x, labels, caps, flips, torch.Generator().manual_seed(3))
    b = flip_batch(x, labels, caps, flips, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    xs, ys, cs = a
    h_flipped = xs[:, 0, :, -1].sum(dim=1) > 0  # the spike moved to the right edge
    assert 0 < int(h_flipped.sum()) < 64  # some clips flipped, some not
    assert ((ys == MOTIONS.index("right")) == h_flipped).all()
    assert all((c == "moves to the right") == bool(f) for c, f in zip(cs, h_flipped, strict=True))
    assert x[:, :, 0, 0].all()  # the input is untouched


def test_class_prompt_loss_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 6, generator=g), torch.randn(3, 6, generator=g)
    y = torch.tensor([0, 2, 1, 1, 0])
    scale = torch.tensor(10.0)
    direct = 0.0
    for i in range(5):
        sims = [scale * (s[i] @ t[c]) / (s[i].norm() * t[c].norm()) for c in range(3)]
        direct += -(sims[int(y[i])] - math.log(sum(math.exp(float(v)) for v in sims)))
    assert torch.isclose(class_prompt_loss(s, t, scale, y), torch.tensor(float(direct) / 5), atol=1e-5)


def test_composed_flips_equal_one_flip_after_another():
    """Both mirrors of the digits (h and v), drawn per clip, applied in one copy: the same clips,
    labels and captions as mirroring once per declared flip."""
    flips = dataset_flips(_manifest({"name": "spike-digits"}))
    assert len(flips) == 2
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 2, (32, 3, 4, 5), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, len(MOTIONS), (32,), generator=g)
    caps = [f"moves to the {MOTIONS[int(y)]}" for y in labels]
    states = draw_flips(32, flips, g)
    assert {s for s in states} == {(a, b) for a in (False, True) for b in (False, True)}
    xs, ys, cs = apply_flips(x, labels, caps, flips, states)
    ref, ref_y, ref_c = x.clone(), labels.clone(), list(caps)
    for j, flip in enumerate(flips):
        for i, s in enumerate(states):
            if s[j]:
                ref[i] = ref[i].flip(FLIP_DIMS[flip.name])
                ref_y[i] = flip.label_map[int(ref_y[i])]
                ref_c[i] = flip.caption(ref_c[i])
    assert torch.equal(xs, ref) and torch.equal(ys, ref_y) and cs == ref_c
    assert apply_flips(x, labels, caps, flips, [(False, False)] * 32)[0] is x, "nothing mirrored: no copy"
