"""Training, evaluation and few-shot adaptation of SPKLIP (the library side of train/eval/adapt).

Nothing here prints: progress goes through callbacks, results come back as
dicts and files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from spikedata.clips import BUILTIN_DATA
from spklip_energy.atomic import atomic_path
from spklip_energy.checkpoint import build_on_meta, module_nbytes, nonfinite_tensors
from spklip_energy.distributed import (
    GlobalBatches,
    World,
    barrier,
    gather_objects,
    gather_rows,
    split_bounds,
    sync_batchnorm,
)
from spklip_energy.errors import CheckpointError, ConfigError
from spklip_energy.limits import check_memory
from spklip_energy.options import (
    check_int_list,
    check_positive_float,
    check_positive_int,
    check_seed,
    pick_device,
)
from spklip_energy.precision import autocast, grad_scaler, resolve_precision

from .augment import apply_flips, dataset_flips, draw_flips
from .config import SPKLIPConfig, apply_overrides, config_differences, size_cause
from .data import clips_for, load_splits, resolve_data
from .io import load_spklip, restore_optimizer, restore_rng, save_spklip
from .loss import class_prompt_loss, clip_loss
from .metrics import chance_recall, confusion_matrix, retrieval_hits, topk_accuracy, topk_hits
from .model import SPKLIP, SPKLIPOutput, build_spklip
from .tokenizer import SpikeTextTokenizer

Progress = Callable[[dict], None]

#: Training keeps, per weight, the weight, its gradient and AdamW's two moments.
TRAINING_MEMORY_FACTOR = 4


class DivergedError(ConfigError):
    """Training reached a NaN or infinite loss (or weights); the learning rate is usually too high."""


def _check_finite_loss(loss: torch.Tensor, stage: str, epoch: int, step: int, steps: int, lr: float, kept: str) -> None:
    """Stop with a :class:`DivergedError` before a NaN/Inf loss reaches the weights."""
    value = float(loss.detach())
    if math.isfinite(value):
        return
    raise DivergedError(
        f"{stage} diverged: the loss became {value} at epoch {epoch}, step {step} of {steps} "
        f"(learning rate {lr:.3g}); lower the learning rate (e.g. --set train.lr={lr / 10:.3g}); {kept}"
    )


def _check_finite_weights(model: torch.nn.Module, stage: str, epoch: int, lr: float, kept: str) -> None:
    bad = nonfinite_tensors(model)
    if bad:
        raise DivergedError(
            f"{stage} diverged: weights such as {bad[0]!r} became NaN or infinite in epoch {epoch} "
            f"(learning rate {lr:.3g}); lower the learning rate (e.g. --set train.lr={lr / 10:.3g}); {kept}"
        )


def _loader(ds, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=0, drop_last=False)


def _train_batches(ds, batch_size: int, seed: int, world: World):
    """This rank's part of each shuffled global batch with the global batch's size, and the number of
    steps. One process: the ``DataLoader`` order of :func:`_loader`; several: the same global batches
    (:class:`~spklip_energy.distributed.GlobalBatches`), each rank reading only its slice."""
    if not world.distributed:
        loader = _loader(ds, batch_size, True, seed)
        return ((b, len(b["label"])) for b in loader), len(loader)
    sampler = GlobalBatches(len(ds), batch_size, seed, world)
    sizes = [len(b) for b in sampler.global_batches()]
    return zip(DataLoader(ds, batch_sampler=sampler, num_workers=0), sizes, strict=True), len(sizes)


def _global_view(batch: dict, global_size: int, flips: list, flip_rng: torch.Generator, world: World):
    """This rank's clips flipped as the global batch's draws say (the same draws on every rank), their flip
    states, the global batch's labels and captions (after flips) and this rank's ``(lo, hi)`` in it."""
    states_all = draw_flips(global_size, flips, flip_rng)
    lo, hi = split_bounds(global_size, world)
    states = states_all[lo:hi]
    spikes, labels, captions = apply_flips(batch["spikes"], batch["label"], list(batch["caption"]), flips, states)
    if world.distributed:
        parts = gather_objects((labels.tolist(), captions), world)
        labels = torch.tensor([lab for p in parts for lab in p[0]])
        captions = [c for p in parts for c in p[1]]
    return spikes, states, labels, captions, (lo, hi)


@torch.no_grad()
def embed_clips(
    model: SPKLIP, ds, device: torch.device, batch_size: int = 16, world: World | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Normalised clip embeddings ``[N, D]``, labels ``[N]`` and captions of a dataset.

    In a distributed run (``world``) each rank embeds one contiguous part of the clips and every rank
    gets all of them back in dataset order (a clip's embedding does not depend on its batch in eval mode)."""
    batch_size = check_positive_int(batch_size, "batch_size")
    world = world or World()
    model.eval()
    source = ds
    if world.distributed:
        lo, hi = split_bounds(len(ds), world)
        source = torch.utils.data.Subset(ds, range(lo, hi))
    feats, labels, captions = [], [], []
    for batch in _loader(source, batch_size, False, 0):
        f = model.encode_spikes(batch["spikes"].to(device))
        feats.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu())
        labels.append(batch["label"])
        captions += list(batch["caption"])
    if not world.distributed:
        return torch.cat(feats), torch.cat(labels), captions
    mine = (
        torch.cat(feats) if feats else torch.zeros(0, model.cfg.embed_dim),
        torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
    )
    parts = gather_objects((mine, captions), world)
    return (torch.cat([p[0][0] for p in parts]), torch.cat([p[0][1] for p in parts]), [c for p in parts for c in p[1]])


