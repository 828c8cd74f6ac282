"""Accuracy statistics: intervals, the paired test, seed aggregates, and how eval and compare show them."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import statistics

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import check_user_error, run_main
from export_helpers import small_checkpoint, small_digits
from scipy import stats as sps

from energy.record import (
    CheckpointInfo,
    CountsPerSample,
    DataInfo,
    EnergyPerSample,
    EnergyReport,
    EnergyTotals,
    Table6,
)
from spklip.metrics import retrieval_hits, retrieval_recall, topk_accuracy, topk_hits
from spklip_energy.analysis import NO_PER_CLIP, NOT_PAIRED, comparison_row
from spklip_energy.checkpoint import load_checkpoint
from spklip_energy.cli import main
from spklip_energy.errors import ConfigError
from spklip_energy.stats import (
    accuracy_summary,
    aggregate_seeds,
    count_summary,
    decode_hits,
    encode_hits,
    fmt_ci,
    mcnemar_exact,
    paired_bootstrap,
    proportion_ci,
)

Z95 = statistics.NormalDist().inv_cdf(0.975)


def wilson_by_hand(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval written out (Wilson 1927)."""
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# --------------------------------------------------------------------------- intervals


def test_wilson_interval_hand_case():
    low, high = proportion_ci(34, 40)
    lo_hand, hi_hand = wilson_by_hand(34, 40)
    assert low == pytest.approx(lo_hand, abs=1e-9) and high == pytest.approx(hi_hand, abs=1e-9)
    assert low == pytest.approx(0.7093, abs=1e-4) and high == pytest.approx(0.9294, abs=1e-4)


@pytest.mark.parametrize("k,n", [(0, 10), (1, 8), (29, 40), (40, 40), (412, 800), (7, 1000)])
def test_intervals_agree_with_the_formulas(k, n):
    assert proportion_ci(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-9)
    # Clopper-Pearson from beta quantiles, computed independently of binomtest
    lo = 0.0 if k == 0 else sps.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else sps.beta.ppf(0.975, k + 1, n - k)
    assert proportion_ci(k, n, method="exact") == pytest.approx((lo, hi), abs=1e-7)
    # a wider level gives a wider interval around k/n
    l90, h90 = proportion_ci(k, n, level=0.9)
    l99, h99 = proportion_ci(k, n, level=0.99)
    assert l99 <= l90 <= k / n <= h90 <= h99


def test_no_clips_gives_nan_and_summaries():
    assert all(math.isnan(x) for x in proportion_ci(0, 0))
    s = accuracy_summary([True, False, True, True])
    assert (s["k"], s["n"], s["value"], s["method"], s["level"]) == (3, 4, 0.75, "wilson", 0.95)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(wilson_by_hand(3, 4))
    assert accuracy_summary("1011") == s and accuracy_summary(np.array([1, 0, 1, 1])) == s
    assert math.isnan(accuracy_summary([])["value"])
    assert fmt_ci(count_summary(29, 40)) == "72.5 % [57.2, 83.9]"
    assert fmt_ci(count_summary(0, 0)) == "—"


def test_hits_text_round_trip():
    h = np.array([True, False, False, True, True])
    assert encode_hits(h) == "10011"
    assert (decode_hits("10011") == h).all()


# --------------------------------------------------------------------------- the paired test


def test_mcnemar_hand_case():
    # b = 10 clips only A got right, c = 2 only B, 20 both right, 8 both wrong
    a = np.array([1] * 10 + [0] * 2 + [1] * 20 + [0] * 8, dtype=bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 20 + [0] * 8, dtype=bool)
    res = mcnemar_exact(a, b)
    by_hand = 2 * sum(math.comb(12, i) for i in range(3)) / 2**12  # two-sided tail of Binomial(12, 1/2)
    assert (res["a_only"], res["b_only"], res["n"]) == (10, 2, 40)
    assert res["p_value"] == pytest.approx(by_hand, rel=1e-12) and by_hand == pytest.approx(0.03857, abs=1e-5)
    assert res["difference"] == pytest.approx(8 / 40)
    low, high = res["difference_ci"]
    assert low < 0.2 < high and low > 0  # the bootstrap agrees the difference is positive
    assert res["test"].startswith("exact McNemar")
    # swapping the models mirrors the counts and the difference, not the p-value
    rev = mcnemar_exact(b, a)
    assert (rev["a_only"], rev["b_only"]) == (2, 10) and rev["p_value"] == pytest.approx(res["p_value"])
    assert rev["difference"] == pytest.approx(-0.2)


