"""The main job on the built-in data, as ``make demo`` runs it.

1. Generate the built-in spike-digits dataset (if missing) and a preview of one
   test clip per class.
2. Train the tiny SPKLIP (ANN) and its spiking variants ``fsve-hybrid`` and
   ``fsve-full`` on it (the spiking ones starting from the ANN's weights, ``train --init``, ``fsve-full``
   with the ANN as its teacher too, ``--teacher``; then the same recipe and epochs), evaluate each on the
   test split (zero-shot class
   accuracy, text-to-video retrieval) and write their energy reports.
3. Export the three to ONNX (visual and text encoders) and check them with
   onnxruntime against torch; convert the ANN's CNN to integrate-and-fire
   neurons with QCFS (a short fine-tuning with the quantized clip-floor-shift activation, learned
   thresholds, θ/2 start; Bu et al. 2022) at T = 1, 2, 4, 8, one more stage at a time too.
4. Profile all of them on the same test clips and compare them in the form of
   the paper's Table 6 / A.7.

With ``--no-train`` steps 2-3 are skipped and the zoo's untrained reference ANN
and SNNs are profiled instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from reports.writer import write_comparison, write_report
from spikedata.clips import ClipSelection, read_clip
from spikedata.digits import MOTIONS, DigitsConfig, generate_digits
from spikedata.manifest import load_manifest
from spikedata.preview import save_image_grid
from spikedata.reconstruct import tfp
from spikedata.summary import dataset_summary
from spklip.config import preset_config
from spklip.training import train, write_eval

from .analysis import analyse_checkpoint, comparison_row, price_fairly
from .checkpoint import save_checkpoint
from .progress import UnitShares
from .zoo import build_model, default_card

#: The reference models the demo compares, ANN first (ratios are to it).
DEMO_KINDS = ("test-ann-cnn", "test-sj-snn", "test-snntorch-snn")


def write_class_preview(data: Path, out_png: Path, half_window: int = 16) -> Path:
    """TFP of one test clip per class at eight times, as one PNG grid."""
    m = load_manifest(data)
    rows = []
    ts = None
    for motion in MOTIONS:
        rec = next(c for c in m.clips if c.label == motion and c.split == "test")
        s = read_clip(rec, 0, rec.frames, ClipSelection())
        r = half_window
        ts = np.linspace(r, rec.frames - r - 1, 8).round().astype(int)
        rows.append(np.stack([tfp(s[t - r : t + r + 1], r)[0] for t in ts]))
    return save_image_grid(
        np.stack(rows),
        list(MOTIONS),
        [f"t={t}" for t in ts],
        out_png,
        title=f"built-in spike digits: TFP (r={half_window}) of one test clip per class",
    )


#: The SPKLIP variants the demo trains, ANN first (ratios are to it): name -> config overrides.
#: ``fsve-full`` has the spiking front end; ``fsve-full-plain`` is the FSVE with the chain CNN that netx can
#: express and the ANN front end on the host (deployed to Lava: netx cannot hold the spiking front end).
DEMO_MODELS = {
    "spklip": {"model": "spklip"},
    "fsve-hybrid": {"model": "fsve-hybrid"},
    "fsve-full": {"model": "fsve-full"},
    "fsve-full-plain": {"model": "fsve-full", "fsve.cnn": "plain", "fsve.hsfe": "ann"},
}
#: Variants trained with the ANN as their teacher too (train --teacher; the benchmark's ``fsve-full-kd-repeat``).
DEMO_TEACHER = ("fsve-full",)


def _train_and_measure(
    model: str, data: Path, out: Path, seed: int, epochs: int | None, samples: int, step, init: Path | None = None
):
    """Train (unless already trained; from ``init`` when given), evaluate and profile one tiny variant
    (a name of :data:`DEMO_MODELS`); returns (checkpoint, eval, summary, per_layer)."""
    run = out / f"{model}-tiny"
    last = run / "last.pt"
    overrides = {**DEMO_MODELS[model], "train.seed": seed}
    if epochs is not None:  # a quick run: as many pre-training epochs as contrastive ones
        overrides.update({"train.epochs": epochs, "train.pretrain_epochs": min(epochs, 40)})
    cfg = preset_config("tiny", overrides)
    teacher = init if model in DEMO_TEACHER else None
    if last.is_file() and _stale(last, cfg, teacher):  # an earlier demo's run of another model: kept aside
        stale = run.with_name(run.name + ".stale")
        shutil.rmtree(stale, ignore_errors=True)
        run.rename(stale)
    if not last.is_file():
        bar = step(f"training tiny {model}")
        train(
            cfg,
            data,
            run,
            init=init,
            teacher=teacher,
            progress=(lambda p: bar(p["epoch"] - 1 + p["step"] / p["steps"], p["epochs"])) if bar else None,
        )
    ev = write_eval(last, data, split="test", out_png=run / "confusion.png")
    summary, per_layer = analyse_checkpoint(last, data=data, samples=samples, progress=step(f"profiling {model}"))
    return last, ev, summary, per_layer


def _stale(last: Path, cfg, teacher: Path | None) -> bool:
    """Whether a finished run was trained as another model than ``cfg``, or with(out) another teacher
    (a demo folder from an earlier version); an unreadable one is retrained too."""
    from spklip.io import trained_differently

    from .checkpoint import load_checkpoint
    from .errors import CheckpointError, ConfigError

    try:
        ck = load_checkpoint(last)
        return trained_differently(ck, cfg) is not None or ("teacher" in ck.card) != (teacher is not None)
    except (CheckpointError, ConfigError):
        return True


def default_jobs() -> int:
    """Work units the demo runs side by side: one per core, at most 2 (the units after the ANN)."""
    return max(1, min(2, os.cpu_count() or 1))


def run_demo(
    out: str | Path,
    seed: int = 0,
    samples: int = 16,
    train_spklip: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
    epochs: int | None = None,
    convert_timesteps: tuple[int, ...] = (1, 2, 4, 8),
    jobs: int | None = None,
) -> dict:
    """Run the demo into ``out``; returns what it wrote and measured (``summaries``: each model's
    :class:`~energy.record.EnergyReport`, which cross the worker processes pickled).

    With ``train_spklip`` (the default) it trains the tiny ANN SPKLIP and its two
    spiking variants (``epochs`` overrides the preset's), converts the ANN's CNN to
    IF neurons, and compares them all; without, it profiles the zoo's untrained
    reference models instead.

    ``jobs`` (default :func:`default_jobs`): once the ANN is trained, the units that start from it (each
    spiking variant's training, evaluation, profile and exports; the conversion) run in that many worker
    processes, one torch thread each (the tiny models' small operations use a second thread poorly, so
    two one-thread units finish sooner than one two-thread unit after another). With one job they run
    here one after another, on one thread as well, so the figures are the same whatever ``jobs`` is.
    """
    jobs = default_jobs() if jobs is None else jobs
    out = Path(out)
    data = out / "data"

    def step(name):
        return (lambda done, total: progress(name, done, total)) if progress else None

    if not (data / "manifest.jsonl").is_file():
        generate_digits(data, DigitsConfig(seed=seed), overwrite=True, progress=step("rendering clips"))
    preview = write_class_preview(data, out / "digits-preview.png")
    ckpt_dir = out / "checkpoints"
    rows, summaries, evals, checkpoints = [], {}, {}, []
    sweep = None
    exports: dict[str, dict] = {}
    deploy: dict = {}
    report_dir = None
    if train_spklip:
        per_layers = {}
        # the ANN first: every other unit starts from it
        ann, ev, summary, per_layer = _train_and_measure("spklip", data, out, seed, epochs, samples, step)
        summaries["spklip-tiny"], evals["spklip-tiny"], per_layers["spklip-tiny"] = summary, ev, per_layer
        exports["spklip-tiny"] = _export_onnx(ann, data, out / "export" / "spklip-tiny", progress)
        units = [("train", model) for model in DEMO_MODELS if model != "spklip"] + [("convert", "spklip")]
        common = {
            "data": data,
            "out": out,
            "seed": seed,
            "epochs": epochs,
            "samples": samples,
            "ann": ann,
            "timesteps": tuple(convert_timesteps),
        }
        done = _run_units(units, common, jobs, progress)
        for kind, model in units:
            res = done[(kind, model)]
            if kind == "train":
                name = f"{model}-tiny"
                summaries[name], evals[name], per_layers[name] = res["summary"], res["eval"], res["per_layer"]
                exports[name] = res["export"]
                deploy.update(res.get("deploy", {}))
            else:
                converted = res
        checkpoints = [str(ann)] + [done[("train", m)]["checkpoint"] for m in DEMO_MODELS if m != "spklip"]
        if "lava" in deploy:  # simulate the exported network on one clip (fixed-point reference)
            from export.simulate import run_simulation

            deploy["simulate"], _ = run_simulation(Path(deploy["lava"]["net"]), str(data))
        report_dir = out / "report-fsve-full-tiny"
        summaries[converted["name"]] = converted["summary"]
        evals[converted["name"]] = converted["eval"]
        per_layers[converted["name"]] = converted["per_layer"]
        checkpoints.append(converted["checkpoint"])
        # the ANN also priced at int8 and at the activation bits of every spiking model's T (docs/energy.md)
        price_fairly(list(summaries.values()), list(per_layers.values()))
        for name, summary in summaries.items():
            if name != converted["name"]:  # the converter wrote its own report
                write_report(out / f"report-{name}", summary, per_layers[name])
            rows.append(comparison_row(summary, name))
        sweep = converted["sweep"]
    else:
        for kind in DEMO_KINDS:
            card = default_card(kind, seed=seed)
            card["note"] = "untrained: weights as initialised by the seed"
            path = save_checkpoint(ckpt_dir / f"{kind}.pt", build_model(card), card)
            summary, per_layer = analyse_checkpoint(
                path, data=data, samples=samples, progress=step(f"profiling {kind}")
            )
            summaries[kind] = summary
            rows.append(comparison_row(summary, kind))
            checkpoints.append(str(path))
            if kind == "test-sj-snn":
                write_report(out / "report-test-sj-snn", summary, per_layer)
                report_dir = out / "report-test-sj-snn"
    cost = next(iter(summaries.values())).cost_model["name"]
    write_comparison(out / "compare", rows, cost, samples)
    return {
        "data": str(data),
        "preview": str(preview),
        "checkpoints": checkpoints,
        "report": str(report_dir),
        "evals": {name: {k: v for k, v in ev.items() if k != "confusion"} for name, ev in evals.items()},
        "comparison": str(out / "compare"),
        "convert_sweep": sweep,
        "exports": exports,
        "deploy": deploy,
        "rows": rows,
        "summaries": summaries,
        "dataset": dataset_summary(data),
    }


def _export_onnx(ckpt: Path, data: Path, out: Path, progress) -> dict:
    """Both encoders to ONNX, checked against torch with onnxruntime on 4 test clips."""
    from export import export_checkpoint

    step = (lambda done, total: progress(f"exporting {out.name} to ONNX", done, total)) if progress else None
    rec = export_checkpoint(ckpt, out, "onnx", overwrite=True, verify=True, data=data, samples=4, progress=step)
    v = rec["verify"]
    return {
        "folder": str(out),
        "ok": v["ok"],
        "visual_max_rel_error": v["visual"]["max_rel_error"],
        "text_max_rel_error": v["text"]["max_rel_error"],
    }


def _deploy_nir(full: Path, data: Path, out: Path, progress) -> dict:
    """The spiking CNN and front end to NIR, read back by snnTorch and spikingjelly."""
    from export import export_checkpoint

    step = (lambda done, total: progress("exporting fsve-full to NIR", done, total)) if progress else None
    nir = export_checkpoint(
        full, out / "fsve-full-tiny-nir", "nir", overwrite=True, verify=True, data=data, samples=2, progress=step
    )
    return {"nir": {"folder": nir["out"], "verify": nir.get("verify")}}


def _deploy_lava(plain: Path, data: Path, out: Path, progress) -> dict:
    """The chain FSVE to Lava netx, checked against the float model (``simulate`` runs after)."""
    from export import export_checkpoint

    step = (lambda done, total: progress("exporting fsve-full-plain to Lava netx", done, total)) if progress else None
    lava = export_checkpoint(
        plain,
        out / "fsve-full-plain-tiny-lava",
        "lava",
        overwrite=True,
        verify=True,
        data=data,
        samples=4,
        progress=step,
    )
    net = Path(lava["out"]) / lava["lava"]["file"]
    return {"lava": {"folder": lava["out"], "net": str(net), "verify": lava["verify"]}}


#: What each spiking variant's unit deploys besides ONNX.
DEPLOY = {"fsve-full": _deploy_nir, "fsve-full-plain": _deploy_lava}


def _unit(kind: str, model: str, common: dict, progress) -> dict:
    """One unit of work after the ANN: a spiking variant trained from it, evaluated, profiled and exported
    (``train``), or the ANN's conversion (``convert``)."""
    data, out = common["data"], common["out"]

    def step(name):
        return (lambda done, total: progress(name, done, total)) if progress else None

    if kind == "convert":
        return _convert_ann(
            common["ann"],
            data,
            out,
            common["timesteps"],
            common["samples"],
            progress,
            finetune_epochs=None if common["epochs"] is None else min(common["epochs"], 4),
        )
    last, ev, summary, per_layer = _train_and_measure(
        model, data, out, common["seed"], common["epochs"], common["samples"], step, init=common["ann"]
    )
    res = {
        "checkpoint": str(last),
        "eval": ev,
        "summary": summary,
        "per_layer": per_layer,
        "export": _export_onnx(last, data, out / "export" / f"{model}-tiny", progress),
    }
    if model in DEPLOY:
        res["deploy"] = DEPLOY[model](last, data, out / "export", progress)
    return res


def _unit_label(kind: str, model: str) -> str:
    return f"{kind} {model}" if kind == "train" else "QCFS conversion"


def _unit_worker(kind: str, model: str, common: dict, queue) -> dict:
    """A unit in a worker process: one torch thread, progress sent to the parent through ``queue``."""
    import torch

    torch.set_num_threads(1)
    label = _unit_label(kind, model)

    def progress(name: str, done: int, total: int) -> None:
        queue.put((label, name, done, total))

    try:
        return _unit(kind, model, common, progress)
    finally:
        queue.put((label, None, 1, 1))  # finished


def _run_units(units: list[tuple[str, str]], common: dict, jobs: int, progress) -> dict:
    """Every unit, ``jobs`` at a time in worker processes (in this process, one after another, for
    ``jobs`` = 1). Progress: one bar for the stage, each unit's share by its current phase's fraction."""
    if jobs <= 1:  # one thread too: the figures do not depend on --jobs (summation order follows threads)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return {(k, m): _unit(k, m, common, progress) for k, m in units}
        finally:
            torch.set_num_threads(threads)
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    queue = manager.Queue()
    labels = [_unit_label(k, m) for k, m in units]
    shares = UnitShares(labels)
    title = f"{len(units)} units after the ANN, {jobs} at a time: " + ", ".join(labels)

    def drain() -> None:
        while True:
            item = queue.get()
            if item is None:
                return
            shares.update(*item)
            if progress:
                progress(title, *shares.percent())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = {key: pool.submit(_unit_worker, *key, common, queue) for key in units}
            try:
                return {key: fut.result() for key, fut in futures.items()}
            except BaseException:
                for fut in futures.values():
                    fut.cancel()
                raise
    finally:
        queue.put(None)
        reader.join(timeout=5)
        manager.shutdown()


def _convert_ann(
    ann: Path,
    data: Path,
    out: Path,
    timesteps: tuple[int, ...],
    samples: int,
    progress,
    finetune_epochs: int | None = None,
) -> dict:
    """Convert the ANN's STAR-Net CNN to IF neurons with QCFS: accuracy and energy against T and stage by stage
    (table and plot, every default energy model), the checkpoint for the largest T, its evaluation and energy
    summary."""
    from convert.sweep import convert_checkpoint, sweep_table

    path = out / "checkpoints" / "spklip-converted-tiny.pt"
    sweep = convert_checkpoint(
        ann,
        "cnn",
        list(timesteps),
        path,
        calib=16,
        data=data,
        samples=samples,
        plot=out / "convert-sweep.png",
        progress=progress,
        method="qcfs",
        finetune_epochs=finetune_epochs,
        sweep_layers=True,
    )
    (out / "convert-sweep.md").write_text(sweep_table(sweep) + "\n", encoding="utf-8")
    ev = write_eval(path, data, split="test")
    step = (lambda done, total: progress("profiling converted", done, total)) if progress else None
    summary, per_layer = analyse_checkpoint(path, data=data, samples=samples, progress=step)
    name = f"spklip-converted-T{timesteps[-1]}"
    write_report(out / f"report-{name}", summary, per_layer)
    return {
        "name": name,
        "summary": summary,
        "per_layer": per_layer,
        "eval": ev,
        "checkpoint": str(path),
        "sweep": sweep,
    }


def demo_text(result: dict, seed: int, samples: int) -> str:
    """What ``spklip-energy demo`` prints of :func:`run_demo`'s result: the dataset, the accuracies with their
    intervals and seed, each energy report's Table 6, the exports, the conversion sweep and the comparison."""
    from export.formats import importer_brief
    from reports.render import comparison_frame, comparison_markdown, table6_text
    from spikedata.summary import summary_text

    from .stats import count_summary, fmt_ci

    out: list[str] = []
    out.append(summary_text(result["dataset"]))
    out.append(f"preview written to {result['preview']}\n")
    for name, ev in result.get("evals", {}).items():
        ci = {
            k: fmt_ci((ev.get("intervals") or {}).get(k) or count_summary(round(ev[k] * ev["clips"]), ev["clips"]))
            for k in ("top1", "top5", "R@1", "R@5")
        }
        out.append(
            f"{name} on the test split: zero-shot class top-1 {ci['top1']}, top-5 "
            f"{ci['top5']} (chance {100 * ev['chance_top1']:.1f} %); text-to-video R@1 "
            f"{ci['R@1']}, R@5 {ci['R@5']} (chance {100 * ev['chance_R@5']:.1f} %)"
        )
    if result.get("evals"):
        clips = sorted({ev["clips"] for ev in result["evals"].values()})
        out.append(
            f"[low, high]: 95 % Wilson intervals over the {'/'.join(map(str, clips))} test clips; training seed "
            f"{seed}\n"
        )
    for s in result["summaries"].values():
        out.append(table6_text(s) + "\n")
    for name, e in (result.get("exports") or {}).items():
        out.append(
            f"{name} exported to ONNX ({e['folder']}): onnxruntime vs torch, max relative error visual "
            f"{e['visual_max_rel_error']:.1e}, text {e['text_max_rel_error']:.1e} "
            f"({'within' if e['ok'] else 'OUTSIDE'} 1e-4)"
        )
    if result.get("exports"):
        out.append("")
    dep = result.get("deploy") or {}
    if dep:
        ver = dep["lava"]["verify"]
        out.append(
            f"fsve-full-plain-tiny exported to Lava netx ({dep['lava']['net']}): spike agreement with the float "
            f"model per layer " + ", ".join(f"{100 * p['spike_agreement']:.1f}%" for p in ver["per_layer"])
        )
        sim = dep["simulate"]
        t = sim["totals"]
        out.append(
            f"simulate (fixed-point CUBA-LIF reference): {sim['input']}; {t['spikes']} spikes, "
            f"{t['synaptic_events']} synaptic events, {t['neuron_updates']} neuron updates in "
            f"{sim['seconds']['simulation']} s; {sim['energy']['synaptic_j']:.2e} J at the loihi preset (UNVERIFIED)"
        )
        c = ver["counts"]
        out.append(
            f"hook counter on the same fixed-point network: {c['hook_counter']['sops']} SOPs, "
            f"{c['hook_counter']['neuron_updates']} neuron updates ({'equal to' if c['agree'] else 'DIFFERENT from'} "
            f"the simulator's, {ver['blocks']} blocks)"
        )
        nv = dep["nir"]["verify"]
        out.append(
            f"fsve-full-tiny exported to NIR ({dep['nir']['folder']}): read back by snnTorch and spikingjelly, "
            + ", ".join(
                f"{name} {100 * nv[name]['spike_agreement']:.2f}% identical spikes"
                if "reason" not in nv[name]
                else f"{name} FAILED"
                for name in ("snntorch", "spikingjelly")
            )
            + f" of {nv['snntorch'].get('spikes_compared', 0)}"
            + ("" if "front_end" in nv else "\n")
        )
        if "front_end" in nv:
            parts = {k: v for k, v in nv["front_end"].items() if k != "ok"}
            out.append(
                f"  and its spiking front end as {len(parts)} NIR chain parts: "
                + "; ".join(
                    f"{v['file']} {', '.join(f'{n} {importer_brief(v[n])}' for n in ('snntorch', 'spikingjelly'))}"
                    for v in parts.values()
                )
                + "\n"
            )
    if result.get("convert_sweep"):
        from convert.sweep import sweep_table

        out.append(
            "ANN -> SNN conversion of the tiny SPKLIP's CNN (QCFS: fine-tuned with the quantized activation, "
            "learned thresholds, θ/2 start), accuracy and energy against T and stage by stage:"
        )
        out.append(sweep_table(result["convert_sweep"]) + "\n")
    cost = next(iter(result["summaries"].values())).cost_model["name"]
    out.append(comparison_markdown(comparison_frame(result["rows"]), cost, samples))
    out.append(f"energy report: {result['report']}/report.html; comparison: {result['comparison']}/comparison.md")
    return "\n".join(out)