@torch.no_grad()
def embed_texts(model: SPKLIP, tokenizer: SpikeTextTokenizer, texts: list[str], device: torch.device) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(texts), 64):
        tokens = tokenizer.encode(texts[i : i + 64], model.cfg.text.context_length).to(device)
        out.append(torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1).cpu())
    return torch.cat(out)


def evaluate_model(
    model: SPKLIP,
    tokenizer: SpikeTextTokenizer,
    ds,
    device: torch.device,
    batch_size: int = 16,
    embedded: tuple | None = None,
) -> dict:
    """Zero-shot class accuracy against class prompts, and text-to-video retrieval.

    Besides the figures (``top1``, ``top5``, ``R@1``, ``R@5``, ``R@10``), ``intervals``
    holds each one's :func:`~spklip_energy.stats.accuracy_summary` (95 % Wilson
    interval over the clips) and ``per_clip`` the outcomes behind them: the clip
    ids (paths relative to the dataset folder) and, per figure, one ``'0'``/``'1'``
    per clip in the same order, from which paired tests between models are computed.

    ``embedded``: the clips' ``(embeddings, labels, captions)`` as :func:`embed_clips` returns them,
    when they are already known (a locked visual tower's do not change between epochs).
    """
    from spklip_energy.stats import accuracy_summary, encode_hits

    clips, labels, captions = embedded if embedded is not None else embed_clips(model, ds, device, batch_size)
    prompts = embed_texts(model, tokenizer, ds.class_prompts, device)
    cls = clips @ prompts.T
    hits = topk_hits(cls, labels, (1, 5))
    queries = embed_texts(model, tokenizer, captions, device)
    hits |= retrieval_hits(queries @ clips.T, captions, (1, 5, 10))
    ids = list(ds.clip_ids)
    if len(ids) != len(captions):
        raise ConfigError(f"the dataset names {len(ids)} clips but {len(captions)} were evaluated")
    intervals = {key: accuracy_summary(h) for key, h in hits.items()}
    return {
        **{key: s["value"] for key, s in intervals.items()},
        "intervals": intervals,
        "per_clip": {"ids": ids} | {key: encode_hits(h) for key, h in hits.items()},
        "clips": len(captions),
        "chance_top1": 1 / len(ds.classes),
        "chance_R@5": chance_recall(len(captions), 5),
        "confusion": confusion_matrix(cls, labels, len(ds.classes)).tolist(),
        "classes": list(ds.classes),
        "method": "zero-shot: each clip matched against the text embeddings of the class prompts",
    }


class LockedFeatures:
    """Features of a locked visual tower (parameters frozen, eval mode), computed once per clip and flip
    state and then reused: during locked-image tuning the tower's output for a clip never changes, so
    every epoch after the first needs no visual forward pass. Exact: in eval mode a clip's features do
    not depend on the batch it comes in."""

    def __init__(self, model: SPKLIP, device: torch.device) -> None:
        self.model, self.device = model, device
        self.store: dict[tuple, torch.Tensor] = {}
        self.computed = 0

    @torch.no_grad()
    def __call__(self, spikes: torch.Tensor, keys: list[tuple]) -> torch.Tensor:
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        if missing:
            feats = self.model.encode_spikes(spikes[missing].to(self.device))
            for i, row in zip(missing, feats, strict=True):
                self.store[keys[i]] = row.detach().clone()
            self.computed += len(missing)
        return torch.stack([self.store[k] for k in keys])


def _clip_keys(batch: dict, states: list, n: int) -> list[tuple]:
    """One key per clip of a batch: its dataset index and flip state (what a cached tower's features
    depend on)."""
    return [(int(i), st) for i, st in zip(batch["index"], states or [()] * n, strict=True)]