@pytest.mark.parametrize("b,c", [(0, 5), (3, 4), (17, 6), (40, 25)])
def test_mcnemar_agrees_with_the_binomial_cdf(b, c):
    a = np.array([1] * b + [0] * c + [1] * 5, dtype=bool)
    bb = np.array([0] * b + [1] * c + [1] * 5, dtype=bool)
    expected = min(1.0, 2 * sps.binom.cdf(min(b, c), b + c, 0.5))
    assert mcnemar_exact(a, bb, resamples=200)["p_value"] == pytest.approx(expected, rel=1e-9)


def test_mcnemar_without_discordant_pairs_is_one():
    a = np.array([1, 0, 1, 1, 0], dtype=bool)
    res = mcnemar_exact(a, a.copy(), resamples=500)
    assert res["p_value"] == 1.0 and res["difference"] == 0.0 and res["difference_ci"] == (0.0, 0.0)


def test_paired_bootstrap_contains_the_truth_shrinks_with_n_and_matches_resampling_clips():
    rng = np.random.default_rng(3)

    def pair(n):
        u = rng.random(n)
        return u < 0.7, u < 0.6  # true difference 0.1, strongly paired

    a, b = pair(500)
    low, high = paired_bootstrap(a, b)
    assert low < 0.1 < high and low <= a.mean() - b.mean() <= high
    a4, b4 = pair(8000)
    low4, high4 = paired_bootstrap(a4, b4)
    assert low4 < 0.1 < high4 and (high4 - low4) < 0.5 * (high - low)
    assert paired_bootstrap(a, b, seed=5) == paired_bootstrap(a, b, seed=5)
    # the same bootstrap as drawing clip indices with replacement
    idx = np.random.default_rng(9).integers(0, a.size, size=(4000, a.size))
    d = a.astype(float) - b.astype(float)
    ref = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    assert (low, high) == pytest.approx(tuple(ref), abs=0.008)


def test_paired_bootstrap_keeps_memory_bounded_for_many_clips():
    n = 100_000
    a = np.zeros(n, dtype=bool)
    a[: n // 2] = True
    b = np.roll(a, 1000)
    low, high = paired_bootstrap(a, b, resamples=20_000)
    assert low < 0 < high or low == high == 0  # equal accuracies
    assert high - low < 0.01


# --------------------------------------------------------------------------- seeds


def test_aggregate_seeds_mean_std_and_pooled():
    per_seed = [(29, 40), (34, 40), [1] * 30 + [0] * 10]
    res = aggregate_seeds(per_seed)
    values = [29 / 40, 34 / 40, 30 / 40]
    assert res["values"] == pytest.approx(values) and res["seeds"] == 3
    assert res["mean"] == pytest.approx(statistics.mean(values))
    assert res["std"] == pytest.approx(statistics.stdev(values))
    pooled = res["pooled"]
    assert (pooled["k"], pooled["n"]) == (93, 120)
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx(wilson_by_hand(93, 120))
    one = aggregate_seeds([(5, 10)])
    assert one["mean"] == 0.5 and math.isnan(one["std"])


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: proportion_ci(5, 4), "exceed"),
        (lambda: proportion_ci(-1, 4), "at least 0"),
        (lambda: proportion_ci(2.5, 4), "whole number"),
        (lambda: proportion_ci(True, 4), "whole number"),
        (lambda: proportion_ci(2, 4, level=1.0), "strictly between"),
        (lambda: proportion_ci(2, 4, level=0), "strictly between"),
        (lambda: proportion_ci(2, 4, level=float("nan")), "strictly between"),
        (lambda: proportion_ci(2, 4, method="wald"), "unknown interval method"),
        (lambda: accuracy_summary([0, 1, 2]), "only 0 and 1"),
        (lambda: accuracy_summary([[0, 1], [1, 0]]), "one-dimensional"),
        (lambda: accuracy_summary("10x1"), "string of '0' and '1'"),
        (lambda: mcnemar_exact([1, 0, 1], [1, 0]), "same clips"),
        (lambda: paired_bootstrap([1, 0], [0, 1], resamples=0), "resamples"),
        (lambda: aggregate_seeds([]), "non-empty"),
        (lambda: aggregate_seeds([(3, 0)]), "exceed"),
        (lambda: aggregate_seeds([(0, 0)]), "no clips"),
        (lambda: aggregate_seeds([(1, 2, 3)]), "two numbers"),
    ],
)
def test_bad_inputs_raise_config_error(call, needle):
    with pytest.raises(ConfigError, match=needle):
        call()


