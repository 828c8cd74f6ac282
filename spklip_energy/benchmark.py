"""The A.7 comparison protocol as one job: ANN, an equal-budget ANN control, the spiking variants and
the converted ANN, over several seeds, with intervals, paired tests and energy per clip.

For each seed (paper appendix A.7's ordering, on equal budgets):

1. ``ann`` - the ANN SPKLIP trained from scratch (``train --preset P --seed S``);
2. ``ann-control`` - the ANN again, trained from (1) with the same recipe and epochs: the equal-budget
   control that every other arm trained from (1) is compared with;
3. ``fsve-hybrid`` - spiking MS-ResNet CNN with STAR-Net's ANN Transformer, trained from (1);
4. ``fsve-full-kd-repeat`` - the full-spiking visual encoder as the project trains it by default:
   spiking front end with the ``repeat`` encoding, trained from (1) with (1) as its teacher
   (``train --init --teacher``);
5. ``converted`` - (1)'s CNN converted to IF neurons (rate coding, ``convert --layers cnn``) without
   training, kept at the largest of ``convert_timesteps``.

Opt-in arms (``--arms``), each differing from another in one thing (:data:`ARM_REFERENCE`):
``fsve-full-ann-hsfe`` (the ANN front end, ``fsve.hsfe=ann``); with the ``subwindows`` encoding,
``fsve-full-scratch`` (no ``--init``), ``fsve-full`` (``--init`` only), ``fsve-full-kd`` (``--init
--teacher``) and ``fsve-full-kd-long`` (the teacher through the contrastive stage too,
``train.lock_visual=false``: a longer budget than the other arms', reported as such).

Every arm is evaluated on the test split (per-clip outcomes recorded in its checkpoint) and profiled
for energy per clip under one cost model (default ``paper``). The table gives, per arm, top-1 as
mean +- std over seeds and the pooled 95 % Wilson interval, and the paired comparison with the control
of the same seed (exact McNemar on the pooled discordant pairs, paired-bootstrap interval of the
difference).

Resumable: each arm's run lives in ``WORK/seed<S>/<arm>/`` and is finished by an ``arm.json``;
a killed job continues where it stopped (a training resumes from its last finished epoch).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_path
from .errors import ConfigError
from .options import check_int_list, check_positive_int, check_seed

#: The arms in the order they run; each after ``ann`` starts from that seed's ``ann``.
ARMS = (
    "ann",
    "ann-control",
    "fsve-hybrid",
    "fsve-full-ann-hsfe",
    "fsve-full-scratch",
    "fsve-full",
    "fsve-full-kd",
    "fsve-full-kd-repeat",
    "fsve-full-kd-long",
    "converted",
    "converted-qcfs",
    "converted-qcfs-bc",
)
#: What ``--arms`` means by default.
DEFAULT_ARMS = ("ann", "ann-control", "fsve-hybrid", "fsve-full-kd-repeat", "converted")
ARM_TITLES = {
    "ann": "ANN (from scratch)",
    "ann-control": "ANN control (+ same budget again)",
    "fsve-hybrid": "fsve-hybrid (from ANN)",
    "fsve-full-ann-hsfe": "fsve-full, ANN front end (from ANN)",
    "fsve-full-scratch": "fsve-full, spiking front end, subwindows (from scratch)",
    "fsve-full": "fsve-full, spiking front end, subwindows (from ANN)",
    "fsve-full-kd": "fsve-full, spiking front end, subwindows (from ANN, ANN as teacher)",
    "fsve-full-kd-repeat": "fsve-full, spiking front end, repeat (from ANN, ANN as teacher): the default",
    "fsve-full-kd-long": "fsve-full-kd, teacher through the contrastive stage too (longer budget)",
    "converted": "ANN converted (IF, rate coding)",
    "converted-qcfs": "ANN converted with QCFS (fine-tuned, learned thresholds, θ/2 start)",
    "converted-qcfs-bc": "ANN converted with QCFS + bias calibration",
}
#: The conversion arms: what ``convert`` is asked for besides the plan's layers (T: ``convert_timesteps`` for
#: ``converted``, ``qcfs_timesteps`` for the QCFS arms, the largest kept).
CONVERT_ARMS = {
    "converted": {"method": "max"},
    "converted-qcfs": {"method": "qcfs"},
    "converted-qcfs-bc": {"method": "qcfs", "bias_calib": True},
}
#: The config each trained arm sets over the preset and --set (they win).
ARM_CONFIG = {
    "ann": {"model": "spklip"},
    "ann-control": {"model": "spklip"},
    "fsve-hybrid": {"model": "fsve-hybrid", "fsve.hsfe": "ann"},
    "fsve-full-ann-hsfe": {"model": "fsve-full", "fsve.hsfe": "ann"},
    "fsve-full-scratch": {"model": "fsve-full", "fsve.hsfe": "spiking", "fsve.hsfe_encoding": "subwindows"},
    "fsve-full": {"model": "fsve-full", "fsve.hsfe": "spiking", "fsve.hsfe_encoding": "subwindows"},
    "fsve-full-kd": {"model": "fsve-full", "fsve.hsfe": "spiking", "fsve.hsfe_encoding": "subwindows"},
    # the two time-step encodings of the spiking front end, compared on the same recipe
    "fsve-full-kd-repeat": {"model": "fsve-full", "fsve.hsfe": "spiking", "fsve.hsfe_encoding": "repeat"},
    # the visual tower keeps training (with its teacher) in the contrastive stage: 25 more epochs of it on
    # the tiny recipe than any other arm gets, so not an equal-budget comparison
    "fsve-full-kd-long": {
        "model": "fsve-full",
        "fsve.hsfe": "spiking",
        "fsve.hsfe_encoding": "subwindows",
        "train.lock_visual": False,
    },
}
#: Arms trained with their seed's ``ann`` as teacher.
TEACHER_ARMS = ("fsve-full-kd", "fsve-full-kd-repeat", "fsve-full-kd-long")
#: What each recipe arm isolates: the arm it is paired with (same seeds, same clips) in the benchmark's second
#: table, and the question that pair answers.
ARM_REFERENCE = {
    "converted-qcfs": "ann",
    "converted-qcfs-bc": "converted-qcfs",
    "fsve-full": "fsve-full-scratch",
    "fsve-full-kd": "fsve-full",
    "fsve-full-kd-repeat": "fsve-full-kd",
    "fsve-full-kd-long": "fsve-full-kd",
    "fsve-full-ann-hsfe": "fsve-full",
}
ARM_QUESTION = {
    "converted-qcfs": "what QCFS conversion at small T loses against the ANN",
    "converted-qcfs-bc": "what bias calibration adds to QCFS conversion",
    "fsve-full": "what --init brings",
    "fsve-full-kd": "what --teacher brings",
    "fsve-full-kd-repeat": "repeat instead of subwindows encoding",
    "fsve-full-kd-long": "distillation through the contrastive stage too (longer budget)",
    "fsve-full-ann-hsfe": "the ANN front end instead of the spiking one",
}
#: Arms trained from scratch (every other arm after ``ann`` starts from it, ``train --init``).
SCRATCH_ARMS = ("ann", "fsve-full-scratch")
CONTROL = "ann-control"
ARM_FORMAT = 1


@dataclass
class BenchmarkPlan:
    """What one protocol run does (checked on construction)."""

    seeds: list[int]
    preset: str = "tiny"
    data: str = "builtin-bench"
    arms: tuple[str, ...] = DEFAULT_ARMS
    work: Path = Path("runs/benchmark")
    threads: int = 2
    energy_clips: int = 16
    cost: str = "paper"
    convert_layers: str = "cnn"
    convert_timesteps: tuple[int, ...] = (8, 16, 32, 64)
    qcfs_timesteps: tuple[int, ...] = (1, 2, 4, 8)
    device: str = "cpu"
    overrides: dict | None = None  # --set style config overrides for every trained arm
    jobs: int = 1  # arms run side by side in separate processes, each with ``threads`` torch threads

    def config(self, arm: str, seed: int):
        """The config an arm trains with: the preset, the overrides, its model and the seed."""
        from spklip.config import preset_config

        return preset_config(self.preset, {**(self.overrides or {}), **ARM_CONFIG[arm], "train.seed": seed})

    def __post_init__(self) -> None:
        from spklip.config import PRESETS

        self.seeds = [check_seed(s, "seed") for s in check_int_list(self.seeds, "seeds", minimum=0)]
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds repeats a seed: {','.join(map(str, self.seeds))}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ConfigError(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
        self.arms = tuple(a for a in ARMS if a in self.arms)  # protocol order
        if not self.arms:
            raise ConfigError("--arms names no arm")
        self.threads = check_positive_int(self.threads, "threads")
        self.jobs = check_positive_int(self.jobs, "jobs")
        self.energy_clips = check_positive_int(self.energy_clips, "energy_clips")
        self.convert_timesteps = tuple(check_int_list(self.convert_timesteps, "convert_timesteps", minimum=1))
        self.qcfs_timesteps = tuple(check_int_list(self.qcfs_timesteps, "qcfs_timesteps", minimum=1))
        self.work = Path(self.work)
        self.overrides = dict(self.overrides or {})
        bad = [k for k in self.overrides if k in ("model", "train.seed", "fsve.hsfe")]
        if bad:
            raise ConfigError(f"--set {bad[0]} is set by the protocol itself (arms and --seeds)")
        for arm in ("ann", "fsve-full"):  # a bad override fails before any training
            self.config(arm, self.seeds[0])

    def preflight(self) -> None:
        """Check what the work needs before any of it starts: the data (train, val and test splits) and, for
        arms after ``ann`` run without it, each seed's trained ANN."""
        from spikedata.manifest import load_manifest
        from spklip.data import resolve_data

        manifest = load_manifest(resolve_data(self.data))
        missing = [s for s in ("train", "val", "test") if not manifest.split(s)]
        if missing:
            raise ConfigError(
                f"{self.data}: the protocol needs train, val and test splits; {missing[0]!r} holds no clips"
            )
        if "ann" not in self.arms:
            for seed in self.seeds:
                ann = self.arm_dir(seed, "ann") / "last.pt"
                if not (ann.is_file() and _trained(ann)):
                    raise ConfigError(
                        f"every arm after 'ann' starts from the seed's ANN, and seed {seed}'s is not "
                        f"trained ({ann}); include the arm 'ann'"
                    )

    def arm_dir(self, seed: int, arm: str) -> Path:
        return self.work / f"seed{seed}" / arm


