"""The bad-input promise, class by class, through the command line: options, output folders,
temporaries left by killed runs, warnings, the memory limit.

Other classes have their own modules: data readers (test_guarantees_data.py), exports and the
netx reader (test_guarantees_export.py), checkpoints and training (test_guarantees_checkpoint.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO, check_no_leftovers, check_user_error, files_under, run_main

from spikedata.digits import DigitsConfig, generate_digits
from spklip_energy import cli
from spklip_energy.atomic import OUTPUT_MARKER, atomic_path
from spklip_energy.checkpoint import save_checkpoint
from spklip_energy.zoo import build_model, default_card

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = dict(height=16, width=16)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_digits(tmp_path_factory.mktemp("d") / "digits", DigitsConfig(clips_per_class=3, frames=30, **SIZE))


def _ckpt(folder: Path, kind: str) -> Path:
    card = default_card(kind, **SIZE)
    path = folder / f"{kind}.pt"
    save_checkpoint(path, build_model(card), card)
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- options


def _all_actions(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_actions(sub, f"{prefix}{name} ")
        else:
            yield prefix.strip(), action


def test_no_numeric_option_is_parsed_without_a_validator():
    """Every option whose value is a number goes through a validator of spklip_energy.options."""
    actions = list(_all_actions(cli.build_parser()))
    assert len(actions) > 100, f"expected the whole parser tree, found {len(actions)} actions"
    numeric = {a.dest for _, a in actions if getattr(a.type, "__module__", "") == "spklip_energy.options"}
    assert {"epochs", "seed", "batch_size", "samples", "steps", "timesteps", "device", "lr"} <= numeric


def test_the_parser_refuses_a_new_bare_int_option():
    parser = cli._Parser(prog="x")
    for bare in (int, float, Path):
        with pytest.raises(TypeError, match="validator"):
            parser.add_argument("--n", type=bare)


BAD_OPTIONS = [
    (["report", "x.pt", "--batch-size", "0"], "--batch-size"),
    (["report", "x.pt", "--samples", "-3"], "--samples"),
    (["eval", "x.pt", "--device", "tpu"], "'tpu'"),
    (["adapt", "x.pt", "--lr", "nan"], "--lr"),
    (["adapt", "x.pt", "--lr", "-1e-3"], "--lr"),
    (["adapt", "x.pt", "--shots", ""], "--shots"),
    (["adapt", "x.pt", "--shots", "2,,4"], "--shots"),
    (["adapt", "x.pt", "--shots", "2,0"], "--shots"),
    (["adapt", "x.pt", "--epochs", "0"], "--epochs"),
    (["data", "show", "f.dat", "--height", "8", "--width", "8", "--columns", "0"], "--columns"),
    (["data", "show", "f.dat", "--height", "8", "--width", "8", "--fps", "-5"], "--fps"),
    (["data", "show", "f.dat", "--height", "0", "--width", "8"], "--height"),
    (["data", "show", "f.dat", "--height", "8", "--width", "8", "--start", "-1"], "--start"),
    (["data", "simulate", "a.npy", "b.dat", "--photons", "inf"], "--photons"),
    (["data", "simulate", "a.npy", "b.dat", "--seed", "-1"], "--seed"),
    (["data", "simulate", "a.npy", "b.dat", "--seed", str(2**40)], "--seed"),
    (["data", "simulate", "a.npy", "b.dat", "--theta", "inf"], "--theta"),
    (["data", "simulate", "a.npy", "b.dat", "--dark-current", "nan"], "--dark-current"),
    (["data", "simulate", "a.npy", "b.dat", "--hot-pixels", "1.5"], "--hot-pixels"),
    (["data", "simulate", "a.npy", "b.dat", "--upsample", "0"], "--upsample"),
    (["data", "make-digits", "out", "--clips-per-class", "0"], "--clips-per-class"),
    (["data", "make-digits", "out", "--frames", "2.5"], "--frames"),
    (["data", "inspect", "ds", "--max-clips", "0"], "--max-clips"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--device", "cuda:x"], "--device"),
    (["convert", "x.pt", "--layers", "cnn", "--out", "o.pt", "--timesteps", "0,8"], "--timesteps"),
    (["convert", "x.pt", "--layers", "cnn", "--out", "o.pt", "--percentile", "0"], "--percentile"),
    (["convert", "x.pt", "--layers", "cnn", "--out", "o.pt", "--calib", "0"], "--calib"),
    (["export", "x.pt", "--samples", "0"], "--samples"),
    (["simulate", "x.net", "--steps", "0"], "--steps"),
    (["demo", "--samples", "0"], "--samples"),
    (["--max-memory", "lots", "zoo", "list"], "--max-memory"),
    (["report", "x.pt", "--out", ""], "--out"),
    (["eval", "x.pt", "--data", "d", "--out-png", ""], "--out-png"),
]


@pytest.mark.parametrize("argv,needle", BAD_OPTIONS, ids=[" ".join(a[:3]) for a, _ in BAD_OPTIONS])
def test_bad_option_values_are_one_line_before_any_work(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_main(capsys, *argv)
    check_user_error(rc, err, needle)
    assert out == ""
    assert list(tmp_path.iterdir()) == [], "a refused option must not create anything"


def test_preview_columns_ceiling_is_the_previews_own(capsys):
    from spikedata.preview import MAX_COLUMNS

    base = ["data", "show", "f.dat", "--height", "8", "--width", "8", "--columns"]
    assert cli.build_parser().parse_args([*base, str(MAX_COLUMNS)]).columns == MAX_COLUMNS
    rc, _, err = run_main(capsys, *base, str(MAX_COLUMNS + 1))
    check_user_error(rc, err, "--columns", str(MAX_COLUMNS))


def test_validated_values_reach_the_verb(capsys, tmp_path):
    """The validators return converted values: a good option is accepted, not only bad ones refused."""
    args = cli.build_parser().parse_args(
        [
            "convert",
            "x.pt",
            "--layers",
            "cnn",
            "--out",
            "o.pt",
            "--timesteps",
            "4, 8",
            "--percentile",
            "99.5",
            "--device",
            "cpu",
        ]
    )
    assert args.timesteps == [4, 8] and args.percentile == 99.5 and args.device == "cpu"
    assert cli.build_parser().parse_args(["adapt", "x.pt"]).shots == [2, 4, 6, 8]


# --------------------------------------------------------------------------- output folders


def test_report_refuses_a_foreign_folder_before_profiling(capsys, tmp_path, data, monkeypatch):
    ck = _ckpt(tmp_path, "test-ann-cnn")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my own notes")

    def must_not_run(*a, **k):
        raise AssertionError("profiled before the output folder was checked")

    monkeypatch.setattr("spklip_energy.analysis.analyse_checkpoint", must_not_run)
    rc, _, err = run_main(capsys, "report", ck, "--data", data, "--samples", "1", "--out", out)
    check_user_error(rc, err, str(out))
    assert (out / "notes.txt").read_text() == "my own notes" and len(list(out.iterdir())) == 1


def test_report_folder_is_whole_or_absent(capsys, tmp_path, data, monkeypatch):
    """A failing second run leaves the first report exactly as it was; a later run replaces it whole."""
    snn, ann = _ckpt(tmp_path, "test-sj-snn"), _ckpt(tmp_path, "test-ann-cnn")
    out = tmp_path / "rep"
    rc, _, err = run_main(capsys, "report", snn, "--data", data, "--samples", "1", "--out", out)
    assert rc == 0, err
    first = files_under(out)
    assert "firing_rate.png" in first and OUTPUT_MARKER in first

    from spklip_energy.errors import ConfigError

    def fail(*a, **k):
        raise ConfigError("rendering failed on purpose")

    with monkeypatch.context() as m:
        m.setattr("reports.render.report_html", fail)
        rc, _, err = run_main(capsys, "report", ann, "--data", data, "--samples", "1", "--out", out)
    check_user_error(rc, err, "on purpose")
    assert files_under(out) == first, "a failed run changed the previous report"
    check_no_leftovers(tmp_path)

    rc, _, err = run_main(capsys, "report", ann, "--data", data, "--samples", "1", "--out", out)
    assert rc == 0, err
    second = files_under(out)
    assert "firing_rate.png" not in second, "the ANN's report kept the SNN run's firing-rate plot"
    assert json.loads(second["summary.json"])["checkpoint"]["kind"] == "test-ann-cnn"
    check_no_leftovers(tmp_path)


def test_compare_folder_is_replaced_whole(capsys, tmp_path, data):
    ann, snn = _ckpt(tmp_path, "test-ann-cnn"), _ckpt(tmp_path, "test-sj-snn")
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "comparison.md").write_text("stale, from an earlier version")  # only names compare writes: ours
    rc, _, err = run_main(capsys, "compare", ann, snn, "--data", data, "--samples", "1", "--out", out)
    assert rc == 0, err
    names = set(files_under(out))
    assert names == {
        "comparison.md",
        "comparison.csv",
        "comparison.html",
        "comparison.json",
        "energy_vs_accuracy.png",
        "energy_models.png",
        OUTPUT_MARKER,
    }
    assert "stale" not in (out / "comparison.md").read_text()


def test_default_report_folder_is_outside_the_source_packages(tmp_path, data):
    """Run from the checkout (as a user of an editable install does): nothing lands in reports/."""
    ck = _ckpt(tmp_path, "test-ann-cnn")
    before = {p.name for p in (REPO / "reports").iterdir()}
    home = REPO / "runs" / "reports" / ck.stem
    existed = home.exists()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "spklip_energy.cli", "report", str(ck), "--data", str(data), "--samples", "1"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert r.returncode == 0, r.stderr
        assert {p.name for p in (REPO / "reports").iterdir()} == before
        assert (home / "summary.json").is_file()
    finally:
        if not existed:
            import shutil

            shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("verb", ["report", "export", "zoo-init", "make-digits"])
def test_outputs_inside_the_source_packages_are_refused(capsys, tmp_path, data, verb):
    ck = _ckpt(tmp_path, "test-ann-cnn")
    target = REPO / "reports" / "should-not-exist"
    argv = {
        "report": ["report", ck, "--data", data, "--samples", "1", "--out", target],
        "export": ["export", ck, "--out", target],
        "zoo-init": ["zoo", "init", "test-ann-cnn", target / "x.pt"],
        "make-digits": ["data", "make-digits", target, "--clips-per-class", "3", "--frames", "8"],
    }[verb]
    rc, _, err = run_main(capsys, *argv)
    assert not target.exists()
    if verb == "export":  # a zoo model is not exportable: refused either way, and nothing written
        assert rc == 2 and len(err.splitlines()) == 1
    else:
        check_user_error(rc, err, "source package")


def test_adapt_refuses_a_foreign_out_folder_before_loading(capsys, tmp_path):
    out = tmp_path / "keep"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    rc, _, err = run_main(capsys, "adapt", tmp_path / "missing.pt", "--out", out)
    check_user_error(rc, err, str(out))
    assert (out / "thesis.tex").read_text() == "x"


# --------------------------------------------------------------------------- temporaries of killed runs


def test_stale_temporaries_of_killed_runs_are_removed_at_the_next_start(capsys, tmp_path):
    dead = _dead_pid()
    ds_tmp = tmp_path / f".ds.{dead}.abcd1234.tmp"
    (ds_tmp / "left").mkdir(parents=True)
    ck_tmp = tmp_path / f".last.pt.{dead}.xyz.tmp"
    ck_tmp.write_bytes(b"half a checkpoint")
    live = tmp_path / f".last.pt.{os.getpid()}.busy.tmp"  # a running writer's temporary stays
    live.write_bytes(b"being written")
    rc, _, err = run_main(
        capsys,
        "data",
        "make-digits",
        tmp_path / "ds",
        "--clips-per-class",
        "3",
        "--frames",
        "8",
        "--height",
        "16",
        "--width",
        "16",
        "--json",
    )
    assert rc == 0, err
    assert not ds_tmp.exists()
    assert ck_tmp.exists(), "a temporary of another target is not this write's business"
    rc, _, err = run_main(
        capsys, "zoo", "init", "test-ann-cnn", tmp_path / "last.pt", "--set", "height=16", "--set", "width=16"
    )
    assert rc == 0, err
    assert not ck_tmp.exists() and live.exists()


def test_a_failed_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "f.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- warnings


def test_duplicate_yaml_key_is_one_warning_line(capsys, tmp_path, data):
    ck = _ckpt(tmp_path, "test-ann-cnn")
    costs = tmp_path / "mine.yaml"
    costs.write_text(
        "name: mine\ne_mac_pj: 4.6\ne_ac_pj: 0.9\ne_mac_pj: 3.0\ne_neuron_pj: 0.9\ne_mem_word_pj: 5\nsources: [me]\n"
    )
    rc, out, err = run_main(
        capsys, "report", ck, "--data", data, "--samples", "1", "--costs", costs, "--out", tmp_path / "r", "--json"
    )
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if "e_mac_pj" in ln]
    assert lines == [
        f"spklip-energy: warning: cost file {costs}: duplicate key 'e_mac_pj' on line 4; the last value is used"
    ], err
    assert json.loads(out)["cost_model"]["e_mac_pj"] == 3.0


# --------------------------------------------------------------------------- the memory limit


def test_max_memory_option_and_environment(monkeypatch):
    from spklip_energy import limits
    from spklip_energy.errors import ConfigError, ResourceError

    monkeypatch.setenv(limits.ENV_MEMORY, "2MiB")
    assert limits.memory_limit() == 2 * 2**20
    limits.check_memory(2**20, "a buffer", "--n 1")
    with pytest.raises(ResourceError, match=r"a buffer would need 4\.0 MiB .*--n 4.*limit of 2\.0 MiB"):
        limits.check_memory(4 * 2**20, "a buffer", "--n 4")
    limits.set_memory_limit(10**12)
    try:
        limits.check_memory(4 * 2**20, "a buffer", "--n 4")  # the option overrides the environment
    finally:
        limits.set_memory_limit(None)
    monkeypatch.setenv(limits.ENV_MEMORY, "twelve")
    with pytest.raises(ConfigError, match="SPKLIP_MAX_MEMORY 'twelve'"):
        limits.memory_limit()


def test_errors_name_the_users_path_not_the_temporary(tmp_path):
    from spklip_energy.atomic import atomic_dir
    from spklip_energy.errors import ConfigError

    with pytest.raises(OSError) as info, atomic_dir(tmp_path / "out") as tmp:
        open(tmp / "missing" / "x.onnx", "w")  # noqa: SIM115 - fails on purpose
    assert info.value.filename == str(tmp_path / "out" / "missing" / "x.onnx")
    with pytest.raises(ConfigError) as info, atomic_path(tmp_path / "model.pt") as tmp:
        raise ConfigError(f"{tmp}: cannot encode")
    assert str(info.value) == f"{tmp_path / 'model.pt'}: cannot encode"
    assert list(tmp_path.iterdir()) == []


def test_report_never_deletes_what_it_did_not_write(capsys, tmp_path, data):
    """A user's note, or the very checkpoint being reported, inside an earlier report folder: refused, kept."""
    out = tmp_path / "rep"
    ck = _ckpt(tmp_path, "test-ann-cnn")
    rc, _, err = run_main(capsys, "report", ck, "--data", data, "--samples", "1", "--out", out)
    assert rc == 0, err
    inside = out / "again.pt"
    inside.write_bytes(ck.read_bytes())
    (out / "notes.txt").write_text("mine")
    before = files_under(out)
    rc, _, err = run_main(capsys, "report", inside, "--data", data, "--samples", "1", "--out", out)
    check_user_error(rc, err, str(out), "'again.pt' and 1 more")
    assert files_under(out) == before


