"""The spiking front end (fsve.hsfe=spiking) and the temporal mask folded into the first convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import check_user_error, run_main
from export_helpers import SMALL, small_digits
from spikingjelly.activation_based import layer, neuron

from energy import profile
from fsve.hsfe import SpikingHSFE, ann_twin, encode_steps, step_windows
from spklip import build_spklip, preset_config
from spklip.hsfe import MaskedConv2d, legacy_state, temporal_blocks
from spklip.io import load_spklip, save_spklip
from spklip.tokenizer import SpikeTextTokenizer
from spklip_energy.checkpoint import load_checkpoint, save_checkpoint
from spklip_energy.errors import ConfigError


def _spikes(shape, rate=0.08, seed=0) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < rate).to(torch.uint8)


def _moved_masks(model, seed=3) -> None:
    """Temporal masks away from their initial 1, as after training (some negative, some zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, MaskedConv2d) and m.mask is not None:
                m.mask.copy_(torch.randn(m.mask.shape, generator=g))
                m.mask[0] = 0.0


@pytest.mark.parametrize("stride, scale", [(1, 1.0), (2, 20.0)])
def test_folded_mask_is_mask_then_convolve(stride, scale):
    g = torch.Generator().manual_seed(0)
    conv = MaskedConv2d(7, 5, 3, stride=stride, padding=1, mask=True, scale=scale)
    with torch.no_grad():
        conv.mask.copy_(torch.randn(7, generator=g))
    x = (torch.rand(2, 7, 9, 11, generator=g) < 0.3).float()
    want = F.conv2d(x * scale * conv.mask.view(1, -1, 1, 1), conv.weight, conv.bias, stride=stride, padding=1)
    got = conv(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the mask learns as it did unfolded: same gradient
    (gm,) = torch.autograd.grad(got.square().sum(), conv.mask)
    m = conv.mask.detach().clone().requires_grad_(True)
    ref = F.conv2d(x * scale * m.view(1, -1, 1, 1), conv.weight, conv.bias, stride=stride, padding=1)
    (gr,) = torch.autograd.grad(ref.square().sum(), m)
    torch.testing.assert_close(gm, gr, rtol=1e-4, atol=1e-4)


def _independent_sops(x: torch.Tensor, conv: torch.nn.Conv2d) -> float:
    """Synaptic events of a convolution on binary ``x [N, C, H, W]``: every spike reaches ``C_out`` neurons at
    every output position whose window holds it; per position, the spikes in its window are the input's
    channel sum convolved with an all-ones kernel."""
    ones = torch.ones(1, 1, *conv.kernel_size, dtype=torch.float64)
    per_position = F.conv2d(x.double().sum(1, keepdim=True), ones, stride=conv.stride, padding=conv.padding)
    return float(per_position.sum()) * conv.out_channels


@pytest.mark.parametrize("model", ["spklip", "fsve-full"])
def test_first_convolutions_count_sops_at_any_mask_value(model):
    """The MTF's first layer reads the spikes themselves (ANN at input_pool=1, spiking front end at any pool):
    SOPs, equal to an independent count, after the masks have moved away from 1."""
    over = {"model": model, "hsfe.input_pool": 1} if model == "spklip" else {"model": model}
    cfg = preset_config("tiny", over)
    m = build_spklip(cfg).eval()
    _moved_masks(m)
    x = _spikes((1, cfg.frames, cfg.height, cfg.width))
    rows = profile(m.visual, x, samples=1).per_layer.set_index("name")
    blocks = temporal_blocks(x, cfg.hsfe, dtype=None)
    if model == "fsve-full":  # the OR of each p x p pixels' spikes, every spike read once whatever the encoding
        blocks = F.max_pool2d(blocks, cfg.hsfe.input_pool)
    for k, branch in enumerate(m.visual.hsfe.branches):
        row = rows.loc[f"hsfe.branches.{k}.conv1"]
        assert row["macs"] == 0, row
        want = _independent_sops(blocks[:, branch.lo : branch.hi].float(), branch.conv1)
        assert want > 0 and row["sops"] == pytest.approx(want, rel=1e-9)


def test_spiking_front_end_units_and_counts():
    cfg = preset_config("tiny", {"model": "fsve-full"})
    assert cfg.front_end == "spiking"
    assert preset_config("tiny", {"model": "fsve-hybrid"}).front_end == "ann"
    assert preset_config("tiny", {"model": "fsve-full", "fsve.hsfe": "ann"}).front_end == "ann"
    m = build_spklip(cfg).eval()
    hsfe = m.visual.hsfe
    assert isinstance(hsfe, SpikingHSFE)
    convs = [n for n, mod in hsfe.named_modules() if isinstance(mod, torch.nn.Conv2d)]
    norms = [n for n, mod in hsfe.named_modules() if isinstance(mod, layer.ThresholdDependentBatchNorm2d)]
    assert len(norms) == len(convs)  # every convolution is followed by a tdBN
    assert not any(isinstance(mod, (torch.nn.ReLU, torch.nn.Sigmoid)) for mod in hsfe.modules())
    # spikes out, [T, N, C, H/p, W/p]
    x = _spikes((2, cfg.frames, cfg.height, cfg.width))
    blocks = temporal_blocks(x, cfg.hsfe, dtype=None)
    for mod in hsfe.modules():  # realistic statistics: normalise with the batch's own
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.train()
    with torch.no_grad():
        out = hsfe(blocks)
    p = cfg.hsfe.input_pool
    assert out.shape == (cfg.fsve.time_steps, 2 * cfg.hsfe.n_blocks, cfg.hsfe.features, 64 // p, 64 // p)
    assert set(out.unique().tolist()) == {0.0, 1.0}
    hsfe.eval()
    # neuron updates: one per neuron per step, for every LIF of the front end; each reads and writes its membrane
    sizes = {}
    hooks = [
        mod.register_forward_hook(lambda mod, a, o, n=n: sizes.__setitem__(n, o.numel()))
        for n, mod in hsfe.named_modules()
        if isinstance(mod, neuron.LIFNode)
    ]
    df = profile(m.visual, x[:1], samples=1).per_layer
    for h in hooks:
        h.remove()
    front = df[df["name"].str.startswith("hsfe.") & df["spiking"].astype(bool)].set_index("name")
    assert {f"hsfe.{n}" for n in sizes} == set(front.index)
    for n, size in sizes.items():
        row = front.loc[f"hsfe.{n}"]
        assert row["neuron_updates"] == size and row["state_reads"] == size and row["state_writes"] == size
    # every later convolution of the front end, and the CNN's stem, read spikes: no MACs but the norms'
    conv_rows = df[df["type"].str.contains("Conv2d")]
    front_convs = conv_rows[conv_rows["name"].str.startswith("hsfe.") | conv_rows["name"].str.contains("stem")]
    assert (front_convs["macs"] == 0).all() and (front_convs["sops"] > 0).any(), front_convs[["name", "macs", "sops"]]


def test_encodings_split_or_repeat_the_block():
    x = _spikes((3, 61, 4, 4)).float()
    sub = encode_steps(x, 4, "subwindows")
    assert sub.shape == (4, 3, 61, 4, 4)
    torch.testing.assert_close(sub.sum(0), x)  # every frame in exactly one step
    for t, (lo, hi) in enumerate(step_windows(61, 4)):
        assert sub[t, :, lo:hi].equal(x[:, lo:hi]) and sub[t].sum() == x[:, lo:hi].sum()
    assert [hi - lo for lo, hi in step_windows(61, 4)] == [15, 15, 16, 15]
    rep = encode_steps(x, 3, "repeat")
    assert all(rep[t].equal(x) for t in range(3))
    # the first convolution computes each step's current from the frames there are: the same as convolving
    # the written-out steps, for a branch's own slice of the frames
    for enc, steps in (("subwindows", 4), ("repeat", 3), ("subwindows", 2)):
        cfg = preset_config("tiny", {"model": "fsve-full", "fsve.hsfe_encoding": enc, "fsve.time_steps": steps})
        m = build_spklip(cfg).eval()
        _moved_masks(m)
        blocks = _spikes((2, 61, 8, 8), rate=0.2).float()
        written = encode_steps(blocks, steps, enc)
        for branch in m.visual.hsfe.branches:
            conv = branch.conv1
            with torch.no_grad():
                got = conv(blocks[:, branch.lo : branch.hi])
                want = torch.stack(
                    [
                        F.conv2d(written[t, :, branch.lo : branch.hi], conv.folded_weight(), conv.bias, padding=1)
                        for t in range(steps)
                    ]
                )
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # and each spike is read once in both encodings: the same SOPs in the first layer
    counts = {}
    for enc in ("subwindows", "repeat"):
        cfg = preset_config("tiny", {"model": "fsve-full", "fsve.hsfe_encoding": enc, "fsve.time_steps": 3})
        df = profile(build_spklip(cfg).eval().visual, _spikes((1, cfg.frames, 64, 64)), samples=1).per_layer
        counts[enc] = float(df[df["name"] == "hsfe.branches.0.conv1"]["sops"].iloc[0])
    assert counts["repeat"] == pytest.approx(counts["subwindows"], rel=1e-12) and counts["repeat"] > 0


def test_state_is_reset_between_clips():
    cfg = preset_config("tiny", {"model": "fsve-full"})
    m = build_spklip(cfg).eval()
    a, b = _spikes((1, cfg.frames, 64, 64), seed=1), _spikes((1, cfg.frames, 64, 64), rate=0.3, seed=2)
    with torch.no_grad():
        first = m.visual(a)
        m.visual(b)
        again = m.visual(a)
        both = m.visual(torch.cat([a, b]))
    assert torch.equal(first, again)
    torch.testing.assert_close(both[:1], first, rtol=1e-4, atol=1e-5)


def test_init_maps_the_ann_front_end_into_its_spiking_twin(tmp_path):
    from spklip.training import _init_from

    ann = build_spklip(preset_config("tiny", {"model": "spklip"}), seed=5)
    tok = SpikeTextTokenizer.train(["a moving digit", "a still digit"], ann.cfg.text.vocab_size)
    save_spklip(tmp_path / "ann.pt", ann, tok, {})
    student = build_spklip(preset_config("tiny", {"model": "fsve-full"}), seed=6)
    _, record = _init_from(student, tmp_path / "ann.pt")
    assert "visual.hsfe" in record["parts"]
    src, dst = ann.visual.hsfe.state_dict(), student.visual.hsfe.state_dict()
    mapped = {k: ann_twin(k) for k in src if ann_twin(k)}
    convs = [k for k in src if k.endswith(".weight") and src[k].dim() == 4]
    assert set(convs) <= set(mapped)  # every convolution of the ANN front end has its twin
    for k, twin in mapped.items():
        assert torch.equal(dst[twin], src[k]), k


def test_old_checkpoints_load_with_the_ann_front_end(tmp_path):
    """Saved before the mask was folded and before fsve.hsfe existed: keys and card are read as they meant."""
    cfg = preset_config("tiny", {"model": "fsve-full", "fsve.hsfe": "ann"})
    m = build_spklip(cfg, seed=2).eval()
    _moved_masks(m)
    tok = SpikeTextTokenizer.train(["a moving digit"], cfg.text.vocab_size)
    save_spklip(tmp_path / "new.pt", m, tok, {})
    ck = load_checkpoint(tmp_path / "new.pt")
    old_state = {
        (k.replace(".conv1.mask", ".mask.weight") if ".branches." in k else k): v for k, v in ck.state_dict.items()
    }
    assert any(k.endswith(".mask.weight") for k in old_state)
    assert set(legacy_state(old_state)) == set(ck.state_dict)
    card = dict(ck.card)
    card["config"] = {**card["config"], "fsve": {k: v for k, v in card["config"]["fsve"].items() if k != "hsfe"}}
    save_checkpoint(tmp_path / "old.pt", old_state, card)
    loaded = load_spklip(tmp_path / "old.pt")
    assert loaded.model.cfg.front_end == "ann" and loaded.model.cfg.fsve.hsfe == "ann"
    x = _spikes((1, cfg.frames, 64, 64))
    with torch.no_grad():
        assert torch.equal(loaded.model.eval().visual(x), m.visual(x))


def test_unknown_front_end_and_encoding_are_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"fsve\.hsfe must be 'auto', 'spiking' or 'ann', got 'snn'"):
        preset_config("tiny", {"model": "fsve-full", "fsve.hsfe": "snn"})
    with pytest.raises(ConfigError, match=r"fsve\.hsfe_encoding must be 'subwindows' or 'repeat'"):
        preset_config("tiny", {"model": "fsve-full", "fsve.hsfe_encoding": "rate"})
    with pytest.raises(ConfigError, match=r"fsve\.time_steps=80 sub-windows need at least as many frames"):
        preset_config("tiny", {"model": "fsve-full", "fsve.hsfe_encoding": "subwindows", "fsve.time_steps": 80})
    data = small_digits(tmp_path / "digits")
    sets = sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])
    rc, _, err = run_main(
        capsys,
        "train",
        "--model",
        "fsve-full",
        "--preset",
        "tiny",
        *sets,
        "--set",
        "fsve.hsfe=spiky",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
    )
    check_user_error(rc, err, "fsve.hsfe", "'spiky'")
    assert not (tmp_path / "run").exists()
