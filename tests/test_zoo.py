"""Tests of the model zoo: building, input preparation, running and checkpoint round trips."""

from __future__ import annotations

import numpy as np
import pytest
import snntorch
import torch

from spklip_energy import zoo
from spklip_energy.checkpoint import load_checkpoint, save_checkpoint
from spklip_energy.errors import ConfigError, SpklipError

# ms_resnet18 is run at T=2 to keep it fast; the small models use the default T=4.
FAST_CONFIG = {"sj-ms-resnet18": {"timesteps": 2}}
KINDS = sorted(zoo.MODEL_KINDS)
SPIKING = [k for k in KINDS if zoo.MODEL_KINDS[k].spiking]
PER_STEP_KINDS = {"test-sj-snn-single": "net.0", "test-snntorch-snn": "conv1"}


def card_for(kind: str, **overrides) -> dict:
    return zoo.default_card(kind, **{**FAST_CONFIG.get(kind, {}), **overrides})


def random_spikes(shape=(2, 40, 64, 64), p=0.3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).to(torch.uint8)


def check_same_state(expected: dict, found: dict, what: str) -> None:
    assert list(found) == list(expected), f"{what}: expected keys {list(expected)}, found {list(found)}"
    for key in expected:
        assert torch.equal(found[key], expected[key]), f"{what}: {key} differs"


# --------------------------------------------------------------------------- registry


def test_registry_lists_the_five_kinds():
    assert set(KINDS) == {
        "test-ann-cnn",
        "test-sj-snn",
        "test-sj-snn-single",
        "test-snntorch-snn",
        "sj-ms-resnet18",
    }
    for kind, spec in zoo.MODEL_KINDS.items():
        assert spec.kind == kind
        assert spec.description
        assert set(zoo.SHARED_DEFAULTS) <= set(spec.default_config)
    assert not zoo.MODEL_KINDS["test-ann-cnn"].spiking
    assert set(SPIKING) == set(KINDS) - {"test-ann-cnn"}


def test_default_card():
    card = zoo.default_card("test-sj-snn", timesteps=6)
    assert card == {
        "kind": "test-sj-snn",
        "config": {"timesteps": 6, "height": 64, "width": 64, "num_classes": 8, "seed": 0},
        "format_version": 1,
    }


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError, match="unknown model kind 'resnet9000'") as info:
        zoo.build_model("resnet9000")
    for kind in KINDS:
        assert kind in str(info.value)
    with pytest.raises(ConfigError, match="unknown model kind"):
        zoo.build_model({"config": {}})


def test_unknown_config_key_is_named():
    with pytest.raises(ConfigError, match="'depth', 'tau'"):
        zoo.build_model("test-ann-cnn", {"tau": 2.0, "depth": 3})
    with pytest.raises(ConfigError, match="'hieght'"):
        zoo.default_card("test-sj-snn", hieght=32)
    with pytest.raises(ConfigError, match="'extra'"):
        zoo.build_model({"kind": "test-sj-snn", "config": {"extra": 1}})
    with pytest.raises(ConfigError, match="must be a dict"):
        zoo.build_model({"kind": "test-sj-snn", "config": [1]})


@pytest.mark.parametrize(
    "key,value",
    [("timesteps", 0), ("height", -1), ("num_classes", 2.5), ("seed", True), ("width", "64")],
)
def test_bad_config_values(key, value):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        zoo.build_model("test-ann-cnn", {key: value})


def test_explicit_config_overrides_the_card():
    card = zoo.default_card("test-ann-cnn", num_classes=3)
    model = zoo.build_model(card, {"num_classes": 5})
    assert model[-1].out_features == 5


# --------------------------------------------------------------------------- building and running


