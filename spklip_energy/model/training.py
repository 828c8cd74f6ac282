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

from ..atomic import atomic_path
from ..errors import CheckpointError, ConfigError
from ..options import pick_device
from .augment import dataset_flips, flip_batch
from .config import SPKLIPConfig
from .data import clips_for, load_splits, resolve_data
from .io import TRAIN_PREFIX, load_spklip, restore_optimizer, save_spklip
from .loss import class_prompt_loss, clip_loss
from .metrics import chance_recall, confusion_matrix, retrieval_recall, topk_accuracy
from .spklip import SPKLIP, build_spklip
from .tokenizer import SpikeTextTokenizer

Progress = Callable[[dict], None]


def _loader(ds, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=0, drop_last=False)


@torch.no_grad()
def embed_clips(model: SPKLIP, ds, device: torch.device, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Normalised clip embeddings ``[N, D]``, labels ``[N]`` and captions of a dataset."""
    model.eval()
    feats, labels, captions = [], [], []
    for batch in _loader(ds, batch_size, False, 0):
        f = model.encode_spikes(batch["spikes"].to(device))
        feats.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu())
        labels.append(batch["label"])
        captions += list(batch["caption"])
    return torch.cat(feats), torch.cat(labels), captions


@torch.no_grad()
def embed_texts(model: SPKLIP, tokenizer: SpikeTextTokenizer, texts: list[str], device: torch.device) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(texts), 64):
        tokens = tokenizer.encode(texts[i : i + 64], model.cfg.text.context_length).to(device)
        out.append(torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1).cpu())
    return torch.cat(out)


def evaluate_model(model: SPKLIP, tokenizer: SpikeTextTokenizer, ds, device: torch.device,
                   batch_size: int = 16) -> dict:
    """Zero-shot class accuracy against class prompts, and text-to-video retrieval."""
    clips, labels, captions = embed_clips(model, ds, device, batch_size)
    prompts = embed_texts(model, tokenizer, ds.class_prompts, device)
    cls = clips @ prompts.T
    acc = topk_accuracy(cls, labels, (1, 5))
    queries = embed_texts(model, tokenizer, captions, device)
    rec = retrieval_recall(queries @ clips.T, captions, (1, 5, 10))
    return {
        **acc,
        **rec,
        "clips": len(captions),
        "chance_top1": 1 / len(ds.classes),
        "chance_R@5": chance_recall(len(captions), 5),
        "confusion": confusion_matrix(cls, labels, len(ds.classes)).tolist(),
        "classes": list(ds.classes),
        "method": "zero-shot: each clip matched against the text embeddings of the class prompts",
    }


def _optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, params: list, grad_clip: float,
                    scaler: torch.amp.GradScaler | None = None) -> None:
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


def pretrain_visual(model: SPKLIP, train_ds, val_ds, tokenizer: SpikeTextTokenizer, cfg: SPKLIPConfig,
                    dev: torch.device, flips: list, progress: Progress | None = None) -> dict:
    """Supervised pre-training of the visual encoder on the training labels.

    A cosine classifier with free class vectors (scale 1/0.07, as CLIP's initial
    temperature), cross-entropy, the configured flips, ``train.pretrain_epochs``
    epochs with the preset's optimiser and schedule. With ``train.lock_visual`` the
    contrastive stage then trains only the text side against this locked tower,
    as LiT (Zhai et al., 2022) does with a supervised image model. Returns what
    it measured: per epoch the loss and the validation accuracy of the classifier.
    """
    seed = cfg.train.seed
    g = torch.Generator().manual_seed(seed + 17)
    head = torch.nn.Parameter((torch.randn(len(train_ds.classes), cfg.embed_dim, generator=g) * 0.1).to(dev))
    params = list(model.visual.parameters()) + [head]
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                            weight_decay=cfg.train.weight_decay)
    epochs = cfg.train.pretrain_epochs
    steps = math.ceil(len(train_ds) / cfg.train.batch_size)
    scale = 1 / 0.07
    history = []
    for epoch in range(epochs):
        model.visual.train()
        flip_rng = torch.Generator().manual_seed(seed * 1000 + 500 + epoch)
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        for step, batch in enumerate(_loader(train_ds, cfg.train.batch_size, True, seed * 1000 + 500 + epoch)):
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, epoch, step, steps, epochs)
            spikes, labels = batch["spikes"], batch["label"]
            if flips:
                spikes, labels, _ = flip_batch(spikes, labels, list(batch["caption"]), flips, flip_rng)
            f = torch.nn.functional.normalize(model.visual(spikes.to(dev)).float(), dim=-1)
            logits = scale * f @ torch.nn.functional.normalize(head, dim=-1).T
            loss = torch.nn.functional.cross_entropy(logits, labels.to(dev))
            _optimizer_step(loss, opt, params, cfg.train.grad_clip)
            seen += len(labels)
            loss_sum += float(loss.detach()) * len(labels)
            if progress:
                progress({"epoch": epoch + 1, "epochs": epochs, "step": step + 1, "steps": steps,
                          "loss": float(loss.detach()), "clips_per_s": seen / max(time.perf_counter() - t0, 1e-9),
                          "stage": "pretrain"})
        clips, labels, _ = embed_clips(model, val_ds, dev)
        acc = float((clips @ torch.nn.functional.normalize(head.detach().cpu(), dim=-1).T).argmax(1)
                    .eq(labels).float().mean())
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

    take = {k: v for k, v in src.model.state_dict().items()
            if k in own and own[k].shape == v.shape and same_layer(k)}
    if not take:
        raise ConfigError(f"{init}: no weight matches this model (different preset?)")
    model.load_state_dict(take, strict=False)
    parts = sorted({".".join(k.split(".")[:3 if k.startswith("visual.starnet.") else 2 if k.startswith("visual.")
                                else 1]) for k in take})
    return src.tokenizer, {"from": str(init), "kind": src.checkpoint.kind, "tensors": len(take), "parts": parts}


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


def pair_texts(captions: list[str], labels: list[int], prompts: list[str], mix: float,
               generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """The text of each clip in a batch: its caption, or with probability ``mix`` its class
    prompt; plus ids that are equal exactly where texts are equal (soft contrastive targets)."""
    use_prompt = (torch.rand(len(captions), generator=generator) < mix).tolist() if mix > 0 else [False] * len(captions)
    texts = [prompts[lab] if p else cap for cap, lab, p in zip(captions, labels, use_prompt, strict=True)]
    ids: dict[str, int] = {}
    return texts, torch.tensor([ids.setdefault(t, len(ids)) for t in texts])


def _write_metrics(run: Path, history: list[dict]) -> None:
    with atomic_path(run / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    from .plots import training_curves_png

    png = training_curves_png(history)
    with atomic_path(run / "curves.png") as tmp:
        tmp.write_bytes(png)


def train(
    cfg: SPKLIPConfig,
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    epochs: int | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: Progress | None = None,
    data_progress=None,
    init: str | os.PathLike | None = None,
) -> TrainResult:
    """Train SPKLIP; one atomic checkpoint per epoch (``run_dir/last.pt``), metrics and curves.

    ``init``: a trained SPKLIP checkpoint (any variant) to start from: its tokenizer,
    and every weight whose name, shape and layer type match (for a spiking variant started from
    the ANN: the HSFE front end, the text tower and the temperature).

    With ``resume`` the run continues from ``run_dir/last.pt``: weights, optimiser,
    RNG state, history and the epoch counter, so at most the unfinished epoch is lost.
    """
    run = Path(run_dir)
    dev = pick_device(device)
    last = run / "last.pt"
    if resume:
        if not last.is_file():
            raise CheckpointError(f"{last}: no checkpoint to resume from")
        loaded = load_spklip(last)
        cfg, tokenizer, model = loaded.model.cfg, loaded.tokenizer, loaded.model
        history = list(loaded.card.get("train", {}).get("history", []))
        start = int(loaded.card.get("train", {}).get("epoch", 0))
        data = loaded.card.get("data", {}).get("path", data)
    else:
        if last.exists():
            raise ConfigError(f"{run}: already holds a run (pass --resume to continue it, or choose a new --out)")
        history, start, loaded = [], 0, None
    total_epochs = epochs or cfg.train.epochs
    manifest, splits = load_splits(cfg, data, ("train", "val"), progress=data_progress)
    train_ds, val_ds = splits["train"], splits["val"]
    init_record = None
    if not resume:
        model = build_spklip(cfg)
        if init is not None:
            tokenizer, init_record = _init_from(model, init)
        else:
            texts = train_ds.captions + train_ds.class_prompts
            tokenizer = SpikeTextTokenizer.train(texts, cfg.text.vocab_size)
    model.to(dev)
    flips = dataset_flips(train_ds.manifest) if cfg.train.augment == "flip" else []
    pretrain_record = loaded.card.get("pretrain") if resume else None
    if not resume and cfg.train.pretrain_epochs > 0:
        pretrain_record = pretrain_visual(model, train_ds, val_ds, tokenizer, cfg, dev, flips, progress)
    if cfg.train.lock_visual:
        for p in model.visual.parameters():
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                            weight_decay=cfg.train.weight_decay)
    if resume:
        restore_optimizer(opt, loaded.checkpoint)
        rng = loaded.checkpoint.state_dict.get(f"{TRAIN_PREFIX}rng.torch")
        if rng is not None:
            torch.set_rng_state(rng)
    else:
        torch.manual_seed(cfg.train.seed)
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    steps = math.ceil(len(train_ds) / cfg.train.batch_size)
    card_base = {
        "data": {"path": str(resolve_data(data)), "train_clips": len(train_ds), "val_clips": len(val_ds)},
        **({"init": init_record} if init_record else {}),
        **({"pretrain": pretrain_record} if pretrain_record else {}),
        "classes": list(train_ds.classes),
        "class_prompts": train_ds.class_prompts,
    }
    run.mkdir(parents=True, exist_ok=True)
    prompt_tokens = tokenizer.encode(list(train_ds.class_prompts), cfg.text.context_length).to(dev)
    spiking = cfg.model != "spklip"
    kernel = ""
    if spiking:
        from ..fsve.neurons import lif_kernel

        kernel = lif_kernel(dev)
    for epoch in range(start, total_epochs):
        model.train()
        if cfg.train.lock_visual:
            model.visual.eval()  # a locked tower keeps its BatchNorm statistics too
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        text_rng = torch.Generator().manual_seed(cfg.train.seed * 1000 + epoch + 1)
        flip_rng = torch.Generator().manual_seed(cfg.train.seed * 1000 + epoch + 7)
        for step, batch in enumerate(_loader(train_ds, cfg.train.batch_size, True, cfg.train.seed * 1000 + epoch)):
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, epoch, step, steps, total_epochs)
            spikes, labels, captions = batch["spikes"], batch["label"], list(batch["caption"])
            if flips:
                spikes, labels, captions = flip_batch(spikes, labels, captions, flips, flip_rng)
            spikes = spikes.to(dev)
            texts, text_ids = pair_texts(captions, labels.tolist(), train_ds.class_prompts,
                                         cfg.train.prompt_mix, text_rng)
            tokens = tokenizer.encode(texts, cfg.text.context_length).to(dev)
            with torch.autocast(dev.type, enabled=use_amp):
                out = model(spikes, tokens)
                loss = cfg.train.contrastive_weight * clip_loss(
                    out.spike_features.float(), out.text_features.float(), out.logit_scale,
                    labels=text_ids.to(dev), soft=True)
                if cfg.train.class_loss > 0:
                    loss = loss + cfg.train.class_loss * class_prompt_loss(
                        out.spike_features.float(), model.encode_text(prompt_tokens).float(), out.logit_scale,
                        labels.to(dev))
            _optimizer_step(loss, opt, trainable, cfg.train.grad_clip, scaler)
            seen += len(spikes)
            loss_sum += float(loss.detach()) * len(spikes)
            if progress:
                progress({"epoch": epoch + 1, "epochs": total_epochs, "step": step + 1, "steps": steps,
                          "loss": float(loss.detach()), "clips_per_s": seen / max(time.perf_counter() - t0, 1e-9)})
        if spiking:
            from ..fsve.firing import FiringRates

            with FiringRates(model.visual) as rates:
                val = evaluate_model(model, tokenizer, val_ds, dev)
        else:
            val = evaluate_model(model, tokenizer, val_ds, dev)
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
            "device": dev.type,
        }
        if spiking:
            record["firing_rates"] = rates.summary()
            record["lif_kernel"] = kernel
        history.append(record)
        card = {**card_base, "train": {"epoch": epoch + 1, "epochs": total_epochs, "history": history,
                                       "seed": cfg.train.seed, "device": dev.type}}
        save_spklip(last, model, tokenizer, card, optimizer=opt)
        _write_metrics(run, history)
    return TrainResult(run, last, history, start)


def write_eval(ckpt_path: str | os.PathLike, data: str | os.PathLike | None, split: str = "test",
               device: str = "cpu", out_png: str | os.PathLike | None = None) -> dict:
    """Evaluate a checkpoint and record the results in its card (atomic rewrite)."""
    loaded = load_spklip(ckpt_path)
    cfg = loaded.model.cfg
    dev = pick_device(device)
    model = loaded.model.to(dev)
    src = data if data is not None else loaded.card.get("data", {}).get("path", "builtin")
    from ..data.manifest import load_manifest

    manifest = load_manifest(resolve_data(src))
    ds = clips_for(cfg, manifest, split)
    res = evaluate_model(model, loaded.tokenizer, ds, dev)
    res.update(split=split, data=str(src))
    if out_png is not None:
        from .plots import confusion_png

        png = confusion_png(np.array(res["confusion"]), res["classes"],
                            f"zero-shot confusion ({split}, top-1 {100 * res['top1']:.1f} %)")
        with atomic_path(out_png) as tmp:
            tmp.write_bytes(png)
    ck = loaded.checkpoint
    card = dict(ck.card)
    card["eval"] = {k: v for k, v in res.items() if k != "confusion"} | {"confusion": res["confusion"]}
    from ..checkpoint import save_checkpoint

    save_checkpoint(ck.path, ck.state_dict, card)
    return res


def few_shot_modules(model: SPKLIP) -> list[str]:
    """Names of the modules few-shot adaptation trains (the final two layers of STAR-Net)."""
    if model.cfg.starnet.enabled:
        layers = model.visual.starnet.temporal.layers
        n = len(layers)
        return [f"visual.starnet.temporal.layers.{i}" for i in range(max(n - 2, 0), n)]
    return ["visual.starnet.proj"]


def adapt(ckpt_path: str | os.PathLike, data: str | os.PathLike, shots: list[int], *, epochs: int = 30,
          lr: float = 1e-3, seed: int = 0, device: str = "cpu", progress: Progress | None = None) -> dict:
    """Few-shot adaptation (paper section 4.3): train only the final two layers of STAR-Net on
    ``k`` clips per class (class prompts as texts, text tower and temperature frozen), test on
    the remaining clips, for each ``k`` in ``shots``."""
    base = load_spklip(ckpt_path)
    dev = pick_device(device)
    from ..data.manifest import load_manifest

    manifest = load_manifest(resolve_data(data))
    ds_all = clips_for(base.model.cfg, manifest, None)
    labels = np.array(ds_all.labels)
    results = []
    for k in shots:
        if k < 1:
            raise ConfigError(f"--shots values must be positive, got {k}")
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
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if progress:
                progress({"shots": k, "epoch": ep + 1, "epochs": epochs, "loss": float(loss)})
        after = _subset_accuracy(model, tok, sub_test, ds_all, dev)
        results.append({"shots": k, "top1_before": before, "top1_after": after, "train_clips": len(train_idx),
                        "test_clips": len(test_idx)})
    return {"results": results, "trainable_modules": trainable, "data": str(data), "seed": seed, "epochs": epochs}


@torch.no_grad()
def _subset_accuracy(model, tok, subset, ds_all, dev) -> float:
    feats, labels, _ = embed_clips(model, subset, dev)
    prompts = embed_texts(model, tok, ds_all.class_prompts, dev)
    return topk_accuracy(feats @ prompts.T, labels, (1,))["top1"]