# --------------------------------------------------------------------------- per-clip metrics


def test_per_clip_metrics_and_their_means():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.8, 0.7]])
    labels = torch.tensor([0, 1, 2])
    hits = topk_hits(sim, labels, (1, 2))
    assert hits["top1"].tolist() == [True, False, False] and hits["top2"].tolist() == [True, True, True]
    assert topk_accuracy(sim, labels, (1, 2)) == {"top1": pytest.approx(1 / 3), "top2": 1.0}
    q = torch.tensor([[0.9, 0.1, 0.0], [0.3, 0.1, 0.5], [0.1, 0.8, 0.7]])
    rec = retrieval_hits(q, ["a", "b", "c"], (1, 2))
    assert rec["R@1"].tolist() == [True, False, False] and rec["R@2"].tolist() == [True, False, True]
    assert retrieval_hits(q, ["a", "x", "x"], (1,))["R@1"].tolist() == [True, True, True]
    assert retrieval_recall(q, ["a", "b", "c"], (2,)) == {"R@2": pytest.approx(2 / 3)}


# --------------------------------------------------------------------------- compare rows from cards


def _summary(evaluation: dict | None, top1=None) -> EnergyReport:
    """A report whose card recorded ``evaluation`` (and top-1 ``top1``); its energy figures do not matter here."""
    return EnergyReport(
        checkpoint=CheckpointInfo(path="m.pt", kind="spklip", spiking=False, config={}),
        data=DataInfo(source="d", samples=1, frames=1, height=1, width=1, classes=[]),
        tool_version="0",
        created="",
        reuse="layer",
        counts={},
        counts_per_sample=CountsPerSample(
            macs=1.0, sops=0.0, neuron_updates=0.0, mem_reads=0.5, mem_writes=0.5, mem_accesses=1.0
        ),
        energy=EnergyTotals(
            compute_j=1.0,
            neuron_j=0.0,
            memory_j=1.0,
            total_j=2.0,
            memory_ratio=0.5,
            table6_compute_j=1.0,
            per_sample_total_j=2.0,
            memory_bound_layers=0,
            layers=1,
        ),
        energy_per_sample=EnergyPerSample(compute_j=1.0, neuron_j=0.0, memory_j=1.0, total_j=2.0),
        table6_per_sample=Table6(
            computational_energy_j=1.0, memory_access_energy_j=1.0, total_energy_j=2.0, memory_energy_ratio=0.5
        ),
        neuron_energy_grouping="compute",
        cost_model={"name": "paper"},
        energy_models=None,
        warnings=[],
        not_counted=[],
        conventions=[],
        accuracy=top1,
        evaluation=evaluation,
    )


