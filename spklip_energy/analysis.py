"""Energy analysis of a checkpoint on spike data: the library side of ``report`` and ``compare``.

``analyse_checkpoint`` loads a checkpoint, builds its model, runs it on N clips
under the hook-based counter and prices the counts with a cost model;
``analyse_netx`` does the same for a netx network (``report NET.net``) on its torch
twin. Both return an :class:`~energy.record.EnergyReport` and the per-layer table.
Rendering is :mod:`reports`' job.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from energy.estimate import estimate_energy, resolve_cost
from energy.models import estimate_models, resolve_models
from energy.profiler import REUSE_MODES, profile
from energy.record import (
    CheckpointInfo,
    CountsPerSample,
    DataInfo,
    EnergyPerSample,
    EnergyReport,
    EnergyTotals,
    NotCounted,
    PartFigures,
    SimulatorCheck,
    Table6,
)
from energy.rules import CONVENTIONS
from spikedata.clips import SpikeClips, resolve_builtin

from . import __version__
from .checkpoint import Checkpoint, load_checkpoint, nonfinite_weights
from .errors import ConfigError, SpklipWarning
from .limits import check_memory
from .options import check_int, check_int_list, check_positive_int
from .runners import Runner, runner_for


def conventions() -> list[str]:
    """The counting conventions every report lists (:data:`energy.rules.CONVENTIONS`)."""
    return list(CONVENTIONS)


def load_clips(
    data: str | os.PathLike,
    runner: Runner,
    split: str | None = "test",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SpikeClips, str]:
    """The clips behind ``--data`` (``builtin``, ``builtin-bench``, ... or a dataset folder/manifest), as the
    model needs them."""
    from spikedata.manifest import load_manifest

    root = resolve_builtin(data, progress=progress)
    if root is not None:
        source = f"{data} spike digits ({split} split)" if split else f"{data} spike digits"
    else:
        root, source = Path(data), str(data)
    manifest = load_manifest(root)
    has_split = split is not None and any(c.split == split for c in manifest.clips)
    return runner.clips(manifest, split if has_split else None), source


def _batches(ds: SpikeClips, samples: int, batch_size: int, world=None):
    """The batches of the first ``samples`` clips; in a distributed run (``world``) this rank's contiguous
    share of them, whole (the batches are the one-process run's, so every count and buffer size is too)."""
    n = min(samples, len(ds))
    starts = list(range(0, n, batch_size))
    if world is not None and world.distributed:
        from .distributed import split_bounds

        lo, hi = split_bounds(len(starts), world)
        starts = starts[lo:hi]
    for lo in starts:
        items = [ds[i] for i in range(lo, min(lo + batch_size, n))]
        yield torch.stack([it["spikes"] for it in items]), torch.tensor([it["label"] for it in items])


def analyse_checkpoint(
    ckpt: str | os.PathLike | Checkpoint,
    data: str | os.PathLike = "builtin",
    samples: int = 8,
    cost="paper",
    reuse: str = "layer",
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    models="default",
    model_file: str | os.PathLike | None = None,
    weight_bits: int = 8,
    steps: int | list[int] | None = None,
    world=None,
) -> tuple[EnergyReport, pd.DataFrame]:
    """Profile a checkpoint's model on ``samples`` clips and estimate its energy.

    ``world`` (:func:`~spklip_energy.distributed.init_world`, under torchrun): the ranks profile one
    contiguous share of the batches each and every rank gets the counts of all clips, equal to one
    process's.

    Returns ``(report, per_layer)``: ``report`` (:class:`~energy.record.EnergyReport`) has the checkpoint,
    data, counts in total and per sample, energy, Table 6 rows, energy by model part for
    SPKLIP kinds (:func:`part_summary`; None for the zoo's), cost model with sources,
    warnings, conventions and ``energy_models``: the energy under each published model of
    ``models`` (:func:`~energy.models.estimate_models`; ``model_file`` sets their
    parameters; a network without neurons is also priced at int8 and, given ``steps``, at the
    activation bits of a ``steps``-step SNN with ``weight_bits``-bit weights); ``per_layer`` has
    counts and energy per layer (and, for SPKLIP kinds, each layer's ``part``).
    """
    samples = check_positive_int(samples, "samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    if reuse not in REUSE_MODES:  # before any loading
        raise ConfigError(f"unknown weight-reuse mode {reuse!r}; choose one of {', '.join(REUSE_MODES)}")
    cost_model = resolve_cost(cost)  # fail early on an unknown preset or a bad cost file
    energy_models = resolve_models(models, model_file)  # and on an unknown model or a bad model file
    weight_bits = check_int(weight_bits, "weight_bits", 1, 32)
    steps = None if steps is None else check_int_list(steps if isinstance(steps, list) else [steps], "steps")
    ck = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)

    weights_warning = nonfinite_warning(ck)
    runner = runner_for(ck)
    ds, source = load_clips(data, runner)
    n = min(samples, len(ds))
    batch = min(batch_size, n)  # one forward pass: the clips and what the model computes from them
    check_memory(
        runner.forward_bytes(batch, ds),
        f"profiling {ck.path or 'the checkpoint'} ({batch} clips per forward pass)",
        f"batch_size {batch_size} clips of {ds.frames} frames of {ds.height}x{ds.width}",
    )
    correct = 0

    def forward(_module):
        nonlocal correct
        done = 0
        for spikes, labels in _batches(ds, n, batch_size, world):
            out = runner.run(spikes)
            if runner.logits and out.shape[-1] == len(ds.classes):
                correct += int((out.argmax(-1).cpu() == labels).sum())
            done += len(labels)
            if progress is not None:
                progress(done, n)

    result = profile(runner.module, forward=forward, reuse=reuse, samples=n, world=world)
    if world is not None and world.distributed:
        from .distributed import all_sum

        correct = int(all_sum({"correct": correct}, world)["correct"])
    report, per_layer = priced_report(
        result,
        cost_model,
        CheckpointInfo(path=str(ck.path), kind=runner.kind, spiking=runner.spiking, config=runner.config),
        DataInfo(source=source, samples=n, frames=ds.frames, height=ds.height, width=ds.width, classes=ds.classes),
        reuse,
        energy_models,
        steps,
        weight_bits,
        runner.steps,
    )
    if _is_spklip(runner.kind):
        per_layer = with_parts(per_layer)
        report.parts = part_summary(per_layer, n)
    if weights_warning:
        report.warnings.append(weights_warning)
        warnings.warn(weights_warning, SpklipWarning, stacklevel=2)
    card = ck.card
    evaluation = card.get("eval") if isinstance(card.get("eval"), dict) else None
    top1 = (evaluation or {}).get("top1")
    if isinstance(top1, bool) or not isinstance(top1, (int, float)) or not 0 <= top1 <= 1:
        top1 = None  # a card's recorded accuracy is shown only when it is one
    report.accuracy = top1
    report.evaluation = {k: v for k, v in (evaluation or {}).items() if k != "confusion"} or None
    report.measured_top1_on_profiled_samples = (correct / n) if runner.logits and n else None
    return report, per_layer


def analyse_netx(
    net_path: str | os.PathLike,
    data: str = "builtin",
    steps: int | None = None,
    cost="loihi",
    reuse: str = "layer",
    models="default",
    model_file=None,
) -> tuple[EnergyReport, pd.DataFrame]:
    """``report NET.net``: the hook counter on the network's torch twin (:class:`export.loihi_torch.NetxTorch`)
    for the ``simulate`` input (:func:`export.simulate.simulation_input`), priced by ``cost``; the report
    has the checkpoint reports' fields, and the simulator's own counts beside the hook counter's
    (``simulator``) instead of energy by part."""
    import numpy as np

    from export.loihi_engine import simulate
    from export.loihi_torch import NetxTorch
    from export.simulate import simulation_input

    model = resolve_cost(cost)
    energy_models = resolve_models(models, model_file)
    net, a_in, source, sched, rec = simulation_input(net_path, data, steps)
    x = torch.from_numpy(np.ascontiguousarray(a_in))
    n = sched.get("blocks") or int(a_in.shape[1])  # samples: the clip's blocks, or the .dat clip
    result = profile(NetxTorch(net, sched["reset_interval"]), forward=lambda m: m(x), reuse=reuse, samples=n)
    c, h, w = net.input_shape
    report, per_layer = priced_report(
        result,
        model,
        CheckpointInfo(
            path=str(net_path),
            kind="netx",
            spiking=True,
            config=(rec or {}).get("config") or {"layers": net.describe()},
        ),
        DataInfo(source=source, samples=n, frames=int(a_in.shape[0]), height=h, width=w, classes=[]),
        reuse,
        energy_models,
    )
    sim = simulate(net, a_in, keep_spikes=False, reset_interval=sched["reset_interval"]).totals()
    totals = result.totals
    agree = int(totals["sops"]) == sim["synaptic_events"] and int(totals["neuron_updates"]) == sim["neuron_updates"]
    report.simulator = SimulatorCheck(counts=sim, agree=agree)
    if not agree:
        report.warnings.append("hook counts differ from the simulator's (a bug: please report)")
    report.conventions.append(
        "netx: samples are temporal blocks, pipelined (or one .dat clip); a synaptic "
        "layer delivers at t the spikes of t-1; every step of the run is counted, "
        "latency steps included; counts from the torch twin of the fixed-point "
        "network, checked against the simulator"
    )
    return report, per_layer


#: the per-sample figures of each part in ``report.parts`` (besides ``layers`` and ``share``)
PART_FIGURES = ("macs", "sops", "neuron_updates", "mem_accesses", "compute_j", "neuron_j", "memory_j", "total_j")


def _is_spklip(kind: str) -> bool:
    """Whether ``kind`` is a SPKLIP checkpoint kind (whose profiled module is the visual encoder)."""
    from spklip.io import KINDS

    return kind in KINDS


def with_parts(per_layer: pd.DataFrame) -> pd.DataFrame:
    """``per_layer`` of a SPKLIP visual encoder with a ``part`` column (:mod:`spklip.parts`):
    counted layers are placed in network order (a converted run's own rows need their neighbours),
    layers without a rule by name alone."""
    from spklip.parts import assign_parts, part_of

    df = per_layer.copy()
    counted = _counted(df)
    parts = pd.Series("other", index=df.index, dtype=object)
    parts[counted] = assign_parts(df.loc[counted, "name"].tolist())
    parts[~counted] = [part_of(name) for name in df.loc[~counted, "name"]]
    df.insert(1 if "name" in df else 0, "part", parts)
    return df


def part_summary(per_layer: pd.DataFrame, n: int) -> dict[str, PartFigures]:
    """Energy and counts by model part, per sample, from a per-layer table with a ``part`` column.

    Returns ``{part: PartFigures(layers = counted layers, macs, sops, neuron_updates,
    mem_accesses, compute_j, neuron_j, memory_j, total_j (per sample), share =
    fraction of the total energy)}`` in :data:`~spklip.parts.PARTS` order, for
    the parts that have at least one layer (counted or not). Only counted layers carry
    counts and energy, so the parts add up to the summary's totals.
    """
    from spklip.parts import PARTS

    counted = per_layer[_counted(per_layer)]
    total = float(counted["total_j"].sum()) if len(counted) and "total_j" in counted else 0.0
    out = {}
    for part in PARTS:
        if not (per_layer["part"] == part).any():
            continue
        rows = counted[counted["part"] == part]
        sums = {k: float(rows[k].fillna(0).sum()) if k in rows else 0.0 for k in PART_FIGURES}
        out[part] = PartFigures(
            layers=int(len(rows)),
            **{k: v / n for k, v in sums.items()},
            share=sums["total_j"] / total if total else 0.0,
        )
    return out


def _counted(per_layer: pd.DataFrame) -> pd.Series:
    """Which rows of a per-layer table were counted (have a rule, counts and energy)."""
    if "counted" not in per_layer:
        return pd.Series(False, index=per_layer.index)
    return per_layer["counted"].fillna(False).astype(bool)


def nonfinite_warning(ck: Checkpoint) -> str | None:
    """The warning for a checkpoint whose weights hold NaN or Inf (None when they are finite)."""
    problem = nonfinite_weights(ck)
    return problem and (
        f"{problem}; the model's outputs, spike counts, energy and accuracy measured from it are not meaningful"
    )


def priced_report(
    result,
    cost_model,
    checkpoint: CheckpointInfo,
    data: DataInfo,
    reuse: str,
    energy_models=None,
    steps=None,
    weight_bits: int = 8,
    snn_steps: int | None = None,
) -> tuple[EnergyReport, pd.DataFrame]:
    """The report of what was profiled (``checkpoint``, ``data``) from a :class:`ProfileResult` covering
    ``data.samples`` samples: counts in total and per sample, energy (``cost_model``), the Table 6 rows, cost
    model, the energy under each of ``energy_models`` (default: :data:`~energy.models.DEFAULT_MODELS`),
    warnings and conventions (accuracy, evaluation and parts left for the caller); and the per-layer table
    (layers without a rule appended)."""
    n = data.samples
    energy = estimate_energy(result, cost_model)
    models = estimate_models(
        result,
        n,
        resolve_models() if energy_models is None else energy_models,
        steps=steps,
        weight_bits=weight_bits,
        snn_steps=snn_steps,
    )
    per_layer = energy["per_layer"]
    if result.not_counted:
        per_layer = pd.concat([per_layer, result.per_layer[~result.per_layer["counted"]]], ignore_index=True)
    totals = result.totals
    e = energy["totals"]
    report = EnergyReport(
        checkpoint=checkpoint,
        data=data,
        tool_version=__version__,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        reuse=reuse,
        counts=dict(totals),
        counts_per_sample=CountsPerSample(
            **{k: totals[k] / n for k in ("macs", "sops", "neuron_updates", "mem_reads", "mem_writes", "mem_accesses")}
        ),
        energy=EnergyTotals(**e),
        energy_per_sample=EnergyPerSample(**{k: e[k] / n for k in ("compute_j", "neuron_j", "memory_j", "total_j")}),
        table6_per_sample=Table6(
            computational_energy_j=e["table6_compute_j"] / n,
            memory_access_energy_j=e["memory_j"] / n,
            total_energy_j=e["total_j"] / n,
            memory_energy_ratio=e["memory_ratio"],
        ),
        neuron_energy_grouping=energy["cost_model"].get("neuron_energy_in", "compute"),
        cost_model=energy["cost_model"],
        energy_models=models,
        warnings=energy["warnings"] + [m for m in result.notes if m not in energy["warnings"]],
        not_counted=[NotCounted(**r) for r in result.not_counted],
        conventions=conventions(),
    )
    return report, per_layer


def price_fairly(
    summaries: list[EnergyReport],
    per_layers: list[pd.DataFrame],
    models="default",
    model_file: str | os.PathLike | None = None,
    weight_bits: int = 8,
) -> None:
    """Re-price each network without neurons among ``summaries`` (their ``energy_models``, in place) at the
    activation bits of the T of every spiking network among them (Yan et al.: a T-step SNN matches a
    ``ceil(log2(T+1))``-bit ANN)."""
    steps = sorted(
        {s.energy_models["steps"] for s in summaries if s.energy_models["spiking"] and s.energy_models["steps"]}
    )
    if not steps:
        return
    energy_models = resolve_models(models, model_file)
    for s, per_layer in zip(summaries, per_layers, strict=True):
        if not s.energy_models["spiking"]:
            s.energy_models = estimate_models(
                per_layer, s.data.samples, energy_models, steps=steps, weight_bits=weight_bits
            )


#: what a comparison row says where no paired test could be made
NOT_PAIRED = "not paired: evaluated on different clips"
NO_PER_CLIP = "no per-clip results: run `spklip-energy eval` first"


def _recorded_top1(summary: EnergyReport):
    """The top-1 :func:`~spklip_energy.stats.count_summary` a card's recorded evaluation supports: from
    its per-clip outcomes, else its recorded ``k``/``n``, else ``round(top1 * clips)`` of ``clips``
    (cards written before intervals were recorded); None when it records no accuracy."""
    from .stats import accuracy_summary, count_summary

    ev = summary.evaluation or {}
    if summary.accuracy is None:
        return None
    outcomes = _per_clip_top1(ev)
    if outcomes is not None:
        return accuracy_summary(outcomes[1])
    rec = (ev.get("intervals") or {}).get("top1") if isinstance(ev.get("intervals"), dict) else None
    try:
        if isinstance(rec, dict) and rec.get("n"):
            return count_summary(rec.get("k"), rec.get("n"))
        clips, top1 = ev.get("clips"), summary.accuracy
        if top1 is not None and type(clips) is int and clips > 0:
            return count_summary(round(top1 * clips), clips)
    except ConfigError:  # a malformed record is shown without an interval, as before
        pass
    return None


def _per_clip_top1(ev: dict):
    """``(ids, top-1 outcomes)`` a recorded evaluation holds, or None when it holds none usable."""
    from .stats import decode_hits

    per = ev.get("per_clip") if isinstance(ev, dict) else None
    if not isinstance(per, dict):
        return None
    ids, text = per.get("ids"), per.get("top1")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not isinstance(text, str):
        return None
    try:
        hits = decode_hits(text)
    except ConfigError:
        return None
    return (ids, hits) if len(hits) == len(ids) and ids else None


def _no_per_clip(names: list[str]) -> str:
    return f"{NO_PER_CLIP} (none recorded for {' and '.join(names)})"


def _paired_columns(summary: EnergyReport, name: str, baseline: EnergyReport, baseline_name: str) -> dict:
    """The paired comparison of top-1 against the baseline: exact McNemar p-value and the paired
    bootstrap difference (this model minus the baseline), or a note saying why there is none."""
    from .stats import mcnemar_exact

    out = {
        "baseline": baseline_name,
        "paired": "",
        "paired_clips": None,
        "top1_diff": None,
        "diff_ci_low": None,
        "diff_ci_high": None,
        "p_value": None,
        "only_this_right": None,
        "only_baseline_right": None,
    }
    if summary is baseline:
        return out | {"paired": "baseline"}
    ev, base = summary.evaluation or {}, baseline.evaluation or {}
    if not ev or not base:
        return out | {"paired": _no_per_clip([n for n, e in ((name, ev), (baseline_name, base)) if not e])}
    for key in ("split", "data"):
        if ev.get(key) != base.get(key):
            return out | {"paired": f"{NOT_PAIRED} ({key} {ev.get(key)!r}, baseline {base.get(key)!r})"}
    mine, theirs = _per_clip_top1(ev), _per_clip_top1(base)
    if mine is None or theirs is None:
        return out | {"paired": _no_per_clip([n for n, o in ((name, mine), (baseline_name, theirs)) if o is None])}
    if mine[0] != theirs[0]:
        return out | {
            "paired": f"{NOT_PAIRED} ({len(mine[0])} vs {len(theirs[0])} clips, different ids)"
            if len(mine[0]) != len(theirs[0])
            else f"{NOT_PAIRED} (different clip ids)"
        }
    test = mcnemar_exact(mine[1], theirs[1])
    low, high = test["difference_ci"]
    return out | {
        "paired": f"paired on {test['n']} clips",
        "paired_clips": test["n"],
        "top1_diff": test["difference"],
        "diff_ci_low": low,
        "diff_ci_high": high,
        "p_value": test["p_value"],
        "only_this_right": test["a_only"],
        "only_baseline_right": test["b_only"],
    }


def comparison_row(summary: EnergyReport, name: str, baseline: tuple[str, EnergyReport] | None = None) -> dict:
    """The per-sample figures of one analysed checkpoint, for ``compare``.

    ``accuracy`` is the top-1 the card records, with its 95 % Wilson interval
    (``acc_ci_low``, ``acc_ci_high``) over ``eval_clips`` clips; all None when the
    card records no evaluation. With ``baseline`` (its name and analysed summary;
    pass the baseline's own row its own summary) the row adds the paired
    comparison of top-1 against it: when both were evaluated on the same clips
    (same split, same data, identical clip ids) the exact McNemar ``p_value`` and
    ``top1_diff`` (this model minus the baseline) with its paired-bootstrap
    interval; otherwise ``paired`` says why there is none. ``energy_by_part_j`` is the
    total energy per sample of each model part (``{part: joules}``, SPKLIP kinds; None
    for the zoo's).
    """
    c, e = summary.counts_per_sample, summary.energy_per_sample
    acc = _recorded_top1(summary)
    row = {
        "name": name,
        "kind": summary.checkpoint.kind,
        "accuracy": summary.accuracy,
        "acc_ci_low": acc["ci_low"] if acc else None,
        "acc_ci_high": acc["ci_high"] if acc else None,
        "eval_clips": acc["n"] if acc else None,
        "macs": c.macs,
        "sops": c.sops,
        "neuron_updates": c.neuron_updates,
        "mem_accesses": c.mem_accesses,
        "compute_j": summary.table6_per_sample.computational_energy_j,
        "memory_j": e.memory_j,
        "total_j": e.total_j,
        "memory_ratio": summary.energy.memory_ratio,
        "energy_per_sample_j": e.total_j,
        "measured_top1_on_profiled_samples": summary.measured_top1_on_profiled_samples,
    }
    row["energy_models"] = summary.energy_models
    parts = summary.parts
    row["energy_by_part_j"] = {p: v.total_j for p, v in parts.items()} if parts else None
    if baseline is not None:
        row |= _paired_columns(summary, name, baseline[1], baseline[0])
    return row