def _commit() -> str | None:
    """The git commit of the code that runs, ``-dirty`` when it has uncommitted changes (None outside a
    checkout)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _write_json(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


def _trained(last: Path) -> bool:
    """Whether a run's checkpoint holds all its planned epochs."""
    from .checkpoint import load_checkpoint

    card = load_checkpoint(last).card.get("train", {})
    return isinstance(card.get("epoch"), int) and card.get("epoch") == card.get("epochs")


def _train_arm(plan: BenchmarkPlan, seed: int, arm: str, run: Path, ann: Path | None, progress) -> float:
    """Train (or finish training) an arm; returns the seconds spent in this call."""
    from spklip.training import train

    t0 = time.perf_counter()
    last = run / "last.pt"
    if last.is_file():
        if not _trained(last):
            train(None, None, run, resume=True, device=plan.device, progress=progress)
    else:
        cfg = plan.config(arm, seed)
        train(
            cfg,
            plan.data,
            run,
            device=plan.device,
            progress=progress,
            init=None if arm in SCRATCH_ARMS else ann,
            teacher=ann if arm in TEACHER_ARMS else None,
        )
    return time.perf_counter() - t0


def _convert_arm(plan: BenchmarkPlan, run: Path, ann: Path, arm: str = "converted") -> tuple[float, dict]:
    from convert.sweep import convert_checkpoint

    t0 = time.perf_counter()
    run.mkdir(parents=True, exist_ok=True)
    (run / "last.pt").unlink(missing_ok=True)  # a conversion a killed job left unrecorded: redone
    how = CONVERT_ARMS[arm]
    ts = plan.convert_timesteps if arm == "converted" else plan.qcfs_timesteps
    res = convert_checkpoint(
        ann,
        plan.convert_layers,
        list(ts),
        run / "last.pt",
        data=plan.data,
        samples=plan.energy_clips,
        cost=plan.cost,
        device=plan.device,
        plot=run / "convert.png",
        models=None,
        **how,
    )
    sweep = [
        {k: row.get(k) for k in ("label", "timesteps", "top1", "total_j", "compute_j", "memory_j", "memory_ratio")}
        for row in res["rows"]
    ]
    return time.perf_counter() - t0, {
        "layers": plan.convert_layers,
        "kept_timesteps": res.get("kept_timesteps"),
        "sweep": sweep,
        "conversion": res["conversion"],
    }


