"""Issue 12: checkpoints are trusted no further than their bytes.

A card's sizes are refused before the model is built, weights must fit the kind and
config the card states, wrong card types are one line, NaN weights are flagged by
``report``, training stops on a NaN loss, training and adaptation options are checked
in the library, and ``--resume`` refuses a config or data that differ from the run's.
Every refusal goes through the CLI as one stderr line and exit 2.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
import torch
from cli_helpers import check_user_error, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spklip import training
from spklip.config import preset_config
from spklip.io import load_spklip, model_state, save_spklip
from spklip.model import build_spklip
from spklip.tokenizer import SpikeTextTokenizer
from spklip_energy import limits, zoo
from spklip_energy.checkpoint import FORMAT, build_on_meta, load_checkpoint, save_checkpoint
from spklip_energy.errors import (
    CheckpointError,
    ConfigError,
    ResourceError,
    SpklipError,
    SpklipWarning,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# tiny on 32x32 clips without pre-training or a locked tower: seconds per epoch on one core
SMALL = {
    "height": 32,
    "width": 32,
    "hsfe.input_pool": 1,
    "train.batch_size": 8,
    "train.pretrain_epochs": 0,
    "train.lock_visual": False,
}
SETS = [a for k, v in SMALL.items() for a in ("--set", f"{k}={json.dumps(v)}")]


# --------------------------------------------------------------------------- helpers


def run_cli(capsys, *args) -> tuple[int, str, list[str]]:
    rc, out, err = run_main(capsys, *args)
    return rc, out, [ln for ln in err.splitlines() if ln.strip()]


def refused(capsys, *args, names: tuple[str, ...]) -> str:
    """Run the CLI, expect exit 2 and one stderr line holding every string of ``names``; return it."""
    rc, _, err = run_main(capsys, *args)
    return check_user_error(rc, err, *names)


def write_raw(path: Path, card, state_dict) -> Path:
    """A checkpoint file with any card at all (save_checkpoint refuses malformed ones)."""
    torch.save({"format": FORMAT, "version": 1, "card": json.dumps(card), "state_dict": dict(state_dict)}, path)
    return path


@pytest.fixture(scope="module")
def cfg():
    return preset_config("tiny", SMALL)


@pytest.fixture(scope="module")
def spklip_ckpt(tmp_path_factory, cfg):
    """An untrained tiny SPKLIP checkpoint for 32x32 clips (no training needed to check loading)."""
    folder = tmp_path_factory.mktemp("spklip-ckpt")
    tokenizer = SpikeTextTokenizer.train(["a spike video of a digit moving left", "right up down"], 512)
    return save_spklip(folder / "model.pt", build_spklip(cfg), tokenizer, {"classes": ["a", "b"]})


@pytest.fixture(scope="module")
def zoo_ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo-ckpt")
    card = zoo.default_card("test-ann-cnn", height=32, width=32)
    return save_checkpoint(folder / "ann.pt", zoo.build_model(card), card)


def mutated(src: Path, dst: Path, change) -> Path:
    ck = load_checkpoint(src)
    card = copy.deepcopy(ck.card)
    change(card)
    return write_raw(dst, card, ck.state_dict)


def fake_run(folder: Path, cfg, data, epoch: int = 1, optimizer_layout=None, rng=None) -> Path:
    """A run folder as ``train`` leaves it after ``epoch`` epochs (weights as initialised)."""
    model = build_spklip(cfg)
    tokenizer = SpikeTextTokenizer.train(["a spike video of a digit moving left", "right up down"], 512)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr)
    card = {
        "data": {"path": str(data), "source": str(data)},
        "train": {"epoch": epoch, "epochs": epoch, "history": [{"epoch": i + 1} for i in range(epoch)]},
    }
    path = save_spklip(folder / "last.pt", model, tokenizer, card, optimizer=opt)
    if optimizer_layout is not None or rng is not None:
        ck = load_checkpoint(path)
        card, state = copy.deepcopy(ck.card), dict(ck.state_dict)
        if optimizer_layout is not None:
            card["train"]["optimizer"] = optimizer_layout(card["train"]["optimizer"])
        if rng is not None:
            state["_train.rng.torch"] = rng
        write_raw(path, card, state)
    return path


# --------------------------------------------------------------------------- sizes from a card


def test_every_model_sizes_on_the_meta_device_like_the_real_one():
    """build_on_meta must work for every kind, or its size check would not cover it."""
    for kind in zoo.MODEL_KINDS:
        card = zoo.default_card(kind, timesteps=2)
        meta = build_on_meta(lambda card=card: zoo.build_model(card), kind, "test")
        real = zoo.build_model(card)
        assert {k: v.shape for k, v in meta.state_dict().items()} == {
            k: v.shape for k, v in real.state_dict().items()
        }, kind
    for model in ("spklip", "fsve-hybrid", "fsve-full"):
        c = preset_config("tiny", {"model": model})
        meta = build_on_meta(lambda c=c: build_spklip(c), model, "test")
        assert {k: v.shape for k, v in meta.state_dict().items()} == {
            k: v.shape for k, v in build_spklip(c).state_dict().items()
        }, model


def test_build_on_meta_refuses_sizes_but_lets_builder_bugs_through():
    """What torch raises for sizes it cannot make is a resource or config error naming the model; what a
    builder raises otherwise is a bug, never disguised as "the model cannot be built"."""
    with pytest.raises(ResourceError, match=r"building x would need an unbounded amount .*\(config y\)"):
        build_on_meta(lambda: torch.nn.Linear(2**40, 2**40), "building x", "config y")
    with pytest.raises(ResourceError, match=r"building x would need 3\.6 TiB"):
        build_on_meta(lambda: torch.nn.Linear(10**6, 10**6), "building x", "config y")

    def fails(exc):
        def build():
            raise exc

        return build

    with pytest.raises(ConfigError, match=r"building x: the model cannot be built \(RuntimeError: bad size\)"):
        build_on_meta(fails(RuntimeError("bad size\nmore")), "building x", "config y")
    for bug in (TypeError("missing argument"), ValueError("wrong value"), KeyError("depth"), MemoryError()):
        with pytest.raises(type(bug)):
            build_on_meta(fails(bug), "building x", "config y")


def test_size_causes_name_what_differs_from_the_defaults():
    from spklip.config import size_cause
    from spklip_energy.checkpoint import CARD_FORMAT_VERSION, config_cause

    assert zoo.CARD_FORMAT_VERSION is CARD_FORMAT_VERSION
    assert size_cause(preset_config("tiny")) == "preset 'tiny'"
    assert size_cause(preset_config("tiny", {"embed_dim": 128, "train.lr": 1.0})) == "preset 'tiny' with embed_dim=128"
    many = preset_config("tiny", {"embed_dim": 128, "height": 32, "width": 32, "frames": 300, "text.width": 64})
    assert size_cause(many, limit=2) == "preset 'tiny' with frames=300, height=32 and 3 more"
    assert config_cause({"a": 1, "seed": 3}, {"a": 1, "seed": 0}, "kind 'k'", ignore=("seed",)) == "kind 'k'"
    with pytest.raises(ResourceError, match=r"\(kind 'test-ann-cnn' with height=1000000, num_classes=1000000000\)"):
        zoo.build_model(zoo.default_card("test-ann-cnn", height=10**6, num_classes=10**9, seed=5))


@pytest.mark.parametrize(
    "change,name",
    [
        (lambda c: c["config"].update(embed_dim=10**9), "embed_dim=1000000000"),
        (lambda c: c["config"]["text"].update(vocab_size=10**8), "text.vocab_size=100000000"),
        (lambda c: c["config"]["hsfe"].update(trunk_blocks=10**7), "hsfe.trunk_blocks=10000000"),
    ],
)
def test_huge_sizes_in_a_spklip_card_are_refused_before_building(capsys, tmp_path, data, spklip_ckpt, change, name):
    bad = mutated(spklip_ckpt, tmp_path / "huge.pt", change)
    out = tmp_path / "rep"
    refused(capsys, "report", bad, "--data", data, "--samples", 1, "--out", out, names=(str(bad), name))
    assert not out.exists()
    refused(capsys, "eval", bad, "--data", data, names=(str(bad), name))


def test_huge_sizes_in_a_zoo_card_are_refused_before_building(capsys, tmp_path, data, zoo_ckpt):
    bad = mutated(zoo_ckpt, tmp_path / "huge.pt", lambda c: c["config"].update(num_classes=10**9))
    line = refused(
        capsys,
        "report",
        bad,
        "--data",
        data,
        "--samples",
        1,
        "--out",
        tmp_path / "r",
        names=(str(bad), "num_classes=1000000000"),
    )
    assert "memory" in line
    with pytest.raises(ResourceError, match="num_classes"):
        zoo.build_model("test-ann-cnn", {"num_classes": 10**9})
    # beyond any usable integer: refused as a value before any estimate
    bad = mutated(zoo_ckpt, tmp_path / "huger.pt", lambda c: c["config"].update(num_classes=10**12))
    refused(
        capsys,
        "report",
        bad,
        "--data",
        data,
        "--samples",
        1,
        "--out",
        tmp_path / "r",
        names=(str(bad), "num_classes", "must be at most"),
    )


def test_huge_train_and_zoo_init_configs_are_refused_before_work(capsys, tmp_path, data):
    run = tmp_path / "run"
    refused(
        capsys,
        "train",
        *SETS,
        "--set",
        "embed_dim=1000000000",
        "--data",
        data,
        "--out",
        run,
        names=("embed_dim=1000000000",),
    )
    refused(
        capsys,
        "train",
        *SETS,
        "--set",
        "starnet.temporal_layers=100000",
        "--data",
        data,
        "--out",
        run,
        names=("starnet.temporal_layers=100000",),
    )
    assert not run.exists()
    out = tmp_path / "zoo.pt"
    refused(
        capsys, "zoo", "init", "test-ann-cnn", out, "--set", "num_classes=1000000000", names=("num_classes=1000000000",)
    )
    assert not out.exists()


def test_too_few_frames_for_the_hsfe_blocks_names_the_configs_frames(capsys, tmp_path, data):
    """The check runs on the config before any data is read: it names the config's frames, not the clips'."""
    run = tmp_path / "run"
    line = refused(
        capsys,
        "train",
        *SETS,
        "--set",
        "hsfe.n_blocks=1000000",
        "--data",
        data,
        "--out",
        run,
        names=("1000000 blocks", "config's frames=250", "hsfe.n_blocks"),
    )
    assert "the clips have" not in line
    line = refused(
        capsys,
        "train",
        *SETS,
        "--set",
        "frames=100",
        "--data",
        data,
        "--out",
        run,
        names=("need 241 frames", "config's frames=100"),
    )
    assert not run.exists()


def test_a_model_within_the_limit_but_over_a_lower_one_is_refused(spklip_ckpt):
    limits.set_memory_limit(100_000)  # the tiny model holds about 1 MiB
    try:
        with pytest.raises(ResourceError, match=str(spklip_ckpt)):
            load_spklip(spklip_ckpt)
    finally:
        limits.set_memory_limit(None)
    load_spklip(spklip_ckpt)


# --------------------------------------------------------------------------- weights must fit the card


def test_a_card_whose_kind_is_not_its_weights_is_refused(capsys, tmp_path, data, spklip_ckpt, zoo_ckpt):
    # kind alone changed: the config still says the ANN
    bad = mutated(spklip_ckpt, tmp_path / "kind.pt", lambda c: c.update(kind="fsve-full"))
    refused(capsys, "report", bad, "--data", data, "--out", tmp_path / "r1", names=(str(bad), "fsve-full"))
    # kind and config changed together: the ANN's weights do not fit an fsve-full model
    both = mutated(
        spklip_ckpt, tmp_path / "both.pt", lambda c: (c.update(kind="fsve-full"), c["config"].update(model="fsve-full"))
    )
    line = refused(capsys, "eval", both, "--data", data, names=(str(both), "do not fit", "'visual."))
    assert "missing" in line and "unexpected" in line
    # a zoo card naming another zoo kind over the ANN's weights
    other = mutated(zoo_ckpt, tmp_path / "zoo.pt", lambda c: c.update(kind="test-sj-snn"))
    refused(
        capsys,
        "report",
        other,
        "--data",
        data,
        "--out",
        tmp_path / "r2",
        names=(str(other), "do not fit", "test-sj-snn"),
    )
    # one tensor of another shape
    ck = load_checkpoint(zoo_ckpt)
    sd = dict(ck.state_dict)
    sd["8.weight"] = torch.zeros(3, 32)
    shaped = write_raw(tmp_path / "shape.pt", ck.card, sd)
    refused(
        capsys,
        "report",
        shaped,
        "--data",
        data,
        "--out",
        tmp_path / "r3",
        names=(str(shaped), "'8.weight'", "[3, 32]", "[8, 32]"),
    )


# --------------------------------------------------------------------------- card types


@pytest.mark.parametrize(
    "change,name",
    [
        (lambda c: c.update(config=5), "'config'"),
        (lambda c: c.update(kind=[]), "kind"),
        (lambda c: c.update(class_names="x"), "'class_names'"),
        (lambda c: c.update(tokenizer=7), "'tokenizer'"),
        (lambda c: c.update(train=[]), "'train'"),
        (lambda c: c["config"].update(embed_dim="big"), "embed_dim"),
        (lambda c: c["config"].update(embed_dim=64.0), "embed_dim"),
        (lambda c: c["config"].update(height=-32), "height"),
        (lambda c: c["config"]["train"].update(lr="fast"), "train.lr"),
        (lambda c: c["config"]["starnet"].update(layers=[1, 1]), "starnet.layers"),
        (lambda c: c["config"].pop("text"), "do not fit"),  # the default text tower is another size
        (lambda c: c.pop("config"), "config"),
        (lambda c: c.update(format_version=99), "'format_version' is not the integer 1, the only card format version"),
        (lambda c: c.update(format_version=5), "(found an integer 5)"),
        (lambda c: c.update(format_version=0), "'format_version'"),
        (lambda c: c.update(format_version="1"), "(found a string '1')"),
        (lambda c: c.update(format_version=True), "(found a boolean True)"),
        (lambda c: c.update(format_version=1.0), "'format_version'"),
        (lambda c: c.update(format_version=None), "'format_version'"),
    ],
)
def test_a_card_field_of_the_wrong_type_is_one_line(capsys, tmp_path, data, spklip_ckpt, change, name):
    bad = mutated(spklip_ckpt, tmp_path / "bad.pt", change)
    refused(capsys, "report", bad, "--data", data, "--out", tmp_path / "r", names=(str(bad), name))


@pytest.mark.parametrize(
    "change,name",
    [
        (lambda c: c["config"].update(timesteps="4"), "timesteps"),
        (lambda c: c["config"].update(num_classes=2.5), "num_classes"),
        (lambda c: c["config"].update(seed=2**70), "seed"),
        (lambda c: c.update(kind="no-such-kind"), "no-such-kind"),
    ],
)
def test_a_zoo_card_field_of_the_wrong_type_is_one_line(capsys, tmp_path, data, zoo_ckpt, change, name):
    bad = mutated(zoo_ckpt, tmp_path / "bad.pt", change)
    refused(capsys, "report", bad, "--data", data, "--out", tmp_path / "r", names=(str(bad), name))


# --------------------------------------------------------------------------- versions


def test_card_format_version_may_be_absent_but_not_another_version(tmp_path, spklip_ckpt, zoo_ckpt):
    """Absent is fine: save_checkpoint stores any card with a kind (the project's writers add version 1)."""
    for src in (spklip_ckpt, zoo_ckpt):
        assert load_checkpoint(src).card["format_version"] == 1
        bare = mutated(src, tmp_path / f"bare-{src.name}", lambda c: c.pop("format_version"))
        assert "format_version" not in load_checkpoint(bare).card
    load_spklip(tmp_path / f"bare-{spklip_ckpt.name}")
    ck = load_checkpoint(zoo_ckpt)
    for value in (2, "1", True):
        with pytest.raises(
            CheckpointError, match="'format_version' of checkpoint card 'test-ann-cnn' must be the integer 1"
        ):
            save_checkpoint(tmp_path / "new.pt", ck.state_dict, {**ck.card, "format_version": value})
    assert not (tmp_path / "new.pt").exists()


@pytest.mark.parametrize(
    "version, shown",
    [
        ("1", "'1' (a string)"),
        (2, "2"),
        (True, "True (a boolean)"),
        (1.0, "1.0"),
        (None, "None (null)"),
        ([1], "[1] (a list)"),
    ],
)
def test_the_file_version_of_a_pt_must_be_the_integer_1(capsys, tmp_path, data, zoo_ckpt, version, shown):
    ck = load_checkpoint(zoo_ckpt)
    bad = tmp_path / "v.pt"
    torch.save({"format": FORMAT, "version": version, "card": json.dumps(ck.card), "state_dict": ck.state_dict}, bad)
    refused(
        capsys,
        "report",
        bad,
        "--data",
        data,
        "--out",
        tmp_path / "r",
        names=(str(bad), f"format version {shown}", "reads only version 1"),
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("version", ["01", "1.0", " 1", "2", ""])
def test_the_file_version_of_a_safetensors_must_be_the_text_1(tmp_path, zoo_ckpt, version):
    import safetensors.torch

    ck = load_checkpoint(zoo_ckpt)
    good = save_checkpoint(tmp_path / "m.safetensors", ck.state_dict, ck.card)
    assert load_checkpoint(good).card == ck.card
    bad = tmp_path / "v.safetensors"
    safetensors.torch.save_file(
        ck.state_dict, str(bad), metadata={"format": FORMAT, "version": version, "card": json.dumps(ck.card)}
    )
    with pytest.raises(CheckpointError, match=r"v\.safetensors has format version .* reads only version '1'"):
        load_checkpoint(bad)


# --------------------------------------------------------------------------- NaN / Inf


def test_report_flags_weights_holding_nan(capsys, tmp_path, data, zoo_ckpt):
    ck = load_checkpoint(zoo_ckpt)
    sd = dict(ck.state_dict)
    sd["0.weight"] = sd["0.weight"].clone()
    sd["0.weight"][0, 0, 0, 0] = float("nan")
    bad = save_checkpoint(tmp_path / "nan.pt", sd, ck.card)
    out = tmp_path / "rep"
    rc, _, err = run_cli(capsys, "report", bad, "--data", data, "--samples", 2, "--out", out)
    assert rc == 0
    warned = [ln for ln in err if ln.startswith("spklip-energy: warning:")]
    assert len(warned) == 1 and "NaN" in warned[0] and str(bad) in warned[0], err
    summary = json.loads((out / "summary.json").read_text())
    assert any("NaN" in w and "'0.weight'" in w and str(bad) in w for w in summary["warnings"])
    # the library issues it as a SpklipWarning
    from spklip_energy.analysis import analyse_checkpoint

    with pytest.warns(SpklipWarning, match="NaN"):
        analyse_checkpoint(bad, data=data, samples=1)
    # a finite checkpoint gets no such warning
    rc, _, err = run_cli(capsys, "report", zoo_ckpt, "--data", data, "--samples", 2, "--out", tmp_path / "ok")
    assert rc == 0 and not any("NaN" in ln for ln in err)
    assert not any("NaN" in w for w in json.loads((tmp_path / "ok" / "summary.json").read_text())["warnings"])


def _nan_loss_from(epoch: int, calls: dict):
    real = training.clip_loss

    def fake(*args, **kw):
        calls["n"] = calls.get("n", 0) + 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["epoch"] >= epoch else loss

    return fake


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(capsys, tmp_path, data, monkeypatch):
    calls = {"epoch": 1}
    monkeypatch.setattr(training, "clip_loss", _nan_loss_from(1, calls))
    run = tmp_path / "run"
    line = refused(
        capsys,
        "train",
        *SETS,
        "--data",
        data,
        "--epochs",
        1,
        "--out",
        run,
        names=("epoch 1", "step 1", "lower the learning rate", "no epoch finished"),
    )
    assert "nan" in line.lower()
    assert not (run / "last.pt").exists() and not run.exists()


@pytest.mark.slow
def test_a_nan_loss_in_epoch_two_keeps_epoch_one(tmp_path, data, cfg, monkeypatch):
    calls = {"epoch": 0}
    monkeypatch.setattr(training, "clip_loss", _nan_loss_from(2, calls))

    calls["epoch"] = 1

    def progress(p):  # runs after each step: after the last step of an epoch the next one begins
        calls["epoch"] = p["epoch"] + (p["step"] == p["steps"])

    with pytest.raises(training.DivergedError, match=r"epoch 2, step 1 .*last\.pt\) is kept"):
        training.train(cfg, data, tmp_path / "run", epochs=2, progress=progress)
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ck.card["train"]["epoch"] == 1
    assert not any(not torch.isfinite(t).all() for t in model_state(ck).values() if t.is_floating_point())


# --------------------------------------------------------------------------- library options


@pytest.mark.parametrize("epochs", [0, -1, 2.5, "x", True])
def test_train_refuses_bad_epochs_before_any_work(tmp_path, data, cfg, epochs):
    with pytest.raises(ConfigError, match="epochs"):
        training.train(cfg, data, tmp_path / "run", epochs=epochs)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override,name",
    [
        ({"train.lr": 0.0}, "train.lr"),
        ({"train.lr": -1e-3}, "train.lr"),
        ({"train.lr": float("inf")}, "train.lr"),
        ({"train.epochs": 0}, "train.epochs"),
        ({"train.batch_size": 0}, "train.batch_size"),
        ({"train.seed": -1}, "train.seed"),
        ({"train.seed": 2**40}, "train.seed"),
        ({"train.warmup_epochs": -1}, "train.warmup_epochs"),
        ({"train.grad_clip": 0.0}, "train.grad_clip"),
        ({"train.betas": [0.9, 1.5]}, "train.betas"),
        ({"embed_dim": -64}, "embed_dim"),
    ],
)
def test_config_values_are_checked(override, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        preset_config("tiny", override)


@pytest.mark.parametrize(
    "kw,name",
    [
        ({"shots": []}, "shots"),
        ({"shots": [0]}, "shots"),
        ({"shots": [2, -1]}, "shots"),
        ({"shots": "a"}, "shots"),
        ({"epochs": 0}, "epochs"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": 0}, "lr"),
        ({"seed": -1}, "seed"),
    ],
)
def test_adapt_checks_its_options_before_loading(tmp_path, kw, name):
    args = {"shots": [1], **kw}
    shots = args.pop("shots")
    with pytest.raises(ConfigError, match=name):
        training.adapt(tmp_path / "absent.pt", "builtin", shots, **args)


@pytest.mark.parametrize(
    "kw", [{"batch_size": 0}, {"samples": 0}, {"batch_size": -3}, {"samples": "many"}, {"reuse": "all"}]
)
def test_analyse_checkpoint_checks_its_options(tmp_path, kw):
    from spklip_energy.analysis import analyse_checkpoint

    with pytest.raises(ConfigError, match=next(iter(kw)) if "reuse" not in kw else "reuse"):
        analyse_checkpoint(tmp_path / "absent.pt", **kw)


# --------------------------------------------------------------------------- resume


def test_resume_with_a_malformed_optimizer_state_or_rng_is_one_line(capsys, tmp_path, data, cfg):
    cases = [
        ("groups", {"optimizer_layout": lambda lay: {**lay, "param_groups": "x"}}, "param_groups"),
        (
            "count",
            {"optimizer_layout": lambda lay: {**lay, "param_groups": lay["param_groups"] * 2}},
            "parameter groups",
        ),
        ("ids", {"optimizer_layout": lambda lay: {**lay, "state": {"999999": {"exp_avg": "tensor"}}}}, "999999"),
        ("rng", {"rng": torch.zeros(3, dtype=torch.float32)}, "_train.rng.torch"),
    ]
    for name, kw, needle in cases:
        run = tmp_path / name
        fake_run(run, cfg, data, **kw)
        before = (run / "last.pt").read_bytes()
        refused(
            capsys,
            "train",
            *SETS,
            "--data",
            data,
            "--epochs",
            2,
            "--out",
            run,
            "--resume",
            names=(str(run / "last.pt"), needle),
        )
        assert (run / "last.pt").read_bytes() == before


def test_resume_refuses_another_config_or_data(capsys, tmp_path, data, cfg):
    run = tmp_path / "run"
    fake_run(run, cfg, data)
    last = str(run / "last.pt")
    refused(
        capsys,
        "train",
        *SETS,
        "--set",
        "train.lr=0.5",
        "--data",
        data,
        "--out",
        run,
        "--resume",
        names=(last, "train.lr", "0.5"),
    )
    refused(
        capsys,
        "train",
        *SETS,
        "--set",
        "embed_dim=32",
        "--data",
        data,
        "--out",
        run,
        "--resume",
        names=(last, "embed_dim", "64", "32"),
    )
    with pytest.raises(ConfigError, match="--model: the run has 'spklip', requested 'fsve-full'"):
        training.train(preset_config("tiny", {**SMALL, "model": "fsve-full"}), data, run, resume=True)
    other = tmp_path / "other-data"
    other.mkdir()
    refused(capsys, "train", *SETS, "--data", other, "--out", run, "--resume", names=(last, str(other)))
    # the same options are accepted: the run already has its one epoch, so nothing is trained
    res = training.train(cfg, data, run, epochs=1, resume=True)
    assert res.resumed_from_epoch == 1
    res = training.train(None, None, run, epochs=1, resume=True)  # or none at all: the run's own
    assert res.resumed_from_epoch == 1


# --------------------------------------------------------------------------- fuzzing cards

_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**9, 10**12, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_KINDS = st.sampled_from(["spklip", "fsve-hybrid", "fsve-full", "spklip-converted", *zoo.MODEL_KINDS]) | _JSON


def _dotted_keys(node, prefix=""):
    for k, v in node.items():
        yield prefix + k
        if isinstance(v, dict):
            yield from _dotted_keys(v, prefix + k + ".")


def _set(node, dotted, value, delete=False):
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    if delete:
        node.pop(last, None)
    else:
        node[last] = value


def _get(node, dotted):
    for p in dotted.split("."):
        node = node[p]
    return node


@st.composite
def mutated_cards(draw, card: dict):
    card = copy.deepcopy(card)
    keys = list(_dotted_keys(card))
    sizes = [k for k in keys if type(_get(card, k)) is int]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys))
        action = draw(st.sampled_from(["value", "delete", "kind", "extra", "size", "size"]))
        try:
            if action == "size":  # a valid-looking card with one huge (or odd) size
                _set(
                    card,
                    draw(st.sampled_from(sizes)),
                    draw(st.sampled_from([2, 3, 7, 10**3, 10**5, 10**9, 10**12, 2**31, 2**63, 10**30])),
                )
            elif action == "value":
                _set(card, key, draw(_JSON))
            elif action == "delete":
                _set(card, key, None, delete=True)
            elif action == "kind":
                card["kind"] = draw(_KINDS)
            else:
                _set(card, key.rsplit(".", 1)[0] + ".extra" if "." in key else "extra", draw(_JSON))
        except (KeyError, TypeError, AttributeError):
            pass  # an earlier mutation replaced a parent; the card is odd enough
    return card


def _load_any(path: Path) -> None:
    """What the verbs do with a checkpoint: load it and build its model with its weights."""
    from spklip_energy.runners import runner_for

    ck = load_checkpoint(path)
    if ck.kind in ("spklip", "fsve-hybrid", "fsve-full", "spklip-converted"):
        load_spklip(ck)
    else:
        zoo.load_model(ck)
    runner_for(ck)


def _fuzz(card_source: Path, card: dict) -> None:
    ck = load_checkpoint(card_source)
    limits.set_memory_limit(64 * 2**20)  # a valid but large config is refused, not built
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = write_raw(Path(folder) / "fuzz.pt", card, ck.state_dict)
            try:
                _load_any(path)
            except SpklipError as exc:
                text = str(exc)
                assert text and "\n" not in text, f"not one line: {text!r}"
    finally:
        limits.set_memory_limit(None)


@pytest.fixture(scope="module")
def fuzz_sources(spklip_ckpt, zoo_ckpt):
    return {
        "spklip": (spklip_ckpt, load_checkpoint(spklip_ckpt).card),
        "zoo": (zoo_ckpt, load_checkpoint(zoo_ckpt).card),
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_random_cards_load_or_raise_a_spklip_error(fuzz_sources, data):
    source = data.draw(st.sampled_from(sorted(fuzz_sources)))
    path, card = fuzz_sources[source]
    if source == "spklip":  # the tokenizer is long and dull to mutate; keep it out of the key choice
        tok = card["tokenizer"]
        base = {k: v for k, v in card.items() if k != "tokenizer"}
        new = data.draw(mutated_cards(base))
        if isinstance(new, dict) and "tokenizer" not in new:
            new["tokenizer"] = tok
    else:
        new = data.draw(mutated_cards(card))
    _fuzz(path, new)


def test_fuzz_helper_sees_each_kind_of_outcome(fuzz_sources, tmp_path):
    """The loader the fuzz test drives does load a good card and does refuse bad ones."""
    path, card = fuzz_sources["zoo"]
    weights = load_checkpoint(path).state_dict
    _load_any(write_raw(tmp_path / "ok.pt", card, weights))
    huge = copy.deepcopy(card)
    huge["config"]["num_classes"] = 10**9
    with pytest.raises(ResourceError, match="num_classes"):
        _load_any(write_raw(tmp_path / "h.pt", huge, weights))
    with pytest.raises(CheckpointError, match="'config'"):
        _load_any(write_raw(tmp_path / "k.pt", {**card, "config": 5}, weights))


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("train.batch_size", 10**20, "beyond any usable size"),
        ("embed_dim", -(10**20), "beyond any usable size"),
        ("logit_scale_max", 1e308, "logit_scale_max must be at most 20"),
        ("logit_scale_max", -1.0, "logit_scale_max must be at least 0"),
        ("logit_scale_init", 1e308, "logit_scale_init must be at most 20"),
    ],
)
def test_config_values_torch_cannot_take_are_refused(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        preset_config("tiny", {key: value})


@pytest.mark.parametrize(
    "name,group,needle",
    [
        ("betas", {"betas": [2.0, 3.0]}, "betas must be at most 1"),
        ("beta-one", {"betas": [0.9, 1.0]}, "betas must be below 1"),
        ("lr", {"lr": -1.0}, "lr must be at least 0"),
        ("eps", {"eps": 0.0 - 1.0}, "eps must be at least 0"),
    ],
)
def test_resume_with_out_of_range_optimizer_hyperparameters_is_one_line(
    capsys, tmp_path, data, cfg, name, group, needle
):
    run = tmp_path / name
    fake_run(
        run,
        cfg,
        data,
        optimizer_layout=lambda lay: {**lay, "param_groups": [{**g, **group} for g in lay["param_groups"]]},
    )
    before = (run / "last.pt").read_bytes()
    refused(
        capsys,
        "train",
        *SETS,
        "--data",
        data,
        "--epochs",
        2,
        "--out",
        run,
        "--resume",
        names=(str(run / "last.pt"), needle),
    )
    assert (run / "last.pt").read_bytes() == before