@pytest.mark.parametrize("kind", KINDS)
def test_build_is_deterministic_and_keeps_the_global_rng(kind):
    card = card_for(kind)
    rng_before = torch.get_rng_state()
    first = zoo.build_model(card).state_dict()
    assert torch.equal(torch.get_rng_state(), rng_before), "build_model changed the global RNG"
    second = zoo.build_model(card).state_dict()
    check_same_state(first, second, f"{kind} built twice with seed 0")
    other = zoo.build_model(card_for(kind, seed=1)).state_dict()
    assert any(v.is_floating_point() and not torch.equal(v, other[k]) for k, v in first.items()), (
        f"{kind}: seeds 0 and 1 gave the same weights"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_runs_on_prepared_spikes_and_repeats_exactly(kind):
    card = card_for(kind)
    model = zoo.build_model(card).eval()
    x = zoo.prepare_input(card, random_spikes())
    with torch.no_grad():
        first = zoo.run_model(model, card, x)
        second = zoo.run_model(model, card, x)
    assert first.shape == (2, 8), f"{kind}: expected logits [2, 8], found {list(first.shape)}"
    assert torch.isfinite(first).all(), f"{kind}: non-finite logits"
    assert torch.equal(first, second), f"{kind}: a second run differs; neuron state was not reset"
    # a different batch size right after must also work (no stale state shapes)
    with torch.no_grad():
        third = zoo.run_model(model, card, zoo.prepare_input(card, random_spikes((3, 8, 64, 64))))
    assert third.shape == (3, 8)


def test_spikingjelly_multi_and_single_step_agree():
    """Same layers, same seed, same parameter names: the two step modes compute the same thing."""
    multi, single = (
        zoo.build_model("test-sj-snn").eval(),
        zoo.build_model("test-sj-snn-single").eval(),
    )
    check_same_state(multi.state_dict(), single.state_dict(), "multi vs single step weights")
    x = zoo.prepare_input("test-sj-snn", random_spikes())
    with torch.no_grad():
        a = zoo.run_model(multi, "test-sj-snn", x)
        b = zoo.run_model(single, "test-sj-snn-single", x)
    assert torch.allclose(a, b, atol=1e-6), f"max difference {(a - b).abs().max()}"


@pytest.mark.parametrize("kind", ["test-sj-snn", *PER_STEP_KINDS])
def test_hooks_see_one_call_per_step_in_loop_kinds(kind):
    card = zoo.default_card(kind)
    model = zoo.build_model(card)
    first_conv = dict(model.named_modules())[PER_STEP_KINDS.get(kind, "net.0")]
    calls = []
    first_conv.register_forward_hook(lambda mod, inp, out: calls.append(tuple(inp[0].shape)))
    with torch.no_grad():
        zoo.run_model(model, card, zoo.prepare_input(card, random_spikes()))
    if kind in PER_STEP_KINDS:
        assert calls == [(2, 1, 64, 64)] * 4, f"{kind}: expected 4 per-step calls, found {calls}"
    else:
        assert calls == [(4, 2, 1, 64, 64)], f"{kind}: expected one multi-step call, found {calls}"


def test_snntorch_models_are_not_kept_alive_by_snntorch():
    model = zoo.build_model("test-snntorch-snn")
    ours = {id(m) for m in model.modules()}
    assert not ours & {id(m) for m in snntorch.SpikingNeuron.instances}


def test_run_model_rejects_the_wrong_layout():
    ann_card, snn_card = zoo.default_card("test-ann-cnn"), zoo.default_card("test-sj-snn")
    snn_input = zoo.prepare_input(snn_card, random_spikes())
    with pytest.raises(SpklipError, match=r"must have shape \[B, 4, 64, 64\], found \[4, 2, 1, 64, 64\]"):
        zoo.run_model(zoo.build_model(ann_card), ann_card, snn_input)


# --------------------------------------------------------------------------- input preparation


@pytest.mark.parametrize("kind", KINDS)
def test_prepared_input_shapes_and_values(kind):
    card = card_for(kind)
    t = card["config"]["timesteps"]
    x = zoo.prepare_input(card, random_spikes())
    assert x.dtype == torch.float32
    if zoo.MODEL_KINDS[kind].spiking:
        assert x.shape == (t, 2, 1, 64, 64)
        assert set(x.unique().tolist()) <= {0.0, 1.0}, f"{kind}: spiking input is not binary"
        assert x.sum() > 0
    else:
        assert x.shape == (2, t, 64, 64)
        assert x.min() >= 0 and x.max() <= 1


def test_windows_are_consecutive_or_and_rate():
    spikes = torch.zeros(1, 9, 2, 3, dtype=torch.uint8)  # F=9, T=4: windows of 2, frame 8 dropped
    spikes[0, 3, 0, 0] = 1  # window 1
    spikes[0, 4, 1, 2] = 1  # window 2
    spikes[0, 5, 1, 2] = 1  # window 2 again
    spikes[0, 8, 0, 1] = 1  # the dropped ninth frame
    snn = zoo.prepare_input(zoo.default_card("test-sj-snn", height=2, width=3), spikes)
    ann = zoo.prepare_input(zoo.default_card("test-ann-cnn", height=2, width=3), spikes.bool())
    expected_or = torch.zeros(4, 1, 1, 2, 3)
    expected_or[1, 0, 0, 0, 0] = 1
    expected_or[2, 0, 0, 1, 2] = 1
    assert torch.equal(snn, expected_or), snn
    expected_rate = torch.zeros(1, 4, 2, 3)
    expected_rate[0, 1, 0, 0] = 0.5
    expected_rate[0, 2, 1, 2] = 1.0
    assert torch.equal(ann, expected_rate), ann


def test_prepare_input_accepts_numpy_flipped_and_nonbinary_uint8():
    spikes = random_spikes((1, 8, 64, 64)) * 255
    flipped = np.flip(spikes.numpy(), axis=2)  # negative strides, as np.flipud gives
    from_numpy = zoo.prepare_input("test-sj-snn", flipped)
    assert set(from_numpy.unique().tolist()) <= {0.0, 1.0}
    expected = zoo.prepare_input("test-sj-snn", torch.flip(spikes, dims=[2]) > 0)
    assert torch.equal(from_numpy, expected)


@pytest.mark.parametrize(
    "shape,words",
    [
        ((2, 40, 32, 64), r"\[B, F, 64, 64\], found \[2, 40, 32, 64\]"),
        ((2, 40, 64, 65), r"found \[2, 40, 64, 65\]"),
        ((40, 64, 64), r"found \[40, 64, 64\]"),
        ((2, 3, 64, 64), "3 frames, fewer than the 4 timesteps"),
    ],
)
@pytest.mark.parametrize("kind", ["test-ann-cnn", "test-sj-snn"])
def test_prepare_input_rejects_bad_shapes(kind, shape, words):
    with pytest.raises(SpklipError, match=words):
        zoo.prepare_input(zoo.default_card(kind), torch.zeros(shape, dtype=torch.uint8))


def test_prepare_input_rejects_float_spikes():
    with pytest.raises(SpklipError, match="uint8 or bool"):
        zoo.prepare_input("test-ann-cnn", torch.zeros(1, 4, 64, 64))


# --------------------------------------------------------------------------- checkpoints


def _perturbed(model: torch.nn.Module, card: dict) -> torch.nn.Module:
    """Move weights and BN statistics away from a fresh build, so a reload is not a rebuild."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        zoo.run_model(model, card, zoo.prepare_input(card, random_spikes(seed=1)))
    return model.eval()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_round_trip_reproduces_outputs(tmp_path, kind, suffix):
    card = card_for(kind)
    card["eval"] = {"accuracy": 0.5}
    torch.manual_seed(3)
    model = _perturbed(zoo.build_model(card), card)
    x = zoo.prepare_input(card, random_spikes())
    with torch.no_grad():
        expected = zoo.run_model(model, card, x)

    path = save_checkpoint(tmp_path / f"{kind}{suffix}", model, card)
    ckpt = load_checkpoint(path)
    assert ckpt.card == card
    rebuilt = zoo.build_model(ckpt.card)
    rebuilt.load_state_dict(ckpt.state_dict, strict=True)
    rebuilt.eval()
    with torch.no_grad():
        found = zoo.run_model(rebuilt, ckpt.card, x)
        fresh = zoo.run_model(zoo.build_model(card).eval(), card, x)
    assert torch.equal(found, expected), f"{kind}{suffix}: reloaded model gives other logits"
    assert not torch.equal(fresh, expected), "the perturbation had no effect; the test proves nothing"
    # a Checkpoint itself is accepted where a card is
    assert zoo.resolve_config(ckpt)[1] == card["config"]