def _check_same_config(plan: BenchmarkPlan, seed: int, arm: str, run: Path) -> None:
    """Refuse to reuse a finished arm whose checkpoint was trained with another config than the plan's for
    it (an arm whose meaning changed, or other --set values): the table would mix models."""
    from spklip.io import trained_differently

    from .checkpoint import load_checkpoint

    diff = trained_differently(load_checkpoint(run / "last.pt"), plan.config(arm, seed))
    if diff:
        key, was, now = diff
        raise ConfigError(
            f"{run}: arm {arm!r} was trained with {key}={was!r}, the plan asks for {now!r}; move "
            "that folder away (or pass another --work) to train it anew"
        )


def run_arm(
    plan: BenchmarkPlan, seed: int, arm: str, log: Callable[[str], None], progress=None, commit: str | None = None
) -> dict:
    """Train (or convert), evaluate and profile one arm of one seed; returns its record (``arm.json``).
    ``commit``: the code's git commit as the job started (files edited while it runs do not count)."""
    from spklip.training import write_eval

    from .analysis import analyse_checkpoint

    run = plan.arm_dir(seed, arm)
    record_path = run / "arm.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("format") == ARM_FORMAT:
            if arm not in CONVERT_ARMS:
                _check_same_config(plan, seed, arm, run)
            log(f"seed {seed} · {arm}: done earlier ({record['top1'] * 100:.1f} % top-1), reused")
            return record
    ann = plan.arm_dir(seed, "ann") / "last.pt"
    log(f"seed {seed} · {arm}: {'converting' if arm in CONVERT_ARMS else 'training'} ...")
    extra: dict = {}
    if arm in CONVERT_ARMS:
        seconds, extra = _convert_arm(plan, run, ann, arm)
    else:
        seconds = _train_arm(plan, seed, arm, run, ann, progress)
    t0 = time.perf_counter()
    res = write_eval(run / "last.pt", plan.data, split="test", device=plan.device)
    summary, _ = analyse_checkpoint(run / "last.pt", data=plan.data, samples=plan.energy_clips, cost=plan.cost)
    e = summary.table6_per_sample
    record = {
        "format": ARM_FORMAT,
        "arm": arm,
        "seed": seed,
        "checkpoint": str(run / "last.pt"),
        "kind": summary.checkpoint.kind,
        "top1": res["top1"],
        "top5": res["top5"],
        "R@1": res["R@1"],
        "R@5": res["R@5"],
        "R@10": res["R@10"],
        "clips": res["clips"],
        "per_clip": res["per_clip"],
        "energy": {
            "cost_model": summary.cost_model["name"],
            "clips": summary.data.samples,
            "total_j": e.total_energy_j,
            "compute_j": e.computational_energy_j,
            "memory_j": e.memory_access_energy_j,
            "memory_ratio": e.memory_energy_ratio,
            "macs": summary.counts_per_sample.macs,
            "sops": summary.counts_per_sample.sops,
        },
        "train_s": round(seconds, 1),
        "eval_s": round(time.perf_counter() - t0, 1),
        "threads": _threads(),
        "commit": commit,
        "tool_version": __version__,
        **extra,
    }
    _write_json(record_path, record)
    log(
        f"seed {seed} · {arm}: top-1 {100 * record['top1']:.1f} % on {record['clips']} clips, "
        f"{record['energy']['total_j'] * 1e6:.1f} µJ/clip ({record['train_s']:.0f} s + {record['eval_s']:.0f} s)"
    )
    return record


