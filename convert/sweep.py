"""The library side of ``spklip-energy convert``: convert a checkpoint, sweep T, save.

:func:`convert_checkpoint` loads an ANN SPKLIP checkpoint, calibrates the
chosen layers on train-split clips, and for the ANN and each T measures
zero-shot top-1 on the test split (:func:`~spklip.training.evaluate_model`)
and energy per clip (hook-based counter, ``paper`` cost preset by default), then
writes the converted checkpoint (kind ``spklip-converted``) and the plot. It never
prints; progress goes through ``progress(phase, done, total)``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from energy.estimate import estimate_energy, resolve_cost
from energy.profiler import profile
from spklip.config import visual_forward_bytes
from spklip_energy.atomic import atomic_path
from spklip_energy.checkpoint import Checkpoint, load_checkpoint, refuse_nonfinite
from spklip_energy.errors import ConfigError
from spklip_energy.limits import check_memory
from spklip_energy.options import (
    check_int_list,
    check_positive_float,
    check_positive_int,
    check_seed,
    pick_device,
)

from .calibrate import check_method
from .layers import CNN, NOT_CONVERTIBLE, ConversionError, parse_layers, runs
from .ratecode import MAX_TIMESTEPS, set_timesteps
from .structure import DEFAULT_PERCENTILE, convert_spklip, make_spec

#: Kinds that are spiking already (besides the zoo's spiking kinds).
SPIKING_KINDS = ("fsve-hybrid", "fsve-full", "spklip-converted")

Progress = Callable[[str, int, int], None]


def check_ann_checkpoint(ck: Checkpoint) -> None:
    """Refuse anything but an ANN SPKLIP checkpoint, with one sentence."""
    if ck.kind == "spklip":
        return
    spiking = ck.kind in SPIKING_KINDS
    if not spiking:
        from spklip_energy.zoo import MODEL_KINDS

        spec = MODEL_KINDS.get(ck.kind)
        spiking = bool(spec and spec.spiking)
    if spiking:
        raise ConversionError(
            f"{ck.path}: is already spiking (kind {ck.kind!r}); convert takes an ANN SPKLIP checkpoint (kind 'spklip')"
        )
    raise ConversionError(
        f"{ck.path}: is a {ck.kind!r} checkpoint; convert takes an ANN SPKLIP checkpoint (kind 'spklip')"
    )


def parse_timesteps(text: str | list[int]) -> list[int]:
    """``"4,8,16"`` -> ``[4, 8, 16]`` (sorted, unique, each in 1..:data:`MAX_TIMESTEPS`: every step is one
    pass of the converted layers per clip, so T multiplies the work of a sweep; see docs/convert.md).

    The ceiling applies to new conversions only: a converted checkpoint keeps the T it was saved with."""
    try:
        ts = check_int_list(text, "--timesteps", 1, MAX_TIMESTEPS)
    except ConfigError as exc:
        raise ConversionError(str(exc)) from None
    return sorted(set(ts))


class ClipBatches(Sequence):
    """Batches of spike clips ``[B, F, H, W]`` read from a dataset when indexed (nothing cached)."""

    def __init__(self, ds, indices: list[int], batch_size: int, device: torch.device | str = "cpu") -> None:
        self.ds, self.indices, self.batch_size, self.device = ds, list(indices), batch_size, device

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = self.indices[i * self.batch_size : (i + 1) * self.batch_size]
        return torch.stack([self.ds[j]["spikes"] for j in part]).to(self.device)


def energy_per_clip(visual: torch.nn.Module, batches: list[torch.Tensor], cost="paper", models=None) -> dict:
    """Counts and energy per clip of the visual encoder on ``batches`` (what ``report`` counts); with ``models``
    (energy model objects) also each model's native estimate per clip as ``models: {name: [low, high]}``."""
    n = sum(int(b.shape[0]) for b in batches)

    def forward(module):
        for b in batches:
            module(b)

    res = profile(visual, forward=forward, samples=n)
    e = estimate_energy(res, cost)["totals"]
    t = res.totals
    out = {
        "macs": t["macs"] / n,
        "sops": t["sops"] / n,
        "neuron_updates": t["neuron_updates"] / n,
        "mem_accesses": t["mem_accesses"] / n,
        "compute_j": e["table6_compute_j"] / n,
        "memory_j": e["memory_j"] / n,
        "total_j": e["total_j"] / n,
        "memory_ratio": e["memory_ratio"],
        "not_counted": [r["name"] for r in res.not_counted],
    }
    if models:
        from energy.models import estimate_models

        est = estimate_models(res, n, list(models))
        out["models"] = {x["model"]: [x["low_j"], x["high_j"]] for x in est["estimates"] if x["precision"] == "native"}
    return out