def _optimizer_step(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    params: list,
    grad_clip: float,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Backward, clip the gradient norm of ``params``, step (through the AMP scaler when given)."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()


class _Classifier(torch.nn.Module):
    """The visual encoder with a cosine classifier over the global batch: one module call per step, which
    is what DistributedDataParallel wraps. Returns this rank's embeddings and the global batch's logits."""

    def __init__(self, visual: torch.nn.Module, head: torch.nn.Parameter, world: World) -> None:
        super().__init__()
        self.visual, self.head, self.world = visual, head, world

    def forward(self, spikes: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.visual(spikes)
        f = torch.nn.functional.normalize(gather_rows(emb.float(), self.world), dim=-1)
        return emb, scale * f @ torch.nn.functional.normalize(self.head, dim=-1).T


class _Towers(torch.nn.Module):
    """One contrastive training step's forward as one module call (what DistributedDataParallel wraps):
    the global batch's clip and text features (gathered from every rank), the logit scale, and the
    class-prompt features when asked for."""

    def __init__(self, model: SPKLIP, locked: LockedFeatures | None, world: World) -> None:
        super().__init__()
        self.model, self.locked, self.world = model, locked, world

    def forward(
        self, spikes: torch.Tensor, keys: list[tuple], tokens: torch.Tensor, prompt_tokens: torch.Tensor | None
    ):
        m = self.model
        if self.locked is not None:
            out = SPKLIPOutput(self.locked(spikes, keys), m.encode_text(tokens), m.logit_scale())
        else:
            out = m(spikes.to(tokens.device), tokens)
        prompts = m.encode_text(prompt_tokens) if prompt_tokens is not None else None
        return (
            gather_rows(out.spike_features, self.world),
            gather_rows(out.text_features, self.world),
            out.logit_scale,
            prompts,
        )


def _parallel(module: torch.nn.Module, world: World, dev: torch.device) -> torch.nn.Module:
    """``module`` under DistributedDataParallel in a distributed run (BatchNorm statistics of the global
    batch, :func:`~spklip_energy.distributed.sync_batchnorm`), else itself."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    sync_batchnorm(module)
    # static graph: every step of a run uses the same parameters (parameters a variant never uses are
    # allowed); buffers (BatchNorm statistics) are equal on every rank already, from the synchronised
    # statistics, and are synchronised once when DDP starts
    import inspect

    sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(
        module, device_ids=[dev.index] if dev.type == "cuda" else None, static_graph=True, **sync
    )


def pretrain_visual(
    model: SPKLIP,
    train_ds,
    val_ds,
    tokenizer: SpikeTextTokenizer,
    cfg: SPKLIPConfig,
    dev: torch.device,
    flips: list,
    progress: Progress | None = None,
    teacher=None,
    world: World | None = None,
    precision: str = "fp32",
) -> dict:
    """Supervised pre-training of the visual encoder on the training labels.

    A cosine classifier with free class vectors (scale 1/0.07, as CLIP's initial
    temperature), cross-entropy, the configured flips, ``train.pretrain_epochs``
    epochs with the preset's optimiser and schedule. With ``train.lock_visual`` the
    contrastive stage then trains only the text side against this locked tower,
    as LiT (Zhai et al., 2022) does with a supervised image model. With a ``teacher``
    (:class:`~spklip.distill.Teacher`) its distillation terms are added to the loss.
    In a distributed run (``world``) every rank computes the loss of the global batch from gathered
    embeddings (:mod:`spklip_energy.distributed`).
    Returns what it measured: per epoch the loss and the validation accuracy of the classifier.
    """
    world = world or World()
    seed = cfg.train.seed
    g = torch.Generator().manual_seed(seed + 17)
    head = torch.nn.Parameter((torch.randn(len(train_ds.classes), cfg.embed_dim, generator=g) * 0.1).to(dev))
    params = list(model.visual.parameters()) + [head]
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, betas=tuple(cfg.train.betas), weight_decay=cfg.train.weight_decay)
    classifier = _parallel(_Classifier(model.visual, head, world), world, dev)
    scaler = grad_scaler(precision, dev)
    epochs = cfg.train.pretrain_epochs
    scale = 1 / 0.07
    history = []
    for epoch in range(epochs):
        model.visual.train()
        flip_rng = torch.Generator().manual_seed(seed * 1000 + 500 + epoch)
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        batches, steps = _train_batches(train_ds, cfg.train.batch_size, seed * 1000 + 500 + epoch, world)
        for step, (batch, size) in enumerate(batches):
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, epoch, step, steps, epochs)
            spikes, states, labels, _, _ = _global_view(batch, size, flips, flip_rng, world)
            with autocast(precision, dev):
                emb, logits = classifier(spikes.to(dev), scale)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels.to(dev))
                if teacher is not None:
                    targets = gather_rows(
                        teacher.targets(spikes, _clip_keys(batch, states, len(spikes))), world, differentiable=False
                    )
                    loss = loss + teacher.loss_from(gather_rows(emb, world), targets)
            _check_finite_loss(
                loss,
                "pre-training of the visual encoder",
                epoch + 1,
                step + 1,
                steps,
                opt.param_groups[0]["lr"],
                "nothing was written",
            )
            _optimizer_step(loss, opt, params, cfg.train.grad_clip, scaler)
            seen += len(labels)
            loss_sum += float(loss.detach()) * len(labels)
            if progress:
                progress(
                    {
                        "epoch": epoch + 1,
                        "epochs": epochs,
                        "step": step + 1,
                        "steps": steps,
                        "loss": float(loss.detach()),
                        "clips_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                        "stage": "pretrain",
                    }
                )
        _check_finite_weights(
            model.visual,
            "pre-training of the visual encoder",
            epoch + 1,
            opt.param_groups[0]["lr"],
            "nothing was written",
        )
        clips, labels, _ = embed_clips(model, val_ds, dev, world=world)
        acc = float(
            (clips @ torch.nn.functional.normalize(head.detach().cpu(), dim=-1).T).argmax(1).eq(labels).float().mean()
        )
        history.append({"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "val_top1": acc})
    opt.zero_grad(set_to_none=True)  # no stale gradients may reach the next stage's clipping
    return {"epochs": epochs, "method": "supervised cosine classifier on the training labels", "history": history}


def _init_from(model: SPKLIP, init: str | os.PathLike) -> tuple[SpikeTextTokenizer, dict]:
    """Copy every tensor of ``init`` whose name, shape and layer type match into ``model``."""
    src = load_spklip(init)
    if src.model.cfg.text != model.cfg.text:
        raise ConfigError(f"{init}: its text tower differs from this preset's; --init needs the same text config")
    own = model.state_dict()

    def same_layer(key: str) -> bool:  # the owning modules must be of one type, not just share a name
        path = key.rsplit(".", 1)[0]
        try:
            return type(src.model.get_submodule(path)) is type(model.get_submodule(path))
        except AttributeError:
            return False

    take = {k: v for k, v in src.model.state_dict().items() if k in own and own[k].shape == v.shape and same_layer(k)}
    if model.cfg.front_end == "spiking" and src.model.cfg.front_end == "ann":
        # the ANN front end's convolutions into their spiking twins
        from fsve.hsfe import ann_twin

        prefix = "visual.hsfe."
        for k, v in src.model.state_dict().items():
            twin = ann_twin(k[len(prefix) :]) if k.startswith(prefix) else None
            if twin is not None and own.get(prefix + twin, v.new_empty(0)).shape == v.shape:
                take[prefix + twin] = v
    if not take:
        raise ConfigError(f"{init}: no weight matches this model (different preset?)")
    model.load_state_dict(take, strict=False)
    parts = sorted(
        {
            ".".join(k.split(".")[: 3 if k.startswith("visual.starnet.") else 2 if k.startswith("visual.") else 1])
            for k in take
        }
    )
    return src.tokenizer, {
        "from": str(Path(init).resolve()),
        "kind": src.checkpoint.kind,
        "tensors": len(take),
        "parts": parts,
    }


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    history: list[dict]
    resumed_from_epoch: int


def _lr_at(cfg: SPKLIPConfig, epoch: int, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Learning rate: linear warm-up, then constant or cosine decay to 0 at the last step."""
    warm = cfg.train.warmup_epochs * steps_per_epoch
    done = epoch * steps_per_epoch + step
    if warm and done < warm:
        return cfg.train.lr * (done + 1) / warm
    if cfg.train.schedule == "cosine":
        total = max(epochs * steps_per_epoch - warm, 1)
        return cfg.train.lr * 0.5 * (1 + math.cos(math.pi * min(done - warm, total) / total))
    return cfg.train.lr


def pair_texts(
    captions: list[str], labels: list[int], prompts: list[str], mix: float, generator: torch.Generator
) -> tuple[list[str], torch.Tensor]:
    """The text of each clip in a batch: its caption, or with probability ``mix`` its class
    prompt; plus ids that are equal exactly where texts are equal (soft contrastive targets)."""
    use_prompt = (torch.rand(len(captions), generator=generator) < mix).tolist() if mix > 0 else [False] * len(captions)
    texts = [prompts[lab] if p else cap for cap, lab, p in zip(captions, labels, use_prompt, strict=True)]
    ids: dict[str, int] = {}
    return texts, torch.tensor([ids.setdefault(t, len(ids)) for t in texts])


def _write_metrics(run: Path, history: list[dict]) -> None:
    with atomic_path(run / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    from reports.plots import training_curves_png

    png = training_curves_png(history)
    with atomic_path(run / "curves.png") as tmp:
        tmp.write_bytes(png)


def _same_data(stored: dict, requested: str | os.PathLike) -> bool:
    """Whether ``--data requested`` names the dataset a run recorded (its source text or its path)."""
    builtin = str(requested) in BUILTIN_DATA
    if builtin and "source" in stored:
        return str(requested) == stored["source"]
    path = stored.get("path")
    if not isinstance(path, str):
        return False
    try:
        return Path(resolve_data(requested)).resolve() == Path(path).resolve()
    except (OSError, RuntimeError):
        return False


def _resume_conflicts(loaded, last: Path, cfg: SPKLIPConfig | None, data, init) -> None:
    """Refuse a --resume whose requested config, data or --init differ from the run's own."""
    if cfg is not None:
        diffs = config_differences(loaded.model.cfg, cfg)
        if diffs:
            key, ran, asked = diffs[0]
            more = f"; {len(diffs) - 1} more field(s) differ" if len(diffs) > 1 else ""
            option = {"model": "--model", "preset": "--preset", "train.seed": "--seed"}.get(key, f"--set {key}")
            raise ConfigError(
                f"{last}: --resume continues the run with the config it was started with, and the requested "
                f"one differs ({option}: the run has {ran!r}, requested {asked!r}{more}); repeat the run's "
                "options, or choose a new --out"
            )
    stored = loaded.card.get("data", {})
    if data is not None and not _same_data(stored, data):
        raise ConfigError(
            f"{last}: --resume continues the run on its own data {stored.get('path')!r}, "
            f"but --data {str(data)!r} was requested; drop --data or give the same one"
        )
    if init is not None:
        began = loaded.card.get("init", {}).get("from")
        if not isinstance(began, str | None):
            raise CheckpointError(f"{last}: its card's init.from is {began!r}, not a checkpoint path")
        if began is None or Path(began).resolve() != Path(init).resolve():
            raise ConfigError(
                f"{last}: --init {str(init)!r} cannot change a run being resumed "
                f"(it started from {began or 'fresh weights'!r})"
            )


def _resume_state(loaded, last: Path) -> tuple[list[dict], int]:
    """The history and the finished-epoch counter of a run's card (checked)."""
    train = loaded.card.get("train", {})
    history = train.get("history", [])
    epoch = train.get("epoch", 0)
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise CheckpointError(f"{last}: its card's train.history is not a list of objects")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"{last}: its card's train.epoch is {epoch!r}, not a count of finished epochs")
    path = loaded.card.get("data", {}).get("path")
    if path is not None and not isinstance(path, str):
        raise CheckpointError(f"{last}: its card's data.path is {path!r}, not a path")
    return list(history), epoch


def train(
    cfg: SPKLIPConfig | None,
    data: str | os.PathLike | None,
    run_dir: str | os.PathLike,
    *,
    epochs: int | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: Progress | None = None,
    data_progress=None,
    init: str | os.PathLike | None = None,
    overrides: dict | None = None,
    teacher: str | os.PathLike | None = None,
    world: World | None = None,
    precision: str = "auto",
) -> TrainResult:
    """Train SPKLIP; one atomic checkpoint per epoch (``run_dir/last.pt``), metrics and curves.

    ``epochs``: the total number of epochs (``None``: the config's ``train.epochs``; when resuming,
    the total the run was started with).
    ``data``: ``builtin``, a dataset folder or manifest (``None``: ``builtin``, or the run's own
    data when resuming).

    ``init``: a trained SPKLIP checkpoint (any variant) to start from: its tokenizer,
    and every weight whose name, shape and layer type match (for a spiking variant started from
    the ANN: the HSFE front end, the text tower and the temperature).

    ``teacher``: a trained SPKLIP checkpoint to distil from (:mod:`spklip.distill`,
    weights ``train.distill_*``), in the pre-training and in any stage that trains the visual encoder;
    it must read the same clips and share the student's text tower and tokenizer.

    With ``resume`` the run continues from ``run_dir/last.pt``: weights, optimiser,
    RNG state, history and the epoch counter, so at most the unfinished epoch is lost.
    Its config comes from the checkpoint; a ``cfg``, ``data`` or ``init`` that differs from
    the run's is refused (pass ``None`` to take the run's). ``overrides`` (``--set`` style keys,
    resume only, with ``cfg=None``) are checked against the run's config the same way: only what
    the user gave is compared.

    A NaN or infinite loss stops training with a :class:`DivergedError` before it reaches the
    weights; the checkpoint of the last finished epoch stays as it was.

    ``world`` (:func:`~spklip_energy.distributed.init_world`, under torchrun): DistributedDataParallel
    over its ranks on the global batch of ``train.batch_size`` clips, BatchNorm statistics of the global
    batch, validation split over the ranks; only rank 0 writes and reports progress. The run computes the
    one-process run's loss (within floating-point reordering; tests/test_distributed.py).

    ``precision`` (:mod:`spklip_energy.precision`): ``auto`` (fp16 with loss scaling on CUDA, else fp32),
    ``fp32``, ``bf16`` (CPU or CUDA) or ``fp16`` (CUDA).
    """
    world = world or World()
    if not world.main:
        progress = data_progress = None
    if epochs is not None:
        epochs = check_positive_int(epochs, "epochs")
    if cfg is not None and not isinstance(cfg, SPKLIPConfig):
        raise ConfigError(f"train expects a SPKLIPConfig, got {type(cfg).__name__}")
    run = Path(run_dir)
    dev = pick_device(device)
    precision = resolve_precision(precision, dev)
    last = run / "last.pt"
    start_ = (
        _resume_run(last, cfg, data, init, teacher, overrides)
        if resume
        else _new_run(run, last, cfg, overrides, data, teacher)
    )
    cfg, data, teacher, loaded = start_.cfg, start_.data, start_.teacher, start_.loaded
    history, start = start_.history, start_.start
    if epochs is None and resume:  # finish the run as planned: its own total, else the config's
        planned = loaded.card.get("train", {}).get("epochs")
        epochs = planned if isinstance(planned, int) and not isinstance(planned, bool) and planned >= 1 else None
    total_epochs = epochs if epochs is not None else cfg.train.epochs
    if world.main:  # a built-in dataset is generated once, by rank 0, before the others read it
        manifest, splits = load_splits(cfg, data, ("train", "val"), progress=data_progress)
    barrier(world)
    if not world.main:
        manifest, splits = load_splits(cfg, data, ("train", "val"))
    train_ds, val_ds = splits["train"], splits["val"]
    init_record = None
    if resume:
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        model = build_spklip(cfg)
        if init is not None:
            tokenizer, init_record = _init_from(model, init)
        else:
            texts = train_ds.captions + train_ds.class_prompts
            tokenizer = SpikeTextTokenizer.train(texts, cfg.text.vocab_size)
    model.to(dev)
    teacher_obj = None
    if teacher is not None:
        from .distill import load_teacher

        teacher_obj = load_teacher(teacher, cfg, tokenizer, train_ds.class_prompts, dev)
    flips = dataset_flips(train_ds.manifest) if cfg.train.augment == "flip" else []
    pretrain_record = loaded.card.get("pretrain") if resume else None
    if not resume and cfg.train.pretrain_epochs > 0:
        pretrain_record = pretrain_visual(
            model,
            train_ds,
            val_ds,
            tokenizer,
            cfg,
            dev,
            flips,
            progress,
            teacher=teacher_obj,
            world=world,
            precision=precision,
        )
    if cfg.train.lock_visual:
        for p in model.visual.parameters():
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        trainable, lr=cfg.train.lr, betas=tuple(cfg.train.betas), weight_decay=cfg.train.weight_decay
    )
    if resume:
        restore_optimizer(opt, loaded.checkpoint)
        restore_rng(loaded.checkpoint)
    else:
        torch.manual_seed(cfg.train.seed)
    # absolute: a resume or an eval from another folder must find the same dataset, not one of the same name
    data_record = {"path": str(resolve_data(data).resolve()), "train_clips": len(train_ds), "val_clips": len(val_ds)}
    if not resume:
        data_record["source"] = str(data)
    elif "source" in loaded.card.get("data", {}):
        data_record["source"] = loaded.card["data"]["source"]
    card_base = {
        "data": data_record,
        **({"init": init_record} if init_record else {}),
        **({"teacher": teacher_obj.record()} if teacher_obj is not None else {}),
        **({"pretrain": pretrain_record} if pretrain_record else {}),
        "classes": list(train_ds.classes),
        "class_prompts": train_ds.class_prompts,
    }
    kept = (
        f"the checkpoint of the last finished epoch ({last}) is kept"
        if start or resume
        else "no epoch finished, so no checkpoint was written"
    )
    prompt_tokens = tokenizer.encode(list(train_ds.class_prompts), cfg.text.context_length).to(dev)
    locked = LockedFeatures(model, dev) if cfg.train.lock_visual else None
    loop = _Loop(
        cfg=cfg,
        model=model,
        tokenizer=tokenizer,
        train_ds=train_ds,
        val_ds=val_ds,
        dev=dev,
        world=world,
        precision=precision,
        opt=opt,
        trainable=trainable,
        scaler=grad_scaler(precision, dev),
        towers=_parallel(_Towers(model, locked, world), world, dev),
        locked=locked,
        teacher=teacher_obj,
        flips=flips,
        class_prompts=prompt_tokens if cfg.train.class_loss > 0 else None,
        progress=progress,
        total_epochs=total_epochs,
    )
    kernel = ""
    if loop.spiking:
        from fsve.neurons import lif_kernel

        kernel = lif_kernel(dev)
    for epoch in range(start, total_epochs):
        t0 = time.perf_counter()
        seen, loss_sum = _train_epoch(loop, epoch, kept)
        _check_finite_weights(model, "training", epoch + 1, opt.param_groups[0]["lr"], kept)
        train_s = time.perf_counter() - t0
        val, rates_summary = _validate_epoch(loop)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "val_top1": val["top1"],
            "val_top5": val["top5"],
            "val_R@1": val["R@1"],
            "val_R@5": val["R@5"],
            "logit_scale": float(model.logit_scale().detach()),
            "seconds": time.perf_counter() - t0,
            "clips_per_s": seen / max(time.perf_counter() - t0, 1e-9),
            "train_clips_per_s": seen / max(train_s, 1e-9),
            "device": dev.type,
            "precision": precision,
        }
        if world.distributed:  # the global batch's clips over the training time, and per process
            record["processes"] = world.size
            record["train_clips_per_s_per_process"] = seen / max(train_s, 1e-9) / world.size
        if loop.spiking:
            record["firing_rates"] = rates_summary
            record["lif_kernel"] = kernel
        history.append(record)
        card = {
            **card_base,
            "train": {
                "epoch": epoch + 1,
                "epochs": total_epochs,
                "history": history,
                "seed": cfg.train.seed,
                "device": dev.type,
                "precision": precision,
                **({"processes": world.size, "backend": world.backend} if world.distributed else {}),
            },
        }
        if world.main:  # one writer; the others wait so that no rank runs ahead of the checkpoint
            save_spklip(last, model, tokenizer, card, optimizer=opt)
            _write_metrics(run, history)
        barrier(world)
        kept = f"the checkpoint of the last finished epoch ({last}) is kept"
    return TrainResult(run, last, history, start)