def test_comparison_rows_from_old_and_new_cards():
    old = comparison_row(_summary({"top1": 0.5, "clips": 40}, 0.5), "old")
    assert old["eval_clips"] == 40
    assert (old["acc_ci_low"], old["acc_ci_high"]) == pytest.approx(wilson_by_hand(20, 40))
    bare = comparison_row(_summary({"top1": 0.5}, 0.5), "bare")
    assert bare["accuracy"] == 0.5 and bare["acc_ci_low"] is None and bare["eval_clips"] is None
    ids = [f"c/{i}.dat" for i in range(40)]
    base = _summary(
        {
            "top1": 0.75,
            "clips": 40,
            "split": "test",
            "data": "d",
            "per_clip": {"ids": ids, "top1": "1" * 30 + "0" * 10},
        },
        0.75,
    )
    other = _summary(
        {
            "top1": 0.55,
            "clips": 40,
            "split": "test",
            "data": "d",
            "per_clip": {"ids": ids, "top1": "1" * 20 + "0" * 18 + "11"},
        },
        0.55,
    )
    row = comparison_row(other, "other", ("base", base))
    assert (row["only_this_right"], row["only_baseline_right"]) == (2, 10)
    assert row["p_value"] == pytest.approx(2 * sum(math.comb(12, i) for i in range(3)) / 2**12)
    assert row["top1_diff"] == pytest.approx(-0.2) and row["diff_ci_low"] < -0.2 < row["diff_ci_high"]
    assert comparison_row(base, "base", ("base", base))["paired"] == "baseline"
    moved = _summary({**other.evaluation, "data": "elsewhere"}, 0.55)
    assert comparison_row(moved, "m", ("base", base))["paired"].startswith(NOT_PAIRED)
    shuffled = _summary({**other.evaluation, "per_clip": {"ids": ids[::-1], "top1": "1" * 40}}, 1.0)
    assert comparison_row(shuffled, "s", ("base", base))["paired"].startswith(NOT_PAIRED)
    no_clips = comparison_row(
        _summary({"top1": 0.5, "clips": 40, "split": "test", "data": "d"}, 0.5), "n", ("base", base)
    )
    assert no_clips["paired"].startswith(NO_PER_CLIP) and no_clips["p_value"] is None


# --------------------------------------------------------------------------- the CLI