@pytest.mark.parametrize(
    "case",
    ["eval-png-over-manifest", "simulate-over-input", "show-png-not-png", "index-not-jsonl", "convert-plot-over-card"],
)
def test_file_outputs_never_replace_another_kind_of_file(capsys, tmp_path, data, case):
    import numpy as np

    frames = tmp_path / "frames.npy"
    np.save(frames, np.zeros((4, 8, 8), np.float32))
    fake_png = tmp_path / "figure.png"
    fake_png.write_text("my drawing, not a PNG")
    manifest = data / "manifest.jsonl"
    argv, victim = {
        "eval-png-over-manifest": (["eval", tmp_path / "x.pt", "--out-png", manifest], manifest),
        "simulate-over-input": (["data", "simulate", frames, frames], frames),
        "show-png-not-png": (
            ["data", "show", tmp_path / "a.dat", "--height", "8", "--width", "8", "--out", fake_png],
            fake_png,
        ),
        "index-not-jsonl": (["data", "index", data, "--height", "16", "--width", "16", "--out", frames], frames),
        "convert-plot-over-card": (
            [
                "convert",
                tmp_path / "x.pt",
                "--layers",
                "cnn",
                "--out",
                tmp_path / "c.pt",
                "--plot",
                data / "dataset.json",
            ],
            data / "dataset.json",
        ),
    }[case]
    before = victim.read_bytes()
    rc, _, err = run_main(capsys, *argv)
    check_user_error(rc, err, str(victim))
    assert victim.read_bytes() == before