@dataclass
class _Start:
    """Where a run starts: a new run's config, or a resumed run's checkpoint, history and epoch."""

    cfg: SPKLIPConfig
    data: str | os.PathLike
    teacher: str | os.PathLike | None
    loaded: object | None  # the resumed run's LoadedSPKLIP
    history: list[dict]
    start: int


def _resume_run(last: Path, cfg, data, init, teacher, overrides) -> _Start:
    """The run in ``last`` to continue; a requested config, data, --init or --teacher that differs is refused."""
    if not last.is_file():
        raise CheckpointError(f"{last}: no checkpoint to resume from")
    loaded = load_spklip(last)
    if loaded.checkpoint.kind not in ("spklip", "fsve-hybrid", "fsve-full"):
        raise CheckpointError(f"{last}: a {loaded.checkpoint.kind!r} checkpoint cannot be trained further")
    if overrides:
        if cfg is not None:
            raise ConfigError("train takes a cfg or overrides of the run's config, not both")
        cfg = apply_overrides(loaded.model.cfg, overrides)
    _resume_conflicts(loaded, last, cfg, data, init)
    began = loaded.card.get("teacher", {}).get("from") if isinstance(loaded.card.get("teacher"), dict) else None
    if teacher is not None and (began is None or Path(began).resolve() != Path(teacher).resolve()):
        raise ConfigError(
            f"{last}: --teacher {str(teacher)!r} cannot change a run being resumed (it was started with {began!r})"
        )
    cfg = loaded.model.cfg
    check_memory(TRAINING_MEMORY_FACTOR * module_nbytes(loaded.model), f"training the model of {last}", size_cause(cfg))
    history, start = _resume_state(loaded, last)
    data = loaded.card.get("data", {}).get("path", data if data is not None else "builtin")
    return _Start(cfg, data, began, loaded, history, start)