def _main_json(*argv) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([str(a) for a in argv]) == 0
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Two different small checkpoints evaluated on the same data, one evaluated on a copy of it, one
    never evaluated."""
    tmp = tmp_path_factory.mktemp("stats")
    data = small_digits(tmp / "digits")
    copy = tmp / "digits-copy"
    shutil.copytree(data, copy)
    cks = {
        "a": small_checkpoint(tmp, data, "spklip", name="a"),
        "b": small_checkpoint(tmp, data, "fsve-hybrid", calibrate=True, name="b"),
    }
    cks["c"] = tmp / "c.pt"
    shutil.copy(cks["a"], cks["c"])
    cks["fresh"] = tmp / "fresh.pt"
    shutil.copy(cks["a"], cks["fresh"])
    evals = {
        name: _main_json("eval", cks[name], "--data", src, "--json")
        for name, src in (("a", data), ("b", data), ("c", copy))
    }
    return {"data": data, "cks": cks, "evals": evals, "tmp": tmp}


def test_eval_json_carries_intervals_and_per_clip_outcomes(evaluated):
    ev = evaluated["evals"]["a"]
    n = ev["clips"]
    for key in ("top1", "top5", "R@1", "R@5", "R@10"):
        s = ev["intervals"][key]
        assert s["n"] == n and s["value"] == pytest.approx(ev[key]) and s["method"] == "wilson"
        assert s["ci_low"] <= ev[key] <= s["ci_high"]
        text = ev["per_clip"][key]
        assert len(text) == n and set(text) <= {"0", "1"} and text.count("1") == s["k"]
    ids = ev["per_clip"]["ids"]
    assert len(ids) == n == len(set(ids)) and all((evaluated["data"] / i).exists() for i in ids)
    card = load_checkpoint(evaluated["cks"]["a"]).card["eval"]
    assert card["per_clip"] == ev["per_clip"] and card["intervals"]["top1"]["k"] == ev["intervals"]["top1"]["k"]


def test_eval_text_shows_the_intervals(evaluated, capsys):
    rc, out, err = run_main(capsys, "eval", evaluated["cks"]["c"], "--data", evaluated["data"].parent / "digits-copy")
    assert rc == 0, err
    ev = evaluated["evals"]["c"]
    assert fmt_ci(ev["intervals"]["top1"]) in out and fmt_ci(ev["intervals"]["R@5"]) in out
    assert f"95 % Wilson interval over {ev['clips']} clips" in out


def test_compare_pairs_checkpoints_evaluated_on_the_same_clips(evaluated, capsys):
    cks, out = evaluated["cks"], evaluated["tmp"] / "cmp"
    rc, text, err = run_main(
        capsys,
        "compare",
        cks["a"],
        cks["b"],
        cks["c"],
        cks["fresh"],
        "--data",
        evaluated["data"],
        "--samples",
        "1",
        "--out",
        out,
        "--json",
    )
    assert rc == 0, err
    res = json.loads(text)
    rows = {r["name"]: r for r in res["rows"]}
    assert res["baseline"] == "a" and rows["a"]["paired"] == "baseline"
    a, b = (np.array(list(evaluated["evals"][k]["per_clip"]["top1"])) == "1" for k in ("a", "b"))
    expected = mcnemar_exact(b, a)
    assert rows["b"]["p_value"] == pytest.approx(expected["p_value"]) and 0 < rows["b"]["p_value"] <= 1
    assert rows["b"]["top1_diff"] == pytest.approx(b.mean() - a.mean())
    assert rows["b"]["diff_ci_low"] <= rows["b"]["top1_diff"] <= rows["b"]["diff_ci_high"]
    assert rows["c"]["paired"].startswith(NOT_PAIRED) and rows["c"]["p_value"] is None
    assert rows["fresh"]["paired"].startswith(NO_PER_CLIP) and rows["fresh"]["accuracy"] is None
    s = evaluated["evals"]["a"]["intervals"]["top1"]
    assert (rows["a"]["acc_ci_low"], rows["a"]["acc_ci_high"], rows["a"]["eval_clips"]) == pytest.approx(
        (s["ci_low"], s["ci_high"], s["n"])
    )
    # the written files carry the same
    df = pd.read_csv(out / "comparison.csv")
    assert df.loc[1, "p_value"] == pytest.approx(rows["b"]["p_value"]) and df.loc[2, "paired"].startswith(NOT_PAIRED)
    assert json.loads((out / "comparison.json").read_text())["rows"][1]["p_value"] == pytest.approx(
        rows["b"]["p_value"]
    )
    md = (out / "comparison.md").read_text()
    assert "McNemar p" in md and NOT_PAIRED in md and NO_PER_CLIP in md and fmt_ci(s) in md


def test_compare_baseline_option(evaluated, capsys):
    cks = evaluated["cks"]
    rc, text, err = run_main(
        capsys,
        "compare",
        cks["a"],
        cks["b"],
        "--data",
        evaluated["data"],
        "--samples",
        "1",
        "--out",
        evaluated["tmp"] / "cmp2",
        "--baseline",
        "b",
    )
    assert rc == 0, err
    assert "Δ top-1 vs b" in text and "Ratios (×) are to the baseline, b." in text
    rc, text, err = run_main(
        capsys,
        "compare",
        cks["a"],
        cks["b"],
        "--data",
        evaluated["data"],
        "--samples",
        "1",
        "--out",
        evaluated["tmp"] / "cmp2",
        "--baseline",
        "2",
        "--json",
    )
    rows = json.loads(text)["rows"]
    assert rc == 0 and rows[1]["paired"] == "baseline" and rows[0]["p_value"] is not None
    rc, _, err = run_main(
        capsys,
        "compare",
        cks["a"],
        cks["b"],
        "--data",
        evaluated["data"],
        "--out",
        evaluated["tmp"] / "cmp3",
        "--baseline",
        "nope",
    )
    check_user_error(rc, err, "--baseline", "nope")
