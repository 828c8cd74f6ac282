"""The ``spklip-energy`` command line.

Each verb parses its arguments, builds a config, calls one library function and
renders the result (text, or one JSON object with ``--json``). Errors a user can
cause arrive as :class:`~spklip_energy.errors.SpklipError` and become one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from export.formats import FORMATS
from spikedata.digits import DIGITS_PRESETS
from spikedata.preview import MAX_COLUMNS
from spikedata.summary import dataset_summary, summary_text

from . import __version__
from . import options as opt
from .errors import ConfigError, LostRankError, SpklipError

EXIT_USER_ERROR = 2
#: default parent of report folders: outside the project's source packages (``reports/`` is one)
DEFAULT_REPORTS = Path("runs") / "reports"


# --------------------------------------------------------------------------- helpers


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str))
    else:
        print(text)


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _add_nproc(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--nproc", type=opt.positive_int, metavar="N", help=what)


def _add_geometry(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--height", type=opt.positive_int, required=required, help="frame rows as stored in the file")
    p.add_argument(
        "--width",
        type=opt.positive_int,
        required=required,
        help="frame columns as stored in the file (416 for sps10, including the head strip)",
    )
    p.add_argument(
        "--head-columns",
        type=opt.nonneg_int,
        default=0,
        help="drop this many right-most columns (16 for real sps10 files; default 0)",
    )
    p.add_argument(
        "--flipud",
        action="store_true",
        help="flip rows on reading (SpikeCV's reader does; SPKLIP's does not)",
    )


def _fmt_stats(stats: dict) -> str:
    return (
        f"frames {stats['frames']}, {stats['height']}x{stats['width']} pixels, "
        f"firing rate {stats['firing_rate']:.4f} spikes/pixel/frame, "
        f"mean {stats['mean_spikes_per_pixel']:.2f} spikes per pixel"
    )


# --------------------------------------------------------------------------- data verbs


def cmd_data_show(args: argparse.Namespace) -> int:
    from spikedata.dat import read_dat
    from spikedata.preview import save_preview, stream_stats

    from .atomic import check_file_target

    if args.out:
        check_file_target(args.out, ".png")  # before the work, not after it

    spikes = read_dat(
        args.file,
        args.height,
        args.width,
        flipud=args.flipud,
        start=args.start,
        count=args.count,
        head_columns=args.head_columns,
    )
    stats = stream_stats(spikes, fps=args.fps)
    stats["file"] = str(args.file)
    if args.out:
        save_preview(spikes, args.out, title=Path(args.file).name, columns=args.columns)
        stats["preview"] = str(args.out)
    text = f"{args.file}: {_fmt_stats(stats)}"
    if args.out:
        text += f"\npreview written to {args.out}"
    _emit(args, stats, text)
    return 0


def cmd_data_simulate(args: argparse.Namespace) -> int:
    from spikedata.camera import CameraConfig, load_frames, simulate_spikes, upsample_linear
    from spikedata.dat import write_dat
    from spikedata.preview import save_preview, stream_stats

    from .atomic import check_file_target

    check_file_target(args.output, ".dat")  # never over the input or another kind of file
    if args.preview:
        check_file_target(args.preview, ".png")

    cfg = CameraConfig(
        theta=args.theta,
        alpha=args.alpha,
        random_init=args.random_init,
        photons_per_step=args.photons,
        dark_current=args.dark_current,
        hot_pixel_fraction=args.hot_pixels,
        row_artifact_fraction=args.row_artifacts,
    )
    frames = load_frames(args.input, max_frames=args.max_frames)
    n_in = frames.shape[0]
    frames = upsample_linear(frames, args.upsample)
    spikes = simulate_spikes(frames, cfg, seed=args.seed)
    write_dat(args.output, spikes, flipud=args.flipud)
    stats = stream_stats(spikes)
    stats.update(
        input=str(args.input), output=str(args.output), input_frames=n_in, upsample=args.upsample, camera=cfg.to_dict()
    )
    text = f"{args.input}: {n_in} frames -> {args.output}: {_fmt_stats(stats)}"
    if args.preview:
        save_preview(spikes, args.preview, title=Path(args.output).name)
        stats["preview"] = str(args.preview)
        text += f"\npreview written to {args.preview}"
    _emit(args, stats, text)
    return 0


def cmd_data_make_digits(args: argparse.Namespace) -> int:
    from spikedata.digits import digits_preset, generate_digits

    from .progress import progress_callback

    cfg = digits_preset(
        args.preset,
        clips_per_class=args.clips_per_class,
        height=args.height,
        width=args.width,
        frames=args.frames,
        seed=args.seed,
        variant=args.variant,
    )
    update, close = progress_callback("rendering clips", enabled=not args.json)
    try:
        out = generate_digits(args.out, cfg, overwrite=args.overwrite, progress=update)
    finally:
        close()
    summary = dataset_summary(out)
    _emit(args, summary, f"wrote {summary['clips']} clips to {out}\n" + summary_text(summary))
    return 0


def cmd_data_inspect(args: argparse.Namespace) -> int:
    summary = dataset_summary(Path(args.dataset), max_clips=args.max_clips)
    _emit(args, summary, summary_text(summary))
    return 0


def cmd_data_index(args: argparse.Namespace) -> int:
    from spikedata.manifest import index_folder

    from .atomic import atomic_path, check_file_target
    from .errors import ConfigError

    records = index_folder(args.root, args.height, args.width, head_columns=args.head_columns, flipud=args.flipud)
    out = check_file_target(Path(args.out) if args.out else Path(args.root) / "manifest.jsonl", ".jsonl")
    if out.exists() and not args.overwrite:
        raise ConfigError(
            f"{out}: a manifest already exists (it may hold captions and splits an index cannot "
            "recreate); pass --overwrite to replace it, or --out another file"
        )
    with atomic_path(out) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    classes = sorted({r["label"] for r in records})
    _emit(
        args,
        {"manifest": str(out), "clips": len(records), "classes": classes},
        f"indexed {len(records)} clips in {len(classes)} classes -> {out}",
    )
    return 0


# --------------------------------------------------------------------------- model verbs


def _mean(values) -> float:
    values = list(values)
    return sum(values) / max(len(values), 1)


def _without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            out.append(a)
    return out


def _launch_processes(args: argparse.Namespace) -> int:
    """``--nproc N``: the same command as N torchrun processes on this machine (gloo on CPU, nccl on CUDA)."""
    from .distributed import launch, launched_by_torchrun

    if launched_by_torchrun():
        raise ConfigError("--nproc: this process already runs under torchrun; drop --nproc")
    res = launch(args.nproc, "spklip_energy", _without_option(args.argv, "--nproc"))
    if res["failed"]:
        first = res["first"]
        print(
            f"spklip-energy: error: {args.verb} on {res['processes']} processes failed: rank {first} "
            f"{res['failed'][first]} first, and the launcher stopped the others; the lines above say why"
            + (
                "; the checkpoint of the last finished epoch is kept and --resume continues from it"
                if args.verb == "train"
                else ""
            ),
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from spklip.config import preset_config
    from spklip.training import train

    from .distributed import joined, local_device
    from .options import pick_device

    if args.nproc is not None:
        return _launch_processes(args)
    given = {
        **({"model": args.model} if args.model else {}),
        **_parse_sets(args.set),
        **({"train.seed": args.seed} if args.seed is not None else {}),
    }
    device = pick_device(args.device)
    with joined(device, "training") as world:
        if args.resume and args.preset is None:
            cfg, overrides = None, given  # the run's own config; what the user gave must equal the run's
        else:
            cfg, overrides = preset_config(args.preset or "tiny", {"model": "spklip", **given}), None
        data = args.data if args.data is not None or args.resume else "builtin"
        bar = None
        if not args.json and sys.stderr.isatty() and world.main:
            from tqdm import tqdm

            bar = tqdm(file=sys.stderr, unit="batch", leave=False)

        def progress(p: dict) -> None:
            if bar is not None:
                bar.total = p["steps"]
                bar.n = p["step"]
                bar.set_description(
                    f"{'pre-training ' if p.get('stage') == 'pretrain' else ''}epoch {p['epoch']}/{p['epochs']}"
                )
                bar.set_postfix(loss=f"{p['loss']:.3f}", clips_s=f"{p['clips_per_s']:.1f}")

        try:
            result = train(
                cfg,
                data,
                args.out,
                epochs=args.epochs,
                resume=args.resume,
                device=str(local_device(world, device)),
                progress=progress,
                init=args.init,
                overrides=overrides,
                teacher=args.teacher,
                world=world,
                precision=args.precision,
            )
        finally:
            if bar is not None:
                bar.close()
    if not world.main:
        return 0
    last = result.history[-1] if result.history else {}
    payload = {
        "checkpoint": str(result.checkpoint),
        "run_dir": str(result.run_dir),
        "history": result.history,
        "resumed_from_epoch": result.resumed_from_epoch,
    }
    lines = [
        f"epoch {h['epoch']}: loss {h['train_loss']:.3f}, val top-1 {100 * h['val_top1']:.1f} %, "
        f"top-5 {100 * h['val_top5']:.1f} %, R@5 {100 * h['val_R@5']:.1f} % ({h['seconds']:.1f} s)"
        + (f", mean firing rate {_mean(h['firing_rates'].values()):.3f}" if h.get("firing_rates") else "")
        for h in result.history[result.resumed_from_epoch :]
    ]
    if last.get("processes"):
        lines.append(
            f"{last['processes']} processes ({world.backend}): {last['train_clips_per_s']:.1f} training "
            f"clips/s, {last['train_clips_per_s_per_process']:.1f} per process (last epoch)"
        )
    if last.get("lif_kernel"):
        lines.append(last["lif_kernel"])
    lines.append(f"checkpoint: {result.checkpoint}; metrics: {result.run_dir}/metrics.jsonl, curves.png")
    if last:
        lines.append("val accuracy is zero-shot: clips matched against the class-prompt text embeddings")
    _emit(args, payload, "\n".join(lines))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from spklip.training import write_eval

    from .atomic import check_file_target
    from .distributed import joined, local_device
    from .options import pick_device
    from .stats import describe_ci, fmt_ci

    if args.nproc is not None:
        return _launch_processes(args)
    png = check_file_target(args.out_png or Path(args.checkpoint).with_suffix(".confusion.png"), ".png")
    device = pick_device(args.device)
    with joined(device, "evaluation") as world:
        res = write_eval(
            args.checkpoint,
            args.data,
            split=args.split,
            device=str(local_device(world, device)),
            out_png=png,
            world=world,
            precision=args.precision,
        )
    if not world.main:
        return 0
    res = {k: v for k, v in res.items() if k != "confusion"} | {"confusion_png": str(png)}
    ci = {k: fmt_ci(v) for k, v in res["intervals"].items()}
    text = (
        f"{args.checkpoint} on {res['data']} ({res['split']}, {res['clips']} clips):\n"
        f"  class accuracy (zero-shot, clips matched against class-prompt text embeddings): "
        f"top-1 {ci['top1']}, top-5 {ci['top5']} (chance {100 * res['chance_top1']:.1f} %)\n"
        f"  text-to-video retrieval (each clip's caption as query): R@1 {ci['R@1']}, "
        f"R@5 {ci['R@5']}, R@10 {ci['R@10']} (chance R@5 {100 * res['chance_R@5']:.1f} %)\n"
        f"  [low, high]: {describe_ci(res['intervals']['top1'])}\n"
        f"  results and per-clip outcomes written into the checkpoint; confusion matrix: {png}"
    )
    _emit(args, res, text)
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from reports.plots import shots_png
    from spklip.training import adapt

    from .atomic import check_output_dir, replace_output_dir

    files = frozenset({"few_shot.json", "few_shot.png"})
    out = check_output_dir(args.out, files)  # before the work, not after it
    res = adapt(
        args.checkpoint, args.data, args.shots, epochs=args.epochs, lr=args.lr, seed=args.seed, device=args.device
    )
    png = shots_png(res["results"], f"few-shot adaptation on {args.data}")
    with replace_output_dir(out, "adapt", files) as tmp:
        (tmp / "few_shot.json").write_text(json.dumps(res, indent=2) + "\n")
        (tmp / "few_shot.png").write_bytes(png)
    lines = [f"trained modules: {', '.join(res['trainable_modules'])} (everything else frozen)"]
    lines += [
        f"  {r['shots']} shots/class: top-1 {100 * r['top1_before']:.1f} % -> {100 * r['top1_after']:.1f} % "
        f"({r['test_clips']} test clips)"
        for r in res["results"]
    ]
    lines.append(f"written to {out}/few_shot.json and few_shot.png")
    _emit(args, res, "\n".join(lines))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from convert.sweep import convert_checkpoint, sweep_table

    from .atomic import check_file_target
    from .progress import phased_progress

    if args.plot:
        check_file_target(args.plot, ".png")  # before the work, not after it
    update, close = phased_progress(enabled=not args.json)
    try:
        res = convert_checkpoint(
            args.checkpoint,
            args.layers,
            args.timesteps,
            args.out,
            calib=args.calib,
            method=args.method,
            percentile=args.percentile,
            data=args.data,
            keep=args.keep,
            samples=args.samples,
            batch_size=args.batch_size,
            plot=args.plot,
            device=args.device,
            progress=update,
            levels=args.levels,
            finetune_epochs=args.finetune_epochs,
            finetune_lr=args.finetune_lr,
            v_init=args.v_init,
            bias_calib=args.bias_calib,
            sweep_layers=args.sweep_layers,
            models=args.models,
            seed=args.seed,
        )
    finally:
        close()
    spec = res["conversion"]
    text = (
        f"{res['source']}: converted {'+'.join(spec['layers'])} to {spec['neuron']} neurons (rate coding, "
        + (
            f"QCFS L={spec['qcfs']['levels']}, fine-tuned {spec['qcfs']['finetune'].get('epochs', 0)} epochs, learned "
            "thresholds"
            if spec["method"] == "qcfs"
            else f"{spec['method']} threshold balancing"
        )
        + f" on {res['calib_clips']} train clips"
        + (", bias currents calibrated per T" if spec.get("bias_calibration") else "")
        + ")\n"
        + sweep_table(res)
        + f"\nconverted checkpoint (T={res['kept_timesteps']}): {res['checkpoint']}; plot: {res['plot']}"
    )
    _emit(args, res, text)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from export import export_checkpoint
    from export.formats import export_lines, verification_failure

    res = export_checkpoint(
        args.checkpoint,
        args.out,
        args.format,
        opset=args.opset,
        overwrite=args.overwrite,
        verify=args.verify,
        data=args.data,
        samples=args.samples,
    )
    _emit(args, res, "\n".join(export_lines(res)))
    failure = verification_failure(res)
    if failure:
        print(f"spklip-energy: verification failed: {failure}", file=sys.stderr)
        return 1
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from export.simulate import run_simulation

    res, _ = run_simulation(args.network, args.data, args.steps, engine=args.engine)
    lines = [
        f"{res['network']}: {res['engine']}",
        f"input: {res['input']}",
        f"{'layer':>5} {'type':<7} {'shape':<14} {'spikes':>9} {'syn. events':>12} {'neuron upd.':>12}",
    ]
    for lay in res["layers"]:
        lines.append(
            f"{lay['index']:>5} {lay['type']:<7} {'x'.join(map(str, lay['shape'])):<14} {lay['spikes']:>9} "
            f"{lay['synaptic_events']:>12} {lay['neuron_updates']:>12}"
        )
    t, e = res["totals"], res["energy"]
    lines.append(
        f"total: {t['spikes']} spikes, {t['synaptic_events']} synaptic events, {t['neuron_updates']} neuron "
        f"updates; output spikes per sample {res['output']['spikes_per_sample']}"
    )
    lines.append(
        f"energy (preset loihi, {e['per_synaptic_event_pj']} pJ per synaptic event): {e['synaptic_j']:.3e} J "
        f"-- {e['flags'][0]}"
    )
    lines.append(f"time: host {res['seconds']['host']} s, simulation {res['seconds']['simulation']} s")
    if "lava" in res:
        lv = res["lava"]
        lines.append(
            f"Lava fixed_pt simulator ({lv['seconds']} s): "
            + (
                "spikes bit-exact with the reference in every layer"
                if lv["bit_exact"]
                else "DIFFERS from the reference: "
                + ", ".join(f"layer {x['index']} {x['mismatches']} spikes" for x in lv["layers"] if x["mismatches"])
            )
        )
    lines += [f"warning: {w}" for w in res["warnings"]]
    _emit(args, res, "\n".join(lines))
    return 0


# --------------------------------------------------------------------------- energy verbs


def _cost_arg(args: argparse.Namespace):
    return args.costs if getattr(args, "costs", None) else args.preset


def _model_args(args: argparse.Namespace) -> dict:
    return {"models": args.models, "model_file": args.model_file, "weight_bits": args.weight_bits}


def _report_out(args: argparse.Namespace) -> Path:
    ck = Path(args.checkpoint)
    default = f"{ck.parent.name}-{ck.stem}" if ck.suffix == ".net" and ck.parent.name else ck.stem
    return args.out or DEFAULT_REPORTS / default


def cmd_report(args: argparse.Namespace) -> int:
    from reports import table6_text, write_report
    from reports.writer import REPORT_FILES, summary_json

    from .analysis import analyse_checkpoint, analyse_netx
    from .atomic import check_output_dir
    from .progress import progress_callback

    if args.nproc is not None:
        return _launch_processes(args)
    out = check_output_dir(_report_out(args), REPORT_FILES)  # before the work, not after it
    if Path(args.checkpoint).suffix == ".net":  # a netx network: its torch twin on the simulate input
        summary, per_layer = analyse_netx(
            args.checkpoint,
            data=args.data,
            cost=_cost_arg(args),
            reuse=args.reuse,
            models=args.models,
            model_file=args.model_file,
        )
    else:
        import torch

        from .distributed import joined

        with joined(torch.device("cpu"), "profiling") as world:
            update, close = progress_callback("profiling", enabled=not args.json and world.main)
            try:
                summary, per_layer = analyse_checkpoint(
                    args.checkpoint,
                    data=args.data,
                    samples=args.samples,
                    cost=_cost_arg(args),
                    reuse=args.reuse,
                    batch_size=args.batch_size,
                    progress=update,
                    **_model_args(args),
                    steps=args.snn_steps,
                    world=world,
                )
            finally:
                close()
        if not world.main:
            return 0
    write_report(out, summary, per_layer)
    if args.json:  # the record itself, as summary.json holds it
        print(summary_json(summary), end="")
    else:
        print(table6_text(summary))
        print(f"report written to {out}/ (report.md, report.html, per_layer.csv, summary.json, plots)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reports.render import comparison_frame, comparison_markdown
    from reports.writer import COMPARISON_FILES, write_comparison

    from .analysis import analyse_checkpoint, comparison_row, price_fairly
    from .atomic import check_output_dir
    from .progress import progress_callback

    check_output_dir(args.out, COMPARISON_FILES)  # before the work, not after it
    summaries = []
    names = [Path(c).stem for c in args.checkpoints]
    if len(set(names)) < len(names):
        names = [str(c) for c in args.checkpoints]
    base = _baseline_index(args.baseline, names, args.checkpoints)  # before the work, not after it
    per_layers = []
    for ckpt, name in zip(args.checkpoints, names, strict=True):
        update, close = progress_callback(f"profiling {name}", enabled=not args.json)
        try:
            summary, per_layer = analyse_checkpoint(
                ckpt,
                data=args.data,
                samples=args.samples,
                cost=_cost_arg(args),
                reuse=args.reuse,
                batch_size=args.batch_size,
                progress=update,
                **_model_args(args),
            )
        finally:
            close()
        summaries.append(summary)
        per_layers.append(per_layer)
    price_fairly(summaries, per_layers, **_model_args(args))
    paired = (names[base], summaries[base]) if len(summaries) > 1 else None
    rows = [comparison_row(s, name, paired) for s, name in zip(summaries, names, strict=True)]
    cost_name = summary.cost_model["name"]
    paths = write_comparison(args.out, rows, cost_name, summary.data.samples, base)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": rows,
                    "cost_model": cost_name,
                    "baseline": names[base],
                    "files": {k: str(v) for k, v in paths.items()},
                }
            )
        )
    else:
        print(comparison_markdown(comparison_frame(rows, base), cost_name, summary.data.samples))
        print(f"comparison written to {args.out}/")
    return 0


def _baseline_index(value: str | None, names: list[str], paths: list) -> int:
    """Which checkpoint ``--baseline`` names: its name in the table, its path as given, or its position
    counted from 1 (default: the first)."""
    from .errors import ConfigError

    if value is None:
        return 0
    for i, (name, path) in enumerate(zip(names, paths, strict=True)):
        if value in (name, str(path)):
            return i
    if value.strip().isdigit() and 1 <= int(value) <= len(names):
        return int(value) - 1
    raise ConfigError(
        f"--baseline {value!r} is none of the checkpoints: give a name ({', '.join(names)}) "
        f"or a position from 1 to {len(names)}"
    )


def cmd_benchmark(args: argparse.Namespace) -> int:
    from reports.render import benchmark_markdown, convert_sweep_markdown
    from reports.writer import BENCHMARK_FILES, write_benchmark

    from .atomic import check_output_dir
    from .benchmark import BenchmarkPlan, run_benchmark, work_dir

    plan = BenchmarkPlan(
        seeds=args.seeds,
        preset=args.preset,
        data=args.data,
        arms=tuple(args.arms.split(",")),
        work=work_dir(args.work, args.data, args.preset),
        threads=args.threads,
        energy_clips=args.energy_clips,
        cost=args.cost,
        device=args.device,
        convert_timesteps=tuple(args.convert_timesteps),
        qcfs_timesteps=tuple(args.qcfs_timesteps),
        overrides=_parse_sets(args.set),
        jobs=args.jobs,
    )
    out = check_output_dir(args.out, BENCHMARK_FILES)  # before the work, not after it

    def log(line: str) -> None:
        if not args.json:
            print(line, file=sys.stderr, flush=True)

    result = run_benchmark(plan, log=log)
    paths = write_benchmark(out, result)
    if args.json:
        print(paths["benchmark.json"].read_text(), end="")
    else:
        print(benchmark_markdown(result))
        sweep = convert_sweep_markdown(result)
        if sweep:
            print(sweep)
        print(
            f"this call: {result['wall_s_this_call'] / 60:.1f} min, {plan.threads} torch thread(s); "
            f"written to {out}/ (benchmark.md, benchmark.json, benchmark.csv, accuracy_vs_energy.png)"
        )
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from .zoo import MODEL_KINDS

    rows = [
        {"kind": k, "spiking": s.spiking, "description": s.description, "config": s.default_config}
        for k, s in sorted(MODEL_KINDS.items())
    ]
    text = "\n".join(f"{r['kind']:<22} {'SNN' if r['spiking'] else 'ANN'}  {r['description']}" for r in rows)
    _emit(args, {"kinds": rows}, text)
    return 0


def _parse_sets(pairs: list[str]) -> dict:
    from .errors import ConfigError

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_zoo_init(args: argparse.Namespace) -> int:
    from .checkpoint import save_checkpoint
    from .zoo import build_model, default_card

    card = default_card(args.kind, **_parse_sets(args.set))
    card["note"] = "untrained: weights as initialised by the seed"
    model = build_model(card)
    path = save_checkpoint(args.out, model, card)
    _emit(args, {"checkpoint": str(path), "card": card}, f"wrote {args.kind} checkpoint to {path}")
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_text, run_demo
    from .progress import phased_progress

    update, close = phased_progress(enabled=not args.json)
    try:
        result = run_demo(
            args.out,
            seed=args.seed,
            samples=args.samples,
            train_spklip=not args.no_train,
            progress=update,
            epochs=args.epochs,
            jobs=args.jobs,
        )
    finally:
        close()
    if args.json:  # the energy reports as their summary.json documents
        records = {name: s.to_json() for name, s in result["summaries"].items()}
        print(json.dumps({**result, "summaries": records}, default=str))
        return 0
    print(demo_text(result, args.seed, args.samples))
    return 0


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr, like every other user error.

    Numbers and paths are never parsed with bare ``int``/``float``/``Path``: every such
    option takes a validator from :mod:`spklip_energy.options` (positive, finite, in
    range, non-empty), so a new option cannot forget its check.
    """

    def add_argument(self, *names, **kwargs):
        if kwargs.get("type") in (int, float, Path):
            raise TypeError(f"{names}: use a validator from spklip_energy.options, not bare {kwargs['type'].__name__}")
        return super().add_argument(*names, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"spklip-energy: error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spklip-energy",
        description=(
            "Neuromorphic deployment and energy analysis for spike-camera video-language "
            "models (SPKLIP and its full-spiking encoder FSVE)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--max-memory",
        type=opt.arg(_check_size),
        metavar="SIZE",
        help="the most memory one operation may ask for, e.g. 64GiB (default: $SPKLIP_MAX_MEMORY, "
        "else half of this machine's memory); larger requests are refused before allocating",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    # data ...
    data = verbs.add_parser(
        "data",
        help="spike streams: simulate, view, generate and index datasets",
        description="Spike-camera data tools: the .dat codec, the camera simulator, "
        "reconstructions and the built-in spike-digits dataset.",
    )
    dverbs = data.add_subparsers(dest="data_verb", metavar="DATA_VERB", required=True)

    p = dverbs.add_parser(
        "show",
        help="reconstruct and preview a .dat spike stream",
        description="Decode a SpikeCV .dat file, print frames, firing rate and mean spikes per "
        "pixel, and optionally write a PNG grid of raw spike frames and TFP/TFI reconstructions.",
    )
    p.add_argument("file", type=opt.path, help="the .dat spike stream")
    _add_geometry(p)
    p.add_argument("--out", type=opt.path, help="write the preview grid to this PNG")
    p.add_argument("--start", type=opt.nonneg_int, default=0, help="first frame to read (default 0)")
    p.add_argument("--count", type=opt.positive_int, help="frames to read (default: to the end)")
    p.add_argument(
        "--columns",
        type=opt.arg(opt.check_positive_int, maximum=MAX_COLUMNS),
        default=8,
        help="time points in the preview (1..100, default 8)",
    )
    p.add_argument("--fps", type=opt.positive_float, help="read-out rate in Hz, to also report the firing rate in Hz")
    _add_json(p)
    p.set_defaults(func=cmd_data_show)

    p = dverbs.add_parser(
        "simulate",
        help="turn frames (array, image folder or video) into a spike stream",
        description="Run the integrate-and-fire spike-camera simulator (paper Eq. 1, A.8.2): each "
        "pixel accumulates alpha*I per step and fires when the charge reaches theta, then subtracts "
        "theta. Input: a .npy array [T,H,W] in [0,1] (or integer), a folder of images, or a video "
        "file. Up-sampling is linear interpolation (the paper's learned interpolator is not public).",
    )
    p.add_argument("input", type=opt.path, help=".npy/.npz array, image folder or video file")
    p.add_argument("output", type=opt.path, help="the .dat file to write")
    p.add_argument("--theta", type=opt.positive_float, default=5.0, help="firing threshold (default 5.0, paper A.8.2)")
    p.add_argument("--alpha", type=opt.positive_float, default=1.0, help="photoelectric conversion rate (default 1)")
    p.add_argument(
        "--upsample",
        type=opt.positive_int,
        default=1,
        help="insert N-1 linearly interpolated frames between inputs (default 1: none)",
    )
    p.add_argument("--random-init", action="store_true", help="start integrators uniform in [0, theta)")
    p.add_argument("--photons", type=opt.positive_float, help="photon shot noise: photons per unit intensity per step")
    p.add_argument("--dark-current", type=opt.nonneg_float, default=0.0, help="charge added per pixel per step")
    p.add_argument("--hot-pixels", type=opt.fraction, default=0.0, help="fraction of hot pixels (default 0)")
    p.add_argument(
        "--row-artifacts", type=opt.fraction, default=0.0, help="fraction of rows with line artefacts (default 0)"
    )
    p.add_argument("--max-frames", type=opt.positive_int, help="use at most this many input frames")
    p.add_argument("--flipud", action="store_true", help="write rows flipped, as SpikeCV's writer does")
    p.add_argument("--seed", type=opt.seed, default=0, help="random seed (default 0)")
    p.add_argument("--preview", type=opt.path, help="also write a preview PNG of the result")
    _add_json(p)
    p.set_defaults(func=cmd_data_simulate)

    p = dverbs.add_parser(
        "make-digits",
        help="generate the built-in spike-digits video-text dataset",
        description="Render moving handwritten digits (scikit-learn's bundled set) over textured "
        "backgrounds, record them with the spike-camera simulator and write a class-per-folder "
        ".dat dataset with manifest.jsonl (captions from digit, motion, speed and position). "
        "Train/val/test use disjoint handwriting samples. Presets: 'quick' (the default and "
        "--data builtin: 8 motion classes, 32 clips per class, 40 test clips) and 'bench' (--data "
        "builtin-bench, for comparisons: 16 motion x speed classes, lower contrast, 480 / 96 / 800 "
        "train / val / test clips; docs/benchmark.md).",
    )
    p.add_argument("out", type=opt.path, help="output folder (must not exist or be empty)")
    p.add_argument(
        "--preset", choices=tuple(DIGITS_PRESETS), default="quick", help="dataset design (default quick; see above)"
    )
    p.add_argument(
        "--variant",
        choices=("sim", "sensor"),
        default="sim",
        help="'sensor' adds a sim-to-real domain shift (default sim)",
    )
    p.add_argument(
        "--clips-per-class",
        type=opt.positive_int,
        help="clips per class, split 70/15/15 (default: the preset's; quick 32, bench 30/6/50)",
    )
    p.add_argument("--height", type=opt.positive_int, help="frame rows (default 64)")
    p.add_argument("--width", type=opt.positive_int, help="frame columns (default 64)")
    p.add_argument("--frames", type=opt.positive_int, help="frames per clip (default 250)")
    p.add_argument("--seed", type=opt.seed, default=0, help="random seed (default 0)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing dataset that make-digits wrote (a folder holding anything else is "
        "refused, never deleted)",
    )
    _add_json(p)
    p.set_defaults(func=cmd_data_make_digits)

    p = dverbs.add_parser(
        "inspect",
        help="summarise a dataset folder (classes, splits, firing rate)",
        description="Load a dataset through its manifest, check every clip file, and print "
        "classes, clips per split and the measured firing rate.",
    )
    p.add_argument("dataset", type=opt.path, help="dataset folder or manifest file")
    p.add_argument("--max-clips", type=opt.positive_int, help="measure firing rate on at most this many clips")
    _add_json(p)
    p.set_defaults(func=cmd_data_inspect)

    p = dverbs.add_parser(
        "index",
        help="write a manifest for a folder-per-class .dat dataset (HMDB51-S style)",
        description="Index ROOT/<class>/<clip>.dat (or ROOT/<class>/<clip>/*.dat, SPKLIP's layout) "
        "into a manifest.jsonl; captions are the class names.",
    )
    p.add_argument("root", type=opt.path, help="dataset folder")
    _add_geometry(p)
    p.add_argument("--out", type=opt.path, help="manifest path (default ROOT/manifest.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing manifest")
    _add_json(p)
    p.set_defaults(func=cmd_data_index)

    # train / eval / adapt
    p = verbs.add_parser(
        "train",
        help="train the ANN SPKLIP on spike clips and captions",
        description="Train SPKLIP (HSFE + STAR-Net visual encoder, text tower, symmetric contrastive loss) "
        "with AdamW. Each epoch: validation (zero-shot class accuracy against class prompts, text-to-video "
        "recall), metrics appended to RUN/metrics.jsonl and plotted to RUN/curves.png, and an atomic "
        "checkpoint RUN/last.pt (weights, tokenizer, full config, optimizer state). Presets: reference "
        "(the authors' public code), paper (the paper's values), small and tiny (2-core CPU).",
    )
    p.add_argument(
        "--model",
        choices=("spklip", "fsve-hybrid", "fsve-full"),
        default=None,
        help="spklip: the ANN baseline (default); fsve-hybrid: spiking MS-ResNet (LIF, tdBN) with "
        "STAR-Net's ANN Transformer; fsve-full: spiking MS-ResNet and the E-SDSA spiking "
        "Transformer, and by default the spiking front end (fsve.hsfe=spiking; fsve.hsfe=ann keeps the "
        "ANN HSFE) (sizes under fsve.* in --set; fsve.cnn=plain: the chain CNN that --format lava "
        "exports)",
    )
    p.add_argument("--preset", help="reference, paper, small or tiny (default tiny; with --resume: the run's)")
    p.add_argument(
        "--init",
        type=opt.path,
        metavar="CKPT",
        help="start from a trained SPKLIP checkpoint: its tokenizer and every weight whose name and "
        "shape match (e.g. an FSVE from the ANN baseline: text tower, temperature, and the HSFE, "
        "into the spiking front end's twin convolutions when fsve.hsfe is spiking)",
    )
    p.add_argument(
        "--teacher",
        type=opt.path,
        metavar="CKPT",
        help="distil from a trained SPKLIP checkpoint (same clips, text tower and tokenizer): "
        "train.distill_weight (default 1) times 1 - cos between the visual embeddings, plus "
        "train.distill_logits times the KL over its class prompts at train.distill_temperature",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field, e.g. hsfe.sa=false, hsfe.n_blocks=3, starnet.enabled=false, "
        "hsfe.slicing=false, train.lr=1e-3 (repeatable)",
    )
    p.add_argument(
        "--data",
        help="'builtin' (default), 'builtin-bench' (the comparison split, docs/benchmark.md), "
        "'builtin-sensor', or a dataset folder/manifest with train and val splits; "
        "with --resume: the run's own",
    )
    p.add_argument("--epochs", type=opt.positive_int, help="epochs (default: the preset's)")
    p.add_argument("--out", type=opt.path, default=Path("runs/spklip"), help="run folder (default runs/spklip)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its own config and data; a "
        "--preset/--model/--set/--data that differs from the run's is refused",
    )
    p.add_argument("--device", type=opt.device, default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--precision",
        choices=opt.PRECISIONS,
        default="auto",
        help="auto (default: fp16 autocast with loss scaling on cuda, fp32 on cpu), fp32, bf16 (cpu or "
        "cuda autocast) or fp16 (cuda); weights and checkpoints stay fp32",
    )
    p.add_argument("--seed", type=opt.seed, help="seed (default: the preset's train.seed)")
    _add_nproc(
        p,
        "train with DistributedDataParallel on N processes of this machine (gloo on cpu, nccl "
        "on cuda, one GPU each); train.batch_size stays the global batch, split over the processes, and "
        "the loss is the one-process run's. Several machines: torchrun -m spklip_energy.train (README)",
    )
    _add_json(p)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser(
        "eval",
        help="evaluate a SPKLIP checkpoint: class accuracy and retrieval",
        description="Top-1/top-5 class accuracy by zero-shot matching of each clip against the text "
        "embeddings of the class prompts (as CLIP), text-to-video Recall@1/5/10 with each clip's own "
        "caption as the query (paper A.4), and a confusion-matrix PNG; each figure with its 95 % Wilson "
        "interval over the clips. The results and the per-clip outcomes are written into the checkpoint, "
        "so that `compare` shows accuracy beside energy and tests two checkpoints evaluated on the same "
        "clips against each other.",
    )
    p.add_argument("checkpoint", type=opt.path, help="a SPKLIP checkpoint")
    p.add_argument("--data", help="dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--out-png", type=opt.path, help="confusion matrix PNG (default next to the checkpoint)")
    p.add_argument("--device", type=opt.device, default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--precision",
        choices=opt.PRECISIONS,
        default="fp32",
        help="fp32 (default), bf16 (cpu or cuda autocast), fp16 (cuda) or auto (fp16 on cuda)",
    )
    _add_nproc(
        p,
        "split the clips over N processes of this machine and gather the results (equal to one "
        "process's); under torchrun: torchrun ... -m spklip_energy eval",
    )
    _add_json(p)
    p.set_defaults(func=cmd_eval)

    p = verbs.add_parser(
        "adapt",
        help="few-shot adaptation (paper section 4.3) and accuracy vs shots",
        description="Few-shot adaptation: everything frozen except the final two layers of STAR-Net (the "
        "last two TransformerEncoderLayers of its temporal Transformer, visual.starnet.temporal.layers.-2 "
        "and -1; with STAR-Net disabled, the block-pooling projection). For each k, k clips per class "
        "train with the class prompts as texts, the rest test. Default data: the built-in sensor variant "
        "(sim-to-real domain shift).",
    )
    p.add_argument("checkpoint", type=opt.path, help="a trained SPKLIP checkpoint")
    p.add_argument("--data", default="builtin-sensor", help="dataset (default builtin-sensor)")
    p.add_argument(
        "--shots", type=opt.int_list, default="2,4,6,8", help="comma-separated clips per class (default 2,4,6,8)"
    )
    p.add_argument("--epochs", type=opt.positive_int, default=30, help="epochs per shot count (default 30)")
    p.add_argument("--lr", type=opt.positive_float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--seed", type=opt.seed, default=0, help="seed for the shot split (default 0)")
    p.add_argument("--out", type=opt.path, default=Path("runs/adapt"), help="output folder (default runs/adapt)")
    p.add_argument("--device", type=opt.device, default="cpu", help="cpu, cuda or auto")
    _add_json(p)
    p.set_defaults(func=cmd_adapt)

    p = verbs.add_parser(
        "convert",
        help="convert SPKLIP's ReLU CNNs to IF neurons (ANN to SNN, paper A.7); accuracy and energy vs T",
        description="ANN-to-SNN conversion with spikingjelly's ann2snn rate-coding recipe: the chosen ReLU layers "
        "become IF neurons (soft reset) with thresholds balanced on train-split clips. Each run of adjacent "
        "converted layers runs T steps on the same analog input and hands the mean output back to the ANN "
        "remainder. Convertible: hsfe (HSFE head + trunk), stem, layer1..layer4 (STAR-Net's CNN); groups cnn "
        "(stem..layer4) and all (hsfe + cnn). Not convertible: the MTF branches (no ReLU after their second "
        "convolution), spatial attention (sigmoid gate), attention pooling and the Transformers (softmax, "
        "LayerNorm, GELU; rate coding needs ReLUs). --method qcfs first fine-tunes the ANN with a quantized "
        "clip-floor-shift activation and converts with the learned thresholds (Bu et al. 2022). For "
        "the ANN (and the QCFS ANN) and each T: zero-shot top-1 on the test split with its 95 % Wilson interval "
        "and energy per clip (paper preset, and each --models model; scaled spikes counted as SOPs); "
        "--sweep-layers adds one row per converted stage. Writes the converted checkpoint (kind "
        "spklip-converted, for the largest T or --keep) and a plot of accuracy and energy vs T. See "
        "docs/convert.md.",
    )
    p.add_argument("checkpoint", type=opt.path, help="an ANN SPKLIP checkpoint (kind spklip)")
    p.add_argument(
        "--layers",
        required=True,
        help="comma-separated: hsfe, stem, layer1, layer2, layer3, layer4, or the groups cnn, all",
    )
    p.add_argument(
        "--timesteps", type=opt.int_list, default="8,16,32,64", help="comma-separated time steps T (default 8,16,32,64)"
    )
    p.add_argument(
        "--calib", type=opt.positive_int, default=32, help="train-split clips for threshold balancing (default 32)"
    )
    p.add_argument(
        "--method",
        choices=("max", "percentile", "robust", "qcfs"),
        default="max",
        help="max (layer-wise max activation, default), percentile (layer-wise --percentile), robust "
        "(channel-wise --percentile, half-threshold start), qcfs (Bu et al. 2022: fine-tune the ANN with "
        "a quantization-clip-floor-shift activation of --levels levels, convert with the learned "
        "thresholds and a θ/2 start; reported near-lossless at T about --levels)",
    )
    p.add_argument("--levels", type=opt.positive_int, help="qcfs: quantisation levels L (default 8)")
    p.add_argument(
        "--finetune-epochs",
        type=opt.nonneg_int,
        help="qcfs: epochs of fine-tuning with the quantized activation on the train split (default 4; "
        "0: thresholds from the calibration clips only)",
    )
    p.add_argument(
        "--finetune-lr",
        type=opt.positive_float,
        help="qcfs: fine-tuning learning rate (default: a tenth of the ANN's training rate)",
    )
    p.add_argument(
        "--v-init",
        choices=("zero", "half"),
        help="initial membrane potential of the IF neurons (default: half for qcfs and robust, zero otherwise)",
    )
    p.add_argument(
        "--bias-calib",
        action="store_true",
        help="calibrate per-channel bias currents on the calibration clips for each T (Li et al. 2021)",
    )
    p.add_argument(
        "--sweep-layers",
        action="store_true",
        help="also convert one more unit at a time (stem, layer1, ..., hsfe) at the kept T and report "
        "what each costs in accuracy and saves in energy",
    )
    p.add_argument(
        "--models",
        default="default",
        help="energy models every row is priced under besides the paper preset (as report --models; default: default)",
    )
    p.add_argument("--seed", type=opt.seed, default=0, help="calibration-clip selection and fine-tuning seed")
    p.add_argument(
        "--percentile", type=opt.percentile, default=99.9, help="percentile for percentile/robust (default 99.9)"
    )
    p.add_argument(
        "--data", help="dataset: builtin, builtin-bench or a folder/manifest (default: the checkpoint's training data)"
    )
    p.add_argument("--out", type=opt.path, required=True, help="the converted checkpoint to write (.pt)")
    p.add_argument("--keep", type=opt.positive_int, help="T stored in the converted checkpoint (default: the largest)")
    p.add_argument("--plot", type=opt.path, help="plot PNG (default: OUT with suffix .convert.png)")
    p.add_argument("--samples", type=opt.positive_int, default=8, help="test clips profiled for energy (default 8)")
    p.add_argument("--batch-size", type=opt.positive_int, default=8, help="clips per forward pass (default 8)")
    p.add_argument("--device", type=opt.device, default="cpu", help="cpu, cuda or auto")
    _add_json(p)
    p.set_defaults(func=_cmd_convert)

    # export (deployment: onnx, nir, lava)
    p = verbs.add_parser(
        "export",
        help="export a SPKLIP checkpoint for deployment (ONNX, NIR, Lava netx)",
        description="onnx: the visual encoder (float32 spikes [batch, frames, height, width]) and the text "
        "encoder (int64 tokens [batch, context_length]) as DIR/visual.onnx and DIR/text.onnx with a dynamic "
        "batch axis; spiking encoders are unrolled over their time steps; --verify compares onnxruntime with "
        "torch (exit 1 when an ANN embedding differs by more than 1e-4 relative). nir: the spiking CNN as a NIR "
        "graph (DIR/visual_cnn.nir), and a spiking front end's chain parts beside it (DIR/hsfe_mtf.nir, "
        "hsfe_sa_gate.nir, hsfe_trunk.nir; the OR pooling and SA's spike product stay host-side); --verify reads "
        "each back with snnTorch and spikingjelly. lava: the spiking "
        "CNN of an fsve.cnn=plain model in Loihi fixed point as a lava-dl netx file (DIR/visual_cnn.net) plus "
        "its host-side front end (DIR/host.onnx); --verify compares its spikes with the float model; run it "
        "with 'spklip-energy simulate'. Every format writes DIR/export.json. See docs/export.md, docs/nir.md, "
        "docs/lava.md.",
    )
    p.add_argument("checkpoint", type=opt.path, help="a SPKLIP checkpoint (spklip, fsve-hybrid, fsve-full)")
    p.add_argument("--format", choices=tuple(FORMATS), default="onnx", help="export format (default onnx)")
    p.add_argument("--out", type=opt.path, help="output folder (default exports/<checkpoint name>-<format>)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing export folder (one holding anything an export does not write is "
        "refused, never deleted)",
    )
    p.add_argument(
        "--opset",
        type=opt.positive_int,
        default=17,
        help="ONNX opset (14..20, default 17) of the ONNX graphs (onnx; lava: host.onnx)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the export: onnx against torch with onnxruntime (exit 1 on failure); nir read back "
        "by snnTorch and spikingjelly (exit 1 on failure); lava against the float model, spikes per "
        "layer, and the hook counts against the simulator's",
    )
    p.add_argument(
        "--data", default="builtin", help="clips for --verify: builtin, builtin-bench or a dataset (default builtin)"
    )
    p.add_argument("--samples", type=opt.positive_int, default=4, help="test clips for --verify (default 4)")
    _add_json(p)
    p.set_defaults(func=_cmd_export)

    p = verbs.add_parser(
        "simulate",
        help="run a netx (.net) network in the bit-exact Loihi fixed-point reference",
        description="Run a lava-dl netx network on spike input with this project's bit-exact fixed-point "
        "CUBA-LIF reference (numpy) and report output spikes, spikes, synaptic events and neuron updates per "
        "layer, and the synaptic energy at the loihi preset (UNVERIFIED). For an 'export --format lava' folder "
        "the clip goes through its host.onnx front end and every temporal block is one sample; for any other "
        "netx file the .dat frames are the input spikes (input layer (1, H, W)). See docs/lava.md.",
    )
    p.add_argument("network", type=opt.path, help="a netx .net file (e.g. exports/NAME-lava/visual_cnn.net)")
    p.add_argument(
        "--data",
        default="builtin",
        help="builtin (first test clip of the built-in data), a dataset folder, or a .dat file",
    )
    p.add_argument(
        "--steps",
        type=opt.positive_int,
        help="time steps (default: an export's SNN steps + its latency; a .dat: all its frames)",
    )
    p.add_argument(
        "--engine",
        choices=("reference", "lava", "both"),
        default="reference",
        help="reference: this project's bit-exact numpy engine (default); lava or both: also run Lava's "
        "own fixed-point simulator (needs 'make lava-env') and compare spikes layer by layer",
    )
    _add_json(p)
    p.set_defaults(func=_cmd_simulate)

    # report / compare
    def add_energy_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data",
            default="builtin",
            help="'builtin' (the spike-digits test split, generated on first use), 'builtin-bench' "
            "(the 800-clip comparison split) or a dataset "
            "folder / manifest (default builtin)",
        )
        p.add_argument("--samples", type=opt.positive_int, default=8, help="clips to run (default 8)")
        p.add_argument("--batch-size", type=opt.positive_int, default=4, help="clips per forward pass (default 4)")
        p.add_argument(
            "--preset",
            default="paper",
            help="cost preset: paper (SPKLIP A.6, default), horowitz-fp32, horowitz-fp16, "
            "horowitz-int8, horowitz-fp32-8kb, loihi, truenorth (the chip presets carry UNVERIFIED flags)",
        )
        p.add_argument("--costs", type=opt.path, help="your own cost table (TOML or YAML); overrides --preset")
        p.add_argument(
            "--reuse",
            choices=("layer", "none"),
            default="layer",
            help="weight reuse: 'layer' reads each weight once per layer call and time step "
            "(default); 'none' reads one weight per MAC/SOP",
        )
        p.add_argument(
            "--models",
            default="default",
            metavar="NAMES",
            help="published energy models to price the same counts with, comma-separated: "
            "lemaire-lab, lemaire-sj (Lemaire et al. 2022, two memory conventions), spikesim, "
            "spikesim-sram (SpikeSim crossbars), eyeriss (data-movement bound, a range), any cost "
            "preset; 'default' = paper,lemaire-lab,lemaire-sj,spikesim,eyeriss; 'all' = every sourced "
            "model (docs/energy.md)",
        )
        p.add_argument(
            "--model-file",
            type=opt.path,
            metavar="FILE",
            help="TOML or YAML with the models' parameters: [lemaire] e_add_pj, e_mul_pj, fifo, buffers "
            "(sample|traced); [spikesim] xbar and its pJ constants; [eyeriss] rf, array, gb, dram, "
            "dram_passes (>= 1), batch",
        )
        p.add_argument(
            "--weight-bits",
            type=opt.arg(opt.check_int, minimum=1, maximum=32),
            default=8,
            help="weight bits of the quantized-ANN pricing (default 8)",
        )
        _add_json(p)

    p = verbs.add_parser(
        "report",
        help="count operations of a checkpoint and write an energy report",
        description="Run a checkpoint's model on spike clips under forward hooks, count MACs, synaptic "
        "operations (SOPs), neuron updates and memory accesses per layer, price them with a cost model "
        "and write report.md, report.html, per_layer.csv, summary.json and plots. The terminal shows "
        "the paper's Table 6 (computational, memory and total energy, memory energy ratio). A netx network "
        "(NET.net, e.g. from 'export --format lava') is counted as the fixed-point network that 'simulate' "
        "runs, on the same input (one clip; --samples and --batch-size do not apply), with its torch twin; "
        "use --preset loihi for Loihi's per-synaptic-op energy (UNVERIFIED). See docs/lava.md.",
    )
    p.add_argument(
        "checkpoint", type=opt.path, help="a spklip-energy checkpoint (.pt or .safetensors) or a netx network (.net)"
    )
    p.add_argument(
        "--out",
        type=opt.path,
        help="output folder, replaced whole on success (default runs/reports/<checkpoint name>; for NET.net "
        "runs/reports/<folder>-<name>)",
    )
    add_energy_options(p)
    p.add_argument(
        "--snn-steps",
        type=opt.positive_int,
        metavar="T",
        help="for a network without neurons: also price it with the ceil(log2(T+1))-bit activations a "
        "T-step rate-coded SNN corresponds to (Yan et al.); compare does this for the SNNs it holds",
    )
    _add_nproc(
        p,
        "profile on N processes of this machine, each a share of the batches; the counts are summed "
        "over processes and equal one process's (under torchrun: torchrun ... -m spklip_energy report)",
    )
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser(
        "compare",
        help="compare checkpoints on accuracy, operations and energy",
        description="Profile several checkpoints on the same clips and write one table (Markdown, CSV, "
        "HTML, JSON) of accuracy, MACs, SOPs, neuron updates, memory accesses and energy, each with its ratio "
        "to the baseline checkpoint, plus an energy-vs-accuracy plot (paper Table 6 and A.7). Accuracy is the "
        "top-1 that `eval` recorded in each checkpoint, with its 95 % Wilson interval; for each checkpoint "
        "evaluated on the same clips as the baseline (same split, same data), the exact McNemar p-value "
        "and the top-1 difference with a paired-bootstrap interval (docs/spklip.md, Uncertainty).",
    )
    p.add_argument("checkpoints", type=opt.path, nargs="+", help="checkpoints; ratios are to the baseline")
    p.add_argument(
        "--baseline",
        metavar="NAME_OR_INDEX",
        help="the checkpoint ratios and paired tests are to: its name in the table, its path, or "
        "its position counted from 1 (default: the first)",
    )
    p.add_argument(
        "--out",
        type=opt.path,
        default=DEFAULT_REPORTS / "compare",
        help="output folder, replaced whole on success (default runs/reports/compare)",
    )
    add_energy_options(p)
    p.set_defaults(func=cmd_compare)

    p = verbs.add_parser(
        "benchmark",
        help="the A.7 protocol: ANN, control, hybrid, full, converted over seeds, one table",
        description="For each seed: train the ANN from scratch, then from it an equal-budget ANN control, "
        "fsve-hybrid and fsve-full with the same recipe, and convert its CNN to IF neurons; evaluate every arm "
        "on the test split and profile its energy per clip. One table (Markdown, CSV, JSON) with top-1 as "
        "mean +- std over seeds and the pooled 95 % Wilson interval, the exact McNemar test and paired-"
        "bootstrap difference against the control of the same seed, energy per clip and its ratio to the ANN, "
        "plus a plot of accuracy vs energy with error bars. Resumable: runs are kept under --work and a "
        "killed job continues where it stopped (docs/benchmark.md).",
    )
    from .benchmark import ARMS, DEFAULT_ARMS

    p.add_argument(
        "--seeds",
        type=opt.arg(opt.check_int_list, minimum=0, maximum=opt.MAX_INT),
        default=[0, 1, 2],
        help="comma-separated training seeds (default 0,1,2)",
    )
    p.add_argument("--preset", default="tiny", help="model preset of every arm (default tiny)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="config override for every trained arm, e.g. train.epochs=10 (repeatable)",
    )
    p.add_argument(
        "--data",
        default="builtin-bench",
        help="builtin-bench (default), builtin, or a dataset folder/manifest with train/val/test splits",
    )
    p.add_argument(
        "--arms",
        default=",".join(DEFAULT_ARMS),
        help=f"comma-separated subset of {','.join(ARMS)} (default {','.join(DEFAULT_ARMS)}; every arm "
        "after 'ann' but fsve-full-scratch starts from it; fsve-full-kd-repeat: the default full-spiking FSVE, "
        "from the ANN with it as teacher; fsve-full-ann-hsfe: the ANN front end; fsve-full-scratch, "
        "fsve-full, fsve-full-kd, fsve-full-kd-long: subwindows encoding, from scratch, --init, --init "
        "--teacher, and the teacher through the contrastive stage too (a longer budget); docs/benchmark.md)",
    )
    p.add_argument("--work", type=opt.path, help="where the runs live (default runs/benchmark/<data>-<preset>)")
    p.add_argument(
        "--out",
        type=opt.path,
        default=DEFAULT_REPORTS / "benchmark",
        help="output folder, replaced whole on success (default runs/reports/benchmark)",
    )
    p.add_argument(
        "--threads",
        type=opt.positive_int,
        default=2,
        help="torch threads for every training and evaluation, recorded in the results (default 2)",
    )
    p.add_argument(
        "--jobs",
        type=opt.positive_int,
        default=1,
        help="arms run side by side in separate processes, each with --threads threads (default 1; "
        "e.g. --jobs 2 --threads 1 on two cores: the ANN arms of all seeds first, then the rest)",
    )
    p.add_argument(
        "--energy-clips", type=opt.positive_int, default=16, help="test clips profiled for energy per arm (default 16)"
    )
    p.add_argument("--cost", default="paper", help="cost model preset or JSON file for energy (default paper)")
    p.add_argument(
        "--qcfs-timesteps",
        type=opt.int_list,
        default=[1, 2, 4, 8],
        help="time steps of the QCFS arms' sweeps (converted-qcfs, converted-qcfs-bc); the largest is "
        "kept and compared (default 1,2,4,8)",
    )
    p.add_argument(
        "--convert-timesteps",
        type=opt.int_list,
        default=[8, 16, 32, 64],
        help="time steps of the converted arm's sweep; the largest is kept and compared (default 8,16,32,64)",
    )
    p.add_argument("--device", type=opt.device, default="cpu", help="cpu, cuda or auto (default cpu)")
    _add_json(p)
    p.set_defaults(func=cmd_benchmark)

    # zoo
    zoo = verbs.add_parser(
        "zoo",
        help="small reference models (ANN, spikingjelly, snnTorch) as checkpoints",
        description="Small ANN and SNN models that checkpoints can describe: for trying report and "
        "compare before training the SPKLIP models.",
    )
    zverbs = zoo.add_subparsers(dest="zoo_verb", metavar="ZOO_VERB", required=True)
    p = zverbs.add_parser("list", help="list model kinds", description="List the model kinds and their configs.")
    _add_json(p)
    p.set_defaults(func=cmd_zoo_list)
    p = zverbs.add_parser(
        "init",
        help="write an (untrained) checkpoint of a model kind",
        description="Build a model kind with its seeded initialisation and save it as a checkpoint.",
    )
    p.add_argument("kind", help="model kind (see `spklip-energy zoo list`)")
    p.add_argument("out", type=opt.path, help="checkpoint path (.pt or .safetensors)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    _add_json(p)
    p.set_defaults(func=cmd_zoo_init)

    # demo
    p = verbs.add_parser(
        "demo",
        help="run the main job on the built-in data",
        description="Generate the built-in spike-digits dataset (if missing) and preview one clip per "
        "class; train the tiny SPKLIP (ANN) and its spiking variants fsve-hybrid and fsve-full, convert the "
        "ANN's CNN to IF neurons, evaluate each on the test split, and compare accuracy and energy in the "
        "form of the paper's Table 6 / A.7 (energy reports per model). Trained models are reused when "
        "OUT already holds them.",
    )
    p.add_argument("--samples", type=opt.positive_int, default=16, help="test clips to profile (default 16)")
    p.add_argument(
        "--no-train",
        action="store_true",
        help="skip training and conversion (energy of the zoo's untrained reference models only)",
    )
    p.add_argument(
        "--epochs",
        type=opt.positive_int,
        default=None,
        help="training epochs of each tiny model (default: the preset's)",
    )
    p.add_argument("--out", type=opt.path, default=Path("demo-out"), help="output folder (default demo-out)")
    p.add_argument("--seed", type=opt.seed, default=0, help="dataset seed (default 0)")
    p.add_argument(
        "--jobs",
        type=opt.positive_int,
        default=None,
        help="after the ANN, its spiking variants and its conversion run this many at a time in "
        "worker processes of one thread each (default: one per core, at most 2; 1: one after "
        "another in this process)",
    )
    _add_json(p)
    p.set_defaults(func=cmd_demo)
    return parser


def _check_size(value, name: str) -> int:
    from .limits import parse_size

    return parse_size(value, name)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Project warnings are one line on stderr; others keep Python's format."""
    from .errors import SpklipWarning

    if issubclass(category, SpklipWarning):
        print(f"spklip-energy: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    from .limits import set_memory_limit

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    set_memory_limit(args.max_memory)
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except LostRankError as exc:  # not the user's input: a process of a distributed run went away
        print(f"spklip-energy: error: {exc}", file=sys.stderr)
        return 1
    except SpklipError as exc:
        print(f"spklip-energy: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader of stdout went away (`| head`): nothing left to tell anyone
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # unwritable output, output path is a folder, ...
        where = exc.filename2 or exc.filename
        print(f"spklip-energy: error: {f'{where}: ' if where else ''}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print(
            "spklip-energy: error: out of memory (lower --samples / --batch-size, or the sizes involved)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("spklip-energy: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
        set_memory_limit(None)


if __name__ == "__main__":
    sys.exit(main())