def _new_run(run: Path, last: Path, cfg, overrides, data, teacher) -> _Start:
    """A new run in ``run``, its model sized on the meta device before any data is read or memory taken."""
    if cfg is None or overrides:
        raise ConfigError("train needs a config for a new run (cfg=None and overrides only resume one)")
    if last.exists():
        raise ConfigError(f"{run}: already holds a run (pass --resume to continue it, or choose a new --out)")
    build_on_meta(lambda: build_spklip(cfg), f"training preset {cfg.preset!r}", size_cause(cfg), TRAINING_MEMORY_FACTOR)
    return _Start(cfg, "builtin" if data is None else data, teacher, None, [], 0)


@dataclass
class _Loop:
    """What every epoch of a run works with (built once by :func:`train`)."""

    cfg: SPKLIPConfig
    model: SPKLIP
    tokenizer: SpikeTextTokenizer
    train_ds: object
    val_ds: object
    dev: torch.device
    world: World
    precision: str
    opt: torch.optim.Optimizer
    trainable: list
    scaler: object
    towers: torch.nn.Module
    locked: LockedFeatures | None
    teacher: object | None
    flips: list
    class_prompts: torch.Tensor | None
    progress: Progress | None
    total_epochs: int
    val_embedded: torch.Tensor | None = None  # a locked tower's validation embeddings, computed once
    val_rates: dict | None = None

    @property
    def spiking(self) -> bool:
        return self.cfg.model != "spklip"