def run_benchmark(plan: BenchmarkPlan, log: Callable[[str], None] = lambda s: None, progress=None) -> dict:
    """Run (or finish) every arm of every seed and return the aggregated result (see :func:`aggregate`)."""
    return run_benchmarks([plan], plan.jobs, log, progress)[0]


def run_benchmarks(
    plans: list[BenchmarkPlan], jobs: int, log: Callable[[str], None] = lambda s: None, progress=None
) -> list[dict]:
    """Several protocols (e.g. the variants of an ablation) whose arms share one pool of ``jobs``
    workers, so that no worker idles while another plan still has arms to train; one aggregated
    result per plan, in order."""
    import torch

    t0 = time.perf_counter()
    commit = _commit()
    for plan in plans:
        plan.preflight()
        log(
            f"A.7 protocol: seeds {','.join(map(str, plan.seeds))}, arms {','.join(plan.arms)}, preset "
            f"{plan.preset}, data {plan.data}, {plan.threads} torch thread(s); runs in {plan.work}"
        )
    if jobs == 1:
        done = {}
        for i, plan in enumerate(plans):
            torch.set_num_threads(plan.threads)
            for seed in plan.seeds:
                for arm in plan.arms:
                    done[i, seed, arm] = run_arm(plan, seed, arm, log, progress, commit)
    else:
        done = _run_parallel(plans, jobs, commit, log)
    results = []
    for i, plan in enumerate(plans):
        result = aggregate([done[i, s, a] for s in plan.seeds for a in plan.arms], plan)
        result["wall_s_this_call"] = round(time.perf_counter() - t0, 1)
        results.append(result)
    return results