def test_cost_file_aliases_and_non_name_keys_are_one_line(capsys, tmp_path, data):
    ck = _ckpt(tmp_path, "test-ann-cnn")
    head = "name: mine\ne_mac_pj: 4.6\ne_ac_pj: 0.9\ne_neuron_pj: 0.9\ne_mem_word_pj: 5\n"
    bomb = tmp_path / "bomb.yaml"
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb.write_text(head + "sources: [me]\nextra:\n" + "\n".join("  " + ln for ln in levels) + "\n")
    keys = tmp_path / "keys.yaml"
    keys.write_text(head + "sources: [me]\n1: 2\nzz: 3\n")
    for path, needle in ((bomb, "alias"), (keys, "found 1")):
        rc, _, err = run_main(
            capsys, "report", ck, "--data", data, "--samples", "1", "--costs", path, "--out", tmp_path / "r"
        )
        check_user_error(rc, err, str(path), needle)
    assert not (tmp_path / "r").exists()


def test_index_never_replaces_a_manifest_without_overwrite(capsys, tmp_path):
    import shutil

    root = tmp_path / "ds"
    rc, _, err = run_main(
        capsys,
        "data",
        "make-digits",
        root,
        "--clips-per-class",
        "3",
        "--frames",
        "8",
        "--height",
        "16",
        "--width",
        "16",
        "--json",
    )
    assert rc == 0, err
    manifest = root / "manifest.jsonl"
    before = manifest.read_bytes()  # captions and splits an index cannot recreate
    rc, _, err = run_main(capsys, "data", "index", root, "--height", "16", "--width", "16")
    check_user_error(rc, err, str(manifest), "--overwrite")
    assert manifest.read_bytes() == before
    shutil.copy(manifest, tmp_path / "keep.jsonl")
    rc, _, err = run_main(capsys, "data", "index", root, "--height", "16", "--width", "16", "--overwrite")
    assert rc == 0, err
    assert manifest.read_bytes() != before and len(manifest.read_text().splitlines()) == 24