def _train_epoch(loop: _Loop, epoch: int, kept: str) -> tuple[int, float]:
    """One epoch of Eq. 6 (plus the class-prompt and distillation terms): the clips seen and their summed loss."""
    cfg, model, opt, dev, world = loop.cfg, loop.model, loop.opt, loop.dev, loop.world
    model.train()
    if cfg.train.lock_visual:
        model.visual.eval()  # a locked tower keeps its BatchNorm statistics too
    t0, seen, loss_sum = time.perf_counter(), 0, 0.0
    text_rng = torch.Generator().manual_seed(cfg.train.seed * 1000 + epoch + 1)
    flip_rng = torch.Generator().manual_seed(cfg.train.seed * 1000 + epoch + 7)
    batches, steps = _train_batches(loop.train_ds, cfg.train.batch_size, cfg.train.seed * 1000 + epoch, world)
    for step, (batch, size) in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, epoch, step, steps, loop.total_epochs)
        # flips and text pairing drawn for the whole global batch (the same on every rank)
        spikes, states, labels, captions, (lo, hi) = _global_view(batch, size, loop.flips, flip_rng, world)
        texts, text_ids = pair_texts(
            captions, labels.tolist(), loop.train_ds.class_prompts, cfg.train.prompt_mix, text_rng
        )
        tokens = loop.tokenizer.encode(texts[lo:hi], cfg.text.context_length).to(dev)
        keys = _clip_keys(batch, states, len(spikes))
        with autocast(loop.precision, dev):
            # features of the global batch: every term below is the global batch's loss
            clip_f, text_f, scale, prompt_f = loop.towers(spikes, keys, tokens, loop.class_prompts)
            loss = cfg.train.contrastive_weight * clip_loss(
                clip_f.float(), text_f.float(), scale, labels=text_ids.to(dev), soft=True
            )
            if cfg.train.class_loss > 0:
                loss = loss + cfg.train.class_loss * class_prompt_loss(
                    clip_f.float(), prompt_f.float(), scale, labels.to(dev)
                )
            if loop.teacher is not None and loop.locked is None:  # a locked tower has nothing left to learn
                targets = gather_rows(loop.teacher.targets(spikes, keys), world, differentiable=False)
                loss = loss + loop.teacher.loss_from(clip_f, targets)
        _check_finite_loss(loss, "training", epoch + 1, step + 1, steps, opt.param_groups[0]["lr"], kept)
        _optimizer_step(loss, opt, loop.trainable, cfg.train.grad_clip, loop.scaler)
        seen += size
        loss_sum += float(loss.detach()) * size
        if loop.progress:
            loop.progress(
                {
                    "epoch": epoch + 1,
                    "epochs": loop.total_epochs,
                    "step": step + 1,
                    "steps": steps,
                    "loss": float(loss.detach()),
                    "clips_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                }
            )
    return seen, loss_sum


def _validate_epoch(loop: _Loop) -> tuple[dict, dict | None]:
    """Validation figures after an epoch and, for a spiking model, its firing rates (a locked tower's
    embeddings and rates are computed once and reused)."""
    model, val_ds, dev = loop.model, loop.val_ds, loop.dev
    rates_summary = None
    if loop.locked is not None and loop.val_embedded is not None:
        val, rates_summary = (
            evaluate_model(model, loop.tokenizer, val_ds, dev, embedded=loop.val_embedded),
            loop.val_rates,
        )
    elif loop.spiking:
        from fsve.firing import FiringRates

        with FiringRates(model.visual) as rates:
            loop.val_embedded = embed_clips(model, val_ds, dev, world=loop.world)
        rates_summary = FiringRates.merged(gather_objects(rates.counts(), loop.world))
        val = evaluate_model(model, loop.tokenizer, val_ds, dev, embedded=loop.val_embedded)
    else:
        loop.val_embedded = embed_clips(model, val_ds, dev, world=loop.world)
        val = evaluate_model(model, loop.tokenizer, val_ds, dev, embedded=loop.val_embedded)
    if loop.locked is not None:
        loop.val_rates = rates_summary  # the locked tower fires the same in every epoch
    return val, rates_summary


def write_eval(
    ckpt_path: str | os.PathLike,
    data: str | os.PathLike | None,
    split: str = "test",
    device: str = "cpu",
    out_png: str | os.PathLike | None = None,
    world: World | None = None,
    precision: str = "fp32",
) -> dict:
    """Evaluate a checkpoint and record the results in its card (atomic rewrite).

    In a distributed run (``world``) the ranks embed one part of the clips each and every rank gets the
    whole result, equal to one process's; only rank 0 writes the card and the plot. ``precision``: as
    :func:`train`'s (the embeddings are compared in fp32).

    The card's ``eval`` holds what :func:`evaluate_model` returns (the confusion
    matrix last) with ``split`` and ``data``: the figures, their ``intervals`` and
    the ``per_clip`` outcomes as ``'0'``/``'1'`` strings with the clip ids, so that
    ``compare`` can pair two checkpoints evaluated on the same clips.
    """
    dev = pick_device(device)
    precision = resolve_precision(precision, dev)
    world = world or World()
    if not isinstance(split, str) or not split:
        raise ConfigError(f"split must be a split name such as 'test', got {split!r}")
    loaded = load_spklip(ckpt_path)
    cfg = loaded.model.cfg
    model = loaded.model.to(dev)
    src = data if data is not None else loaded.card.get("data", {}).get("path", "builtin")
    if not isinstance(src, (str, os.PathLike)):
        raise CheckpointError(f"{ckpt_path}: its card's data.path is {src!r}, not a path; pass --data")
    from spikedata.manifest import load_manifest

    if world.main:  # a built-in dataset is generated once
        resolve_data(src)
    barrier(world)
    manifest = load_manifest(resolve_data(src))
    ds = clips_for(cfg, manifest, split)
    with autocast(precision, dev):
        res = evaluate_model(model, loaded.tokenizer, ds, dev, embedded=embed_clips(model, ds, dev, world=world))
    res.update(split=split, data=str(src), precision=precision)
    if world.distributed:
        res["processes"] = world.size
    if not world.main:
        barrier(world)  # rank 0 writes the card; no rank returns before it is written
        return res
    if out_png is not None:
        from reports.plots import confusion_png

        png = confusion_png(
            np.array(res["confusion"]),
            res["classes"],
            f"zero-shot confusion ({split}, top-1 {100 * res['top1']:.1f} %)",
        )
        with atomic_path(out_png) as tmp:
            tmp.write_bytes(png)
    ck = loaded.checkpoint
    card = dict(ck.card)
    card["eval"] = {k: v for k, v in res.items() if k != "confusion"} | {"confusion": res["confusion"]}
    from spklip_energy.checkpoint import save_checkpoint

    save_checkpoint(ck.path, ck.state_dict, card)
    barrier(world)
    return res


def few_shot_modules(model: SPKLIP) -> list[str]:
    """Names of the modules few-shot adaptation trains (the final two layers of STAR-Net)."""
    if model.cfg.starnet.enabled:
        layers = model.visual.starnet.temporal.layers
        n = len(layers)
        return [f"visual.starnet.temporal.layers.{i}" for i in range(max(n - 2, 0), n)]
    return ["visual.starnet.proj"]


def adapt(
    ckpt_path: str | os.PathLike,
    data: str | os.PathLike,
    shots: list[int],
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> dict:
    """Few-shot adaptation (paper section 4.3): train only the final two layers of STAR-Net on
    ``k`` clips per class (class prompts as texts, text tower and temperature frozen), test on
    the remaining clips, for each ``k`` in ``shots``."""
    shots = check_int_list(shots, "shots", minimum=1)
    epochs = check_positive_int(epochs, "epochs")
    lr = check_positive_float(lr, "lr")
    seed = check_seed(seed, "seed")
    dev = pick_device(device)
    base = load_spklip(ckpt_path)
    from spikedata.manifest import load_manifest

    manifest = load_manifest(resolve_data(data))
    ds_all = clips_for(base.model.cfg, manifest, None)
    labels = np.array(ds_all.labels)
    results = []
    for k in shots:
        rng = np.random.default_rng([seed, k])
        train_idx, test_idx = [], []
        for c in range(len(ds_all.classes)):
            idx = rng.permutation(np.flatnonzero(labels == c))
            if len(idx) <= k:
                raise ConfigError(f"class {ds_all.classes[c]!r} has {len(idx)} clips; {k} shots leave none to test")
            train_idx += idx[:k].tolist()
            test_idx += idx[k:].tolist()
        loaded = load_spklip(ckpt_path)
        model, tok = loaded.model.to(dev), loaded.tokenizer
        trainable = few_shot_modules(model)
        for name, p in model.named_parameters():
            p.requires_grad = any(name.startswith(m + ".") for m in trainable)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        prompts = tok.encode(ds_all.class_prompts, model.cfg.text.context_length).to(dev)
        sub_train = torch.utils.data.Subset(ds_all, train_idx)
        sub_test = torch.utils.data.Subset(ds_all, test_idx)
        sub_test.classes, sub_test.class_prompts = ds_all.classes, ds_all.class_prompts
        before = _subset_accuracy(model, tok, sub_test, ds_all, dev)
        g = torch.Generator().manual_seed(seed)
        for ep in range(epochs):
            model.eval()  # frozen parts keep their BatchNorm statistics
            for name in trainable:
                model.get_submodule(name).train()
            for batch in DataLoader(sub_train, batch_size=16, shuffle=True, generator=g):
                spikes = batch["spikes"].to(dev)
                with torch.no_grad():
                    text = torch.nn.functional.normalize(model.encode_text(prompts), dim=-1)
                img = torch.nn.functional.normalize(model.encode_spikes(spikes), dim=-1)
                logits = model.logit_scale().detach() * img @ text.T
                loss = torch.nn.functional.cross_entropy(logits, batch["label"].to(dev))
                if not math.isfinite(float(loss.detach())):
                    raise DivergedError(
                        f"few-shot adaptation with {k} shots diverged: the loss became {float(loss.detach())} in "
                        f"epoch {ep + 1} (learning rate {lr:.3g}); lower --lr (e.g. --lr {lr / 10:.3g}); nothing "
                        "was written"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if progress:
                progress({"shots": k, "epoch": ep + 1, "epochs": epochs, "loss": float(loss)})
        after = _subset_accuracy(model, tok, sub_test, ds_all, dev)
        results.append(
            {
                "shots": k,
                "top1_before": before,
                "top1_after": after,
                "train_clips": len(train_idx),
                "test_clips": len(test_idx),
            }
        )
    return {"results": results, "trainable_modules": trainable, "data": str(data), "seed": seed, "epochs": epochs}


@torch.no_grad()
def _subset_accuracy(model, tok, subset, ds_all, dev) -> float:
    feats, labels, _ = embed_clips(model, subset, dev)
    prompts = embed_texts(model, tok, ds_all.class_prompts, dev)
    return topk_accuracy(feats @ prompts.T, labels, (1,))["top1"]