def _row(label, t, layers, res, energy) -> dict:
    iv = res["intervals"]["top1"]
    return {
        "label": label,
        "timesteps": t,
        "layers": list(layers),
        "top1": res["top1"],
        "top5": res["top5"],
        "R@5": res["R@5"],
        "top1_ci": [iv["ci_low"], iv["ci_high"]],
        "clips": res["clips"],
        **(energy or {}),
    }


def sweep_steps(names: list[str]) -> list[list[str]]:
    """The layer sweep: one more unit at a time, STAR-Net's CNN in data-flow order first, then the HSFE trunk."""
    order = [u for u in CNN if u in names] + (["hsfe"] if "hsfe" in names else [])
    return [order[: i + 1] for i in range(len(order))]


def convert_checkpoint(
    ckpt: str | os.PathLike,
    layers: str,
    timesteps: list[int],
    out: str | os.PathLike,
    *,
    calib: int = 32,
    method: str = "max",
    percentile: float = DEFAULT_PERCENTILE,
    data: str | os.PathLike | None = None,
    keep: int | None = None,
    samples: int = 8,
    batch_size: int = 8,
    plot: str | os.PathLike | None = None,
    cost: str = "paper",
    device: str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
    levels: int | None = None,
    finetune_epochs: int | None = None,
    finetune_lr: float | None = None,
    v_init: str | None = None,
    bias_calib: bool = False,
    sweep_layers: bool = False,
    models: str | list[str] | None = "default",
) -> dict:
    """Convert ``layers`` of an ANN SPKLIP checkpoint; accuracy and energy for the ANN and each T.

    ``method="qcfs"``: the ReLUs of ``layers`` become QCFS activations with ``levels`` levels (thresholds
    started at the calibration clips' ``percentile``), the visual encoder is fine-tuned for
    ``finetune_epochs`` (default 4) epochs at ``finetune_lr`` (default a tenth of the ANN's rate), and the
    result converts with its learned thresholds (:mod:`.qcfs`). ``v_init``: ``zero`` or ``half`` (the
    neurons' initial membrane potential; default: half for qcfs and robust, zero otherwise).
    ``bias_calib``: calibrate per-channel bias currents on the calibration clips for each T (:mod:`.biascal`).
    ``sweep_layers``: also convert one more unit at a time (at the kept T) and measure each step.
    ``models``: the energy models (``report --models``) each row is priced under besides ``cost``.

    Writes the converted checkpoint (for ``keep``, default the largest T) to ``out`` and the
    plot to ``plot`` (default: ``out`` with suffix ``.convert.png``). Returns a JSON-ready dict.
    """
    from energy.models import resolve_models
    from spikedata.manifest import load_manifest
    from spklip.data import clips_for, resolve_data
    from spklip.io import load_spklip, save_spklip
    from spklip.training import evaluate_model

    from .biascal import calibrate_bias, reset_bias
    from .neurons import V_INITS
    from .qcfs import DEFAULT_LEVELS, check_levels, finetune_visual, quantize_activations, to_relu
    from .structure import _subnet, default_v_init

    # every option is checked before anything is loaded or allocated
    ts = parse_timesteps(timesteps)
    if keep is not None:
        keep = check_positive_int(keep, "--keep")
        if keep not in ts:
            raise ConversionError(f"--keep {keep} is not one of --timesteps {','.join(map(str, ts))}")
    keep = ts[-1] if keep is None else keep
    calib = check_positive_int(calib, "--calib")
    samples = check_positive_int(samples, "--samples")
    batch_size = check_positive_int(batch_size, "--batch-size")
    seed = check_seed(seed, "seed")
    method, percentile = check_method(method, percentile, "--percentile")
    if method != "qcfs":
        for name, value in (
            ("--levels", levels),
            ("--finetune-epochs", finetune_epochs),
            ("--finetune-lr", finetune_lr),
        ):
            if value is not None:
                raise ConversionError(f"{name} applies to --method qcfs only (this conversion uses --method {method})")
    levels = check_levels(DEFAULT_LEVELS if levels is None else levels)
    epochs = 4 if finetune_epochs is None else finetune_epochs
    if method == "qcfs" and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0):
        raise ConversionError(f"--finetune-epochs must be a non-negative integer, got {epochs!r}")
    if finetune_lr is not None:
        finetune_lr = check_positive_float(finetune_lr, "--finetune-lr")
    if v_init is not None and v_init not in V_INITS:
        raise ConversionError(f"unknown --v-init {v_init!r}; choose one of {', '.join(V_INITS)}")
    v0 = default_v_init(method) if v_init is None else V_INITS[v_init]
    parse_layers(layers)  # the names; which of them this model has is checked once its config is known
    dev = pick_device(device)
    resolve_cost(cost)
    energy_models = resolve_models(models) if models else []

    ck = load_checkpoint(ckpt)
    check_ann_checkpoint(ck)
    refuse_nonfinite(ck, "a converted model would compute nothing but NaN")
    loaded = load_spklip(ck)
    cfg = loaded.model.cfg
    names = parse_layers(layers, cfg.starnet.enabled)
    src = data if data is not None else ck.card.get("data", {}).get("path", "builtin")
    manifest = load_manifest(resolve_data(src))
    if not manifest.split("train"):
        what = "--finetune-epochs needs training clips" if method == "qcfs" and epochs else "no calibration data"
        raise ConversionError(f"{manifest.root}: {what}: its train split is empty")
    n_train, n_test = len(manifest.split("train")), len(manifest.split("test"))
    batch = min(batch_size, max(min(calib, n_train), n_test, 1))  # what one forward pass can hold
    kept = min(samples, n_test) * cfg.frames * cfg.height * cfg.width  # the profiled clips (uint8), held throughout
    # a pass of the converted model: the ANN's activations and, for each rate-coded run, its membranes
    check_memory(
        visual_forward_bytes(cfg, batch, names) + kept,
        f"converting {ck.path.name} ({batch} clips per forward pass, {min(samples, n_test)} profiled clips held)",
        f"--batch-size {batch_size}, --samples {samples}, --layers {'+'.join(names)}, {cfg.frames} frames "
        f"of {cfg.height}x{cfg.width}",
    )
    train_ds, test_ds = clips_for(cfg, manifest, "train"), clips_for(cfg, manifest, "test")
    order = np.random.default_rng(seed).permutation(len(train_ds)).tolist()
    calib_batches = ClipBatches(train_ds, order[:calib], batch_size, dev)
    energy_batches = list(ClipBatches(test_ds, list(range(min(samples, len(test_ds)))), batch_size, dev))

    def report(phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(phase, done, total)

    evals: dict = {}

    def measure(model, label, t, units) -> dict:
        res = evaluate_model(model, loaded.tokenizer, test_ds, dev, batch_size=batch_size)
        evals[label] = res
        with torch.no_grad():
            energy = energy_per_clip(model.visual, energy_batches, cost, energy_models)
        return _row(label, t, units, res, energy)

    ann = loaded.model.to(dev).eval()
    rows = [measure(ann, "ANN", None, [])]
    source, target, qcfs_record = ann, ann, None
    if method == "qcfs":
        target = copy.deepcopy(ann)
        units = [_subnet(target, run) for run in runs(names)]
        report("QCFS thresholds", 0, 1)
        quantize_activations(target, units, levels, calib_batches, target.encode_spikes, percentile)
        history = None
        if epochs:
            lr = finetune_lr if finetune_lr is not None else cfg.train.lr / 10
            history = finetune_visual(
                target,
                loaded.tokenizer,
                train_ds,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                device=dev,
                seed=seed,
                teacher=copy.deepcopy(ann.visual),
                progress=lambda d, t: report("QCFS fine-tuning", d, t),
            )
        rows.append(measure(target, f"QCFS ANN (L={levels})", None, []))
        qcfs_record = {
            "levels": levels,
            "threshold_init": f"{percentile:g}th percentile of the calibration clips",
            "finetune": history or {"epochs": 0},
        }
        source = copy.deepcopy(target)
        to_relu([_subnet(source, run) for run in runs(names)])

    def convert(units: list[str], t: int):
        model, spec = convert_spklip(
            source,
            units,
            t,
            calib_batches,
            method,
            percentile,
            progress=lambda d, n: report("calibrating", d, n),
            v_init=v0,
            bias=bias_calib,
        )
        return model, spec

    def calibrate(model, units: list[str]) -> dict | None:
        if not bias_calib:
            return None
        reset_bias(model)
        return calibrate_bias(
            target,
            model,
            [[_subnet(target, run)] for run in runs(units)],
            list(calib_batches),
            lambda m, b: m.encode_spikes(b),
            progress=lambda d, n: report("bias calibration", d, n),
        )

    converted, spec = convert(names, keep)
    steps, done = len(ts) + (len(sweep_steps(names)) if sweep_layers else 0), 0
    for t in ts:
        set_timesteps(converted, t)
        report(f"T={t}: calibrating, evaluating, profiling", done, steps)
        calibrate(converted, names)
        rows.append(measure(converted, f"T={t}", t, names))
        done += 1
    layer_rows = []
    if sweep_layers:
        for units in sweep_steps(names):
            report(f"layer sweep: {'+'.join(units)}", done, steps)
            model = converted if units == names else convert(units, keep)[0]
            set_timesteps(model, keep)
            calibrate(model, units)
            label = "+".join(units) if len(units) <= 2 else f"{units[0]}..{units[-1]}"
            layer_rows.append(measure(model, label, keep, units))
            done += 1
    report("saving", done, steps)
    set_timesteps(converted, keep)
    bias_record = calibrate(converted, names)
    spec = make_spec(names, keep, method, percentile, len(order[:calib]), v0, bias_record, qcfs_record)
    card = ck.card
    ev = dict(evals[f"T={keep}"]) | {"split": "test", "data": str(src)}
    sweep = {
        "rows": rows,
        "cost": cost,
        "samples": sum(int(b.shape[0]) for b in energy_batches),
        "test_clips": len(test_ds),
        "models": [m.name for m in energy_models],
        "method": method,
        "layer_rows": layer_rows,
        "not_converted": NOT_CONVERTIBLE,
    }
    extra = {
        "conversion": spec,
        "eval": ev,
        "data": card.get("data", {"path": str(resolve_data(src))}),
        "classes": card.get("classes", list(test_ds.classes)),
        "class_prompts": card.get("class_prompts", list(test_ds.class_prompts)),
        "source": {
            "checkpoint": str(ck.path),
            "kind": ck.kind,
            "train": {k: v for k, v in card.get("train", {}).items() if k != "optimizer"},
        },
        "convert_sweep": sweep,
    }
    path = save_spklip(out, converted.cpu(), loaded.tokenizer, extra)
    png = Path(plot) if plot is not None else path.with_suffix(".convert.png")
    from reports.plots import sweep_png

    image = sweep_png(rows, f"{ck.path.name}: {'+'.join(names)} converted ({method}), test split of {src}", layer_rows)
    with atomic_path(png) as tmp:
        tmp.write_bytes(image)
    return {
        "checkpoint": str(path),
        "source": str(ck.path),
        "conversion": spec,
        "kept_timesteps": keep,
        "rows": rows,
        "layer_rows": layer_rows,
        "not_converted": NOT_CONVERTIBLE,
        "plot": str(png),
        "data": str(src),
        "calib_clips": spec["calib_clips"],
        "test_clips": len(test_ds),
        "energy_samples": sweep["samples"],
        "cost": cost,
        "models": sweep["models"],
        "method": method,
    }


def _fmt_ci(r: dict) -> str:
    lo, hi = r.get("top1_ci", (None, None))
    ci = f" [{100 * lo:4.1f}, {100 * hi:4.1f}]" if lo is not None else ""
    return f"{100 * r['top1']:5.1f}%{ci}"


def _range(v) -> str:
    if not v or v[0] is None:
        return "n/a"
    lo, hi = v
    return f"{lo:.2e}" if hi is None or hi == lo else f"{lo:.2e}-{hi:.2e}"


def _table(rows: list[dict], first: str, label) -> list[str]:
    models = [m for m in (rows[0].get("models") or {})] if rows else []
    head = (
        f"{first:>22} {'top-1 [95% Wilson]':>21} {'compute J':>10} {'memory J':>10} {'total J':>10} "
        f"{'mem %':>6} {'SOPs':>9} {'MACs':>9} {'neur.upd':>9}" + "".join(f" {m[:18]:>19}" for m in models)
    )
    lines = [head]
    for r in rows:
        if "total_j" not in r:
            continue
        rng = "".join(f" {_range(r.get('models', {}).get(m)):>19}" for m in models)
        lines.append(
            f"{label(r)[:22]:>22} {_fmt_ci(r):>21} {r['compute_j']:10.3e} {r['memory_j']:10.3e} "
            f"{r['total_j']:10.3e} {100 * r['memory_ratio']:5.1f}% {r['sops']:9.2e} {r['macs']:9.2e} "
            f"{r['neuron_updates']:9.2e}{rng}"
        )
    return lines


def sweep_table(result: dict) -> str:
    """The terminal tables: accuracy and energy for the ANN and each T, then the layer sweep when it ran."""
    cost = result["cost"]
    models = result.get("models") or []
    lines = [
        f"per clip: top-1 (zero-shot) over {result['test_clips']} test clips with 95% Wilson intervals; "
        f"energy over {result['energy_samples']} test clips, compute/memory/total under the {cost!r} preset"
        + (
            f", then each model's native estimate (J, low-high where it is a range): {', '.join(models)}"
            if models
            else ""
        )
    ]
    lines += _table(
        result["rows"], "T", lambda r: r.get("label") or ("ANN" if r["timesteps"] is None else f"T={r['timesteps']}")
    )
    if result.get("layer_rows"):
        t = result["layer_rows"][0]["timesteps"]
        lines += ["", f"layer sweep at T={t} (one more unit converted per row; the rest stays analog):"]
        lines += _table(result["layer_rows"], "converted", lambda r: r["label"])
        lines.append(f"not convertible: {result.get('not_converted', NOT_CONVERTIBLE)}")
    return "\n".join(lines)


__all__ = [
    "SPIKING_KINDS",
    "ClipBatches",
    "check_ann_checkpoint",
    "convert_checkpoint",
    "energy_per_clip",
    "parse_timesteps",
    "sweep_steps",
    "sweep_table",
]
