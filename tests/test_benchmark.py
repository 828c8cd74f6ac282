"""The A.7 protocol (``spklip-energy benchmark``): aggregation against known values, bad plans, a whole
run through the CLI and a run killed mid-training that continues where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from spklip_energy.benchmark import DEFAULT_ARMS, BenchmarkPlan, aggregate
from spklip_energy.errors import ConfigError
from spklip_energy.stats import count_summary, encode_hits
from tests.cli_helpers import REPO, check_user_error, run_main
from tests.export_helpers import small_digits

#: every arm of the small runs: the tiny preset at 32x32, one pre-training and a few contrastive epochs
SMALL_SETS = ["height=32", "width=32", "hsfe.input_pool=1", "train.pretrain_epochs=1"]


def _record(arm: str, seed: int, hits: list[int], energy: float, ids=None) -> dict:
    n = len(hits)
    return {
        "arm": arm,
        "seed": seed,
        "top1": sum(hits) / n,
        "top5": 1.0,
        "R@5": 0.5,
        "clips": n,
        "per_clip": {
            "ids": ids or [f"c{i}.dat" for i in range(n)],
            "top1": encode_hits(hits),
            "R@5": encode_hits([1, 0] * (n // 2)),
        },
        "energy": {"cost_model": "paper", "total_j": energy, "compute_j": energy * 0.9, "memory_j": energy * 0.1},
        "train_s": 10.0,
        "eval_s": 1.0,
        "threads": 2,
        "commit": "abc1234",
    }


def test_aggregate_against_hand_values():
    plan = BenchmarkPlan(seeds=[0, 1], arms=("ann", "ann-control", "fsve-full"))
    rng = np.random.default_rng(3)
    control = {s: rng.integers(0, 2, 40).tolist() for s in (0, 1)}
    full = {0: [1] * 30 + [0] * 10, 1: [1] * 20 + [0] * 20}
    records = []
    for s in (0, 1):
        records += [
            _record("ann", s, control[s], 5e-4),
            _record("ann-control", s, control[s], 5e-4),
            _record("fsve-full", s, full[s], 2e-4),
        ]
    res = aggregate(records, plan)
    rows = {r["arm"]: r for r in res["rows"]}
    f = rows["fsve-full"]
    assert f["top1_mean"] == pytest.approx(0.625) and f["top1_std"] == pytest.approx(np.std([0.75, 0.5], ddof=1))
    assert f["top1_pooled"] == count_summary(50, 80)
    # the paired test: discordant clips pooled over both seeds, binomial two-sided as scipy gives it
    a = np.array(full[0] + full[1], bool)
    b = np.array(control[0] + control[1], bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    vs = f["vs_control"]
    assert (vs["only_this_right"], vs["only_control_right"]) == (only_a, only_b)
    assert vs["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert vs["difference"] == pytest.approx(a.mean() - b.mean())
    lo, hi = vs["difference_ci"]
    assert lo < vs["difference"] < hi
    assert f["energy_vs_ann"] == pytest.approx(0.4)
    assert rows["ann"]["vs_control"]["p_value"] == 1.0, "the ANN and an identical control never differ"
    assert "vs_control" not in rows["ann-control"]
    assert res["threads"] == [2] and res["test_clips"] == 40


def test_recipe_arms_are_paired_with_the_arm_they_differ_from():
    """fsve-full-kd against fsve-full (what --teacher brings), fsve-full against fsve-full-scratch: pooled
    McNemar and per-seed differences against hand values, and the second table of benchmark.md."""
    from reports.render import benchmark_markdown

    plan = BenchmarkPlan(seeds=[0, 1], arms=("ann", "ann-control", "fsve-full-scratch", "fsve-full", "fsve-full-kd"))
    hits = {
        "ann": [1] * 30 + [0] * 10,
        "ann-control": [1] * 32 + [0] * 8,
        "fsve-full-scratch": [1] * 4 + [0] * 36,
        "fsve-full": [1] * 20 + [0] * 20,
        "fsve-full-kd": [0] * 5 + [1] * 25 + [0] * 10,
    }
    records = [_record(a, s, h if s == 0 else h[::-1], 1e-4) for s in (0, 1) for a, h in hits.items()]
    res = aggregate(records, plan)
    rows = {r["arm"]: r for r in res["rows"]}
    vs = rows["fsve-full-kd"]["vs_reference"]
    assert vs["arm"] == "fsve-full" and vs["question"] == "what --teacher brings" and vs["seeds"] == [0, 1]
    a = np.array(hits["fsve-full-kd"] + hits["fsve-full-kd"][::-1], bool)
    b = np.array(hits["fsve-full"] + hits["fsve-full"][::-1], bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    assert (vs["only_this_right"], vs["only_other_right"]) == (only_a, only_b) == (20, 10)
    assert vs["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert vs["difference_per_seed"] == {0: pytest.approx(0.125), 1: pytest.approx(0.125)}
    assert rows["fsve-full"]["vs_reference"]["arm"] == "fsve-full-scratch"
    assert rows["fsve-full"]["vs_reference"]["difference"] == pytest.approx(0.4)
    assert "vs_reference" not in rows["fsve-full-scratch"] and "vs_reference" not in rows["ann"]
    md = benchmark_markdown(res)
    assert "| fsve-full-kd | fsve-full | what --teacher brings | +12.5 [" in md
    assert "+12.5 / +12.5" in md
    # an arm whose reference is not in the plan gets no pair
    plan2 = BenchmarkPlan(seeds=[0, 1], arms=("ann", "ann-control", "fsve-full-kd"))
    rows2 = {r["arm"]: r for r in aggregate([r for r in records if r["arm"] in plan2.arms], plan2)["rows"]}
    assert "vs_reference" not in rows2["fsve-full-kd"]


def test_aggregate_refuses_to_pair_different_clips():
    plan = BenchmarkPlan(seeds=[0], arms=("ann-control", "fsve-hybrid"))
    records = [
        _record("ann-control", 0, [1, 0, 1, 0], 1e-4),
        _record("fsve-hybrid", 0, [1, 1, 1, 0], 1e-4, ids=["x.dat", "y.dat", "z.dat", "w.dat"]),
    ]
    rows = {r["arm"]: r for r in aggregate(records, plan)["rows"]}
    assert "vs_control" not in rows["fsve-hybrid"], "clips differ: no paired test may be reported"


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"seeds": [0, 0]}, "repeats a seed"),
        ({"seeds": [0], "arms": ("ann", "resnet")}, "unknown arm 'resnet'"),
        ({"seeds": [0], "arms": ()}, "names no arm"),
        ({"seeds": [0], "preset": "huge"}, "unknown preset 'huge'"),
        ({"seeds": [0], "overrides": {"model": "spklip"}}, "set by the protocol"),
        ({"seeds": [0], "overrides": {"hsfe.n_blocks": 0}}, "n_blocks"),
        ({"seeds": [-1]}, "seeds"),
    ],
)
def test_bad_plans_are_refused(fields, needle):
    with pytest.raises(ConfigError) as err:
        BenchmarkPlan(**fields)
    assert needle in str(err.value), str(err.value)


def test_cli_bad_input_is_one_line(tmp_path, capsys, data):
    rc, _, err = run_main(capsys, "benchmark", "--arms", "ann,foo", "--out", tmp_path / "o")
    check_user_error(rc, err, "foo")
    rc, _, err = run_main(capsys, "benchmark", "--seeds", "0,x", "--out", tmp_path / "o")
    check_user_error(rc, err, "--seeds")
    rc, _, err = run_main(capsys, "benchmark", "--seeds", "0", "--out", tmp_path / "o", "--data", tmp_path / "none")
    check_user_error(rc, err, "none", "no such dataset")
    rc, _, err = run_main(
        capsys,
        "benchmark",
        "--arms",
        "ann-control",
        "--seeds",
        "0",
        "--work",
        tmp_path / "w",
        "--out",
        tmp_path / "o",
        "--data",
        data,
    )
    check_user_error(rc, err, "seed 0's is not trained", "include the arm 'ann'")
    rc, _, err = run_main(capsys, "benchmark", "--seeds", "0", "--out", tmp_path / "o", "--set", "model=fsve-full")
    check_user_error(rc, err, "--set model")
    assert not (tmp_path / "o").exists() and not (tmp_path / "w").exists()


def _argv(data: Path, work: Path, out: Path, epochs: int) -> list[str]:
    sets = [x for s in [*SMALL_SETS, f"train.epochs={epochs}"] for x in ("--set", s)]
    return [
        "benchmark",
        "--seeds",
        "0",
        "--data",
        str(data),
        "--work",
        str(work),
        "--out",
        str(out),
        "--threads",
        "1",
        "--energy-clips",
        "2",
        "--convert-timesteps",
        "2",
        *sets,
    ]


@pytest.mark.slow
def test_protocol_killed_mid_training_continues_where_it_stopped(data, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    argv = [sys.executable, "-m", "spklip_energy.cli", *_argv(data, work, out, epochs=12)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    ann = work / "seed0" / "ann"
    control = work / "seed0" / "ann-control" / "last.pt"
    deadline = time.time() + 240
    while not control.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # killed after the control's first epoch
    proc.communicate()
    assert (ann / "arm.json").is_file(), "the ANN arm finished before the kill"
    assert control.is_file(), "the kill came after the control's first checkpoint"
    assert not (control.parent / "arm.json").is_file(), "the control must not have finished before the kill"
    ann_record = (ann / "arm.json").read_bytes()
    ann_ckpt = (ann / "last.pt").stat().st_mtime_ns

    done = subprocess.run(argv + ["--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [r["arm"] for r in result["rows"]] == list(DEFAULT_ARMS)
    assert (ann / "arm.json").read_bytes() == ann_record and (ann / "last.pt").stat().st_mtime_ns == ann_ckpt, (
        "a finished arm is reused, not redone"
    )
    from spklip_energy.checkpoint import load_checkpoint

    history = load_checkpoint(control).card["train"]["history"]
    assert [h["epoch"] for h in history] == list(range(1, 13)), "the control resumed and finished all 12 epochs"
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files == ["accuracy_vs_energy.png", "benchmark.csv", "benchmark.json", "benchmark.md", "conversion_vs_t.png"]
    md = (out / "benchmark.md").read_text()
    assert "McNemar" in md and "µJ/clip (paper)" in md and "pooled 95 % CI" in md
    assert "| T | top-1 mean ± std | pooled 95 % CI | seeds |" in md, "the conversion curve with intervals"
    record = json.loads((out / "benchmark.json").read_text())
    assert record["threads"] == [1] and record["test_clips"] == 8

    again = subprocess.run(argv + ["--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rows"] == result["rows"], "a finished protocol reruns to the same table"


@pytest.mark.slow
def test_parallel_jobs_give_the_same_table(data, tmp_path):
    from spklip_energy.benchmark import run_benchmark

    sets = {"height": 32, "width": 32, "hsfe.input_pool": 1, "train.pretrain_epochs": 1, "train.epochs": 1}
    common = dict(
        seeds=[0, 1],
        data=str(data),
        threads=1,
        energy_clips=2,
        convert_timesteps=(2,),
        arms=("ann", "ann-control", "converted"),
        overrides=sets,
    )
    one = run_benchmark(BenchmarkPlan(**common, work=tmp_path / "one", jobs=1))
    two = run_benchmark(BenchmarkPlan(**common, work=tmp_path / "two", jobs=2))
    for a, b in zip(one["records"], two["records"], strict=True):
        assert (a["seed"], a["arm"]) == (b["seed"], b["arm"])
        assert a["per_clip"] == b["per_clip"] and a["energy"]["total_j"] == pytest.approx(b["energy"]["total_j"])
    assert (tmp_path / "two" / "seed1" / "converted" / "arm.json").is_file()
    # the QCFS arm with bias calibration, from the same seed's ANN: its sweep and record
    from spklip_energy.benchmark import run_arm

    plan = BenchmarkPlan(
        **(common | {"arms": ("ann", "converted-qcfs-bc"), "seeds": [0]}), qcfs_timesteps=(1, 2), work=tmp_path / "one"
    )
    rec = run_arm(plan, 0, "converted-qcfs-bc", lambda line: None)
    assert [p["label"] for p in rec["sweep"]] == ["ANN", "QCFS ANN (L=8)", "T=1", "T=2"]
    assert rec["kept_timesteps"] == 2 and rec["top1"] == rec["sweep"][-1]["top1"]
    conv = rec["conversion"]
    assert conv["method"] == "qcfs" and conv["bias_calibration"]["timesteps"] == 2 and conv["v_init"] == 0.5


def test_a_finished_arm_of_another_config_is_not_reused(tmp_path):
    """An arm folder whose checkpoint was trained with another config (here the full FSVE with the ANN front
    end, what the arm meant before the spiking front end) stops the job, naming the folder and the field."""
    from spklip_energy.benchmark import run_arm
    from tests.export_helpers import SMALL, small_checkpoint

    data = small_digits(tmp_path / "digits")
    plan = BenchmarkPlan(
        seeds=[0],
        arms=("ann", "fsve-full", "fsve-full-ann-hsfe"),
        data=str(data),
        work=tmp_path / "w",
        overrides={k: v for k, v in SMALL.items()},
    )
    run = plan.arm_dir(0, "fsve-full")
    run.mkdir(parents=True)
    ckpt = small_checkpoint(run, data, "fsve-full", name="last", **{"fsve.hsfe": "ann"})
    (run / "arm.json").write_text(
        json.dumps({**_record("fsve-full", 0, [1, 0], 1e-4), "format": 1, "checkpoint": str(ckpt)})
    )
    with pytest.raises(
        ConfigError,
        match=r"fsve-full: arm 'fsve-full' was trained with fsve\.hsfe='ann', the plan "
        r"asks for 'spiking'",
    ):
        run_arm(plan, 0, "fsve-full", lambda line: None)
    # the same checkpoint is what the opt-in arm means: reused as it is
    other = plan.arm_dir(0, "fsve-full-ann-hsfe")
    run.rename(other)
    rec = run_arm(plan, 0, "fsve-full-ann-hsfe", lambda line: None)
    assert rec["arm"] == "fsve-full"  # the record read back untouched
    with pytest.raises(ConfigError, match=r"--set fsve\.hsfe is set by the protocol itself"):
        BenchmarkPlan(seeds=[0], overrides={"fsve.hsfe": "ann"})