def _worker(plan: BenchmarkPlan, seed: int, arm: str, commit: str | None) -> dict:
    """One arm in a worker process (``--jobs``): its own thread count, log lines on stderr."""
    import sys

    import torch

    torch.set_num_threads(plan.threads)
    return run_arm(plan, seed, arm, lambda line: print(line, file=sys.stderr, flush=True), None, commit)


def _run_parallel(
    plans: list[BenchmarkPlan], jobs: int, commit: str | None, log: Callable[[str], None]
) -> dict[tuple[int, int, str], dict]:
    """Every arm of every plan in ``jobs`` worker processes: first the ``ann`` arm of every seed (each
    later arm starts from it, and every ANN is measured before any variant runs), then all the others.
    A failing arm stops the job once the arms already running have finished (their records stay)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    log(f"{jobs} arms side by side, {plans[0].threads} torch thread(s) each")
    first = [(i, s, "ann") for i, p in enumerate(plans) for s in p.seeds if "ann" in p.arms]
    rest = [(i, s, a) for i, p in enumerate(plans) for s in p.seeds for a in p.arms if a != "ann"]
    done: dict[tuple[int, int, str], dict] = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for phase in (first, rest):
            futures = {pool.submit(_worker, plans[i], seed, arm, commit): (i, seed, arm) for i, seed, arm in phase}
            try:
                for fut, key in futures.items():
                    done[key] = fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    return done


def _paired(runs: dict[int, dict], other: dict[int, dict]) -> dict | None:
    """An arm's runs against another arm's on the seeds both have with the same test clips: exact McNemar
    on the discordant clips pooled over seeds, its bootstrap interval, and per seed the difference and p."""
    from .stats import decode_hits, mcnemar_exact

    paired = [s for s in sorted(runs) if s in other and other[s]["per_clip"]["ids"] == runs[s]["per_clip"]["ids"]]
    if not paired:
        return None
    hits = {s: decode_hits(runs[s]["per_clip"]["top1"]) for s in paired}
    theirs = {s: decode_hits(other[s]["per_clip"]["top1"]) for s in paired}
    test = mcnemar_exact(np.concatenate([hits[s] for s in paired]), np.concatenate([theirs[s] for s in paired]))
    per_seed = {s: mcnemar_exact(hits[s], theirs[s]) for s in paired}
    return {
        "seeds": paired,
        "difference": test["difference"],
        "difference_ci": test["difference_ci"],
        "p_value": test["p_value"],
        "only_this_right": test["a_only"],
        "only_other_right": test["b_only"],
        "p_value_per_seed": {s: t["p_value"] for s, t in per_seed.items()},
        "difference_per_seed": {s: t["difference"] for s, t in per_seed.items()},
    }


def aggregate(records: list[dict], plan: BenchmarkPlan) -> dict:
    """The protocol's table: per arm, top-1 over seeds with intervals, paired tests against the control
    of the same seed, and energy per clip."""
    from .stats import accuracy_summary, aggregate_seeds, decode_hits

    by_arm: dict[str, dict[int, dict]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r
    rows = []
    ann_energy = None
    for arm in plan.arms:
        runs = by_arm.get(arm, {})
        seeds = sorted(runs)
        hits = {s: decode_hits(runs[s]["per_clip"]["top1"]) for s in seeds}
        agg = aggregate_seeds([hits[s] for s in seeds])
        row = {
            "arm": arm,
            "title": ARM_TITLES[arm],
            "seeds": seeds,
            "top1_per_seed": {s: runs[s]["top1"] for s in seeds},
            "top1_mean": agg["mean"],
            "top1_std": agg["std"],
            "top1_pooled": agg["pooled"],
            "top5_mean": float(np.mean([runs[s]["top5"] for s in seeds])),
            "R@5_mean": float(np.mean([runs[s]["R@5"] for s in seeds])),
            "R@5_pooled": accuracy_summary(np.concatenate([decode_hits(runs[s]["per_clip"]["R@5"]) for s in seeds])),
            "energy_total_j": float(np.mean([runs[s]["energy"]["total_j"] for s in seeds])),
            "energy_total_j_std": float(np.std([runs[s]["energy"]["total_j"] for s in seeds], ddof=1))
            if len(seeds) > 1
            else float("nan"),
            "energy_compute_j": float(np.mean([runs[s]["energy"]["compute_j"] for s in seeds])),
            "energy_memory_j": float(np.mean([runs[s]["energy"]["memory_j"] for s in seeds])),
            "train_s": float(sum(runs[s]["train_s"] for s in seeds)),
        }
        if arm in CONVERT_ARMS:
            row["convert_sweep"] = {s: runs[s].get("sweep") for s in seeds}
        if arm == "ann":
            ann_energy = row["energy_total_j"]
        if arm != CONTROL:
            vs = _paired(runs, by_arm.get(CONTROL, {}))
            if vs:
                vs["only_control_right"] = vs.pop("only_other_right")
                row["vs_control"] = vs
        ref = ARM_REFERENCE.get(arm)
        if ref in plan.arms:
            vs = _paired(runs, by_arm.get(ref, {}))
            if vs:
                row["vs_reference"] = {"arm": ref, "question": ARM_QUESTION[arm], **vs}
        rows.append(row)
    for row in rows:
        row["energy_vs_ann"] = row["energy_total_j"] / ann_energy if ann_energy else None
    first = records[0] if records else {}
    return {
        "protocol": "A.7: ANN, equal-budget ANN control, hybrid, full, converted; per seed",
        "preset": plan.preset,
        "overrides": plan.overrides,
        "data": plan.data,
        "seeds": plan.seeds,
        "arms": list(plan.arms),
        "test_clips": first.get("clips"),
        "cost_model": first.get("energy", {}).get("cost_model"),
        "energy_clips": plan.energy_clips,
        "threads": sorted({r["threads"] for r in records}),
        "train_s_total": round(sum(r["train_s"] + r["eval_s"] for r in records), 1),
        "commits": sorted({r["commit"] for r in records if r.get("commit")}),
        "rows": rows,
        "statistics": {
            "interval": "95 % Wilson interval over the clips of all seeds pooled (treats seeds' clips as "
            "independent, so it understates seed-to-seed variation; mean +- std over seeds carries that)",
            "paired_test": "exact McNemar on the discordant clips of each arm and the ANN control of the same "
            "seed, pooled over seeds; difference interval: paired bootstrap over clips (95 %)",
        },
        "records": records,
    }


def work_dir(work: str | os.PathLike | None, data: str, preset: str) -> Path:
    """Where the runs of a protocol live by default: ``runs/benchmark/<data>-<preset>``."""
    if work is not None:
        return Path(work)
    name = Path(str(data)).name if not str(data).startswith("builtin") else str(data)
    return Path("runs/benchmark") / f"{name}-{preset}"
