"""Quantization-clip-floor-shift activation (QCFS; Bu et al., ICLR 2022) and the short fine-tuning it needs.

QCFS replaces each ReLU of the layers to convert by

    y = λ/L · clip(floor(x·L/λ + 1/2), 0, L)

with a trainable threshold λ per layer and L quantisation levels. An IF neuron with
threshold λ, soft reset and an initial membrane potential of λ/2, driven by a constant
current x for T = L steps, emits exactly ``clip(floor(x·L/λ + 1/2), 0, L)`` spikes, so
a network fine-tuned with QCFS converts with its learned thresholds and loses little
at T ≈ L (the paper's Theorem 2: with the shift 1/2 the expected conversion error is
zero for any T). The floor's gradient is passed straight through, as in the authors' code.

spikingjelly 2.0 converts quantized activations only inside its Transformer recipes
(signed QCFS encoders for SpikeZIP/Qwen2); it has no trainable clip-floor-shift
activation for a CNN, hence this module. The conversion itself is spikingjelly's
``RateCodingRecipe`` with the learned λ as thresholds (:mod:`.calibrate`).

What is fine-tuned (:func:`finetune_visual`): the visual encoder (weights, BatchNorm and
every λ) against the **frozen** text tower, for ``epochs`` epochs on the train split, with

* the zero-shot classifier's cross-entropy (each clip against the class prompts' text
  embeddings, the model's own logit scale) and
* a cosine distillation term towards the un-quantized ANN's clip embedding (1 − cos),
  which keeps the embedding the text tower was trained against,

AdamW at ``lr`` (default a tenth of the ANN's training rate) with a cosine decay, the
ANN's weight decay (none on λ), the ANN's flips when it was trained with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from spklip_energy.errors import ConfigError
from spklip_energy.options import check_positive_int

from .layers import ConversionError

#: the most quantisation levels ``--levels`` accepts (a QCFS network is meant to convert at T ≈ L)
MAX_LEVELS = 256
DEFAULT_LEVELS = 8
#: attribute carrying a learned λ on the ``nn.ReLU`` that replaces a QCFS module before conversion
THRESHOLD_ATTR = "qcfs_threshold"


def check_levels(levels, name: str = "--levels") -> int:
    try:
        v = check_positive_int(levels, name)
    except ConfigError as exc:
        raise ConversionError(str(exc)) from None
    if v > MAX_LEVELS:
        raise ConversionError(f"{name} {v} is out of range: at most {MAX_LEVELS} quantisation levels")
    return v


class QCFS(nn.Module):
    """``λ/L · clip(floor(x·L/λ + 1/2), 0, L)``, λ trainable (straight-through floor)."""

    def __init__(self, levels: int, threshold: float) -> None:
        super().__init__()
        self.levels = check_levels(levels, "levels")
        if not (math.isfinite(float(threshold)) and float(threshold) > 0):
            raise ValueError(f"QCFS threshold must be finite and positive, got {threshold!r}")
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.threshold.abs().clamp_min(1e-6)  # a step may not push λ through zero
        z = x / lam * self.levels + 0.5
        z = z + (torch.floor(z) - z).detach()  # floor forward, identity backward
        return torch.clamp(z / self.levels, 0.0, 1.0) * lam

    def extra_repr(self) -> str:
        return f"levels={self.levels}, threshold={float(self.threshold.detach()):.4g}"


def activation_sites(units: Sequence[nn.Module]) -> list[tuple[nn.Module, str, nn.Module]]:
    """``(parent, attribute, module)`` of every ReLU or QCFS inside ``units``, in module order."""
    out = []
    for unit in units:
        for parent in unit.modules():
            for name, child in parent.named_children():
                if type(child) is nn.ReLU or isinstance(child, QCFS):
                    out.append((parent, name, child))
    return out


def _percentile_outputs(
    model_call: Callable[[torch.Tensor], object],
    sites,
    batches: Iterable[torch.Tensor],
    percentile: float,
    chunk_elements: int,
) -> list[float]:
    """The ``percentile`` of each site's output on the calibration batches (running average over chunks,
    momentum 0.1, as spikingjelly's ``VoltageHook``)."""
    from spikingjelly.activation_based.ann2snn.modules import VoltageHook

    hooks = [VoltageHook(momentum=0.1, mode=f"{percentile:g}%" if percentile < 100 else "Max").train() for _ in sites]
    handles = [
        m.register_forward_hook(lambda _m, _a, out, h=h: h(out)) for (_p, _n, m), h in zip(sites, hooks, strict=True)
    ]
    try:
        with torch.no_grad():
            for x in batches:
                per = max(x[:1].numel(), 1)
                step = max(chunk_elements // per, 1)
                for lo in range(0, x.shape[0], step):
                    model_call(x[lo : lo + step])
    finally:
        for h in handles:
            h.remove()
    return [max(float(h.scale), 1e-3) for h in hooks]


def quantize_activations(
    model: nn.Module,
    units: Sequence[nn.Module],
    levels: int,
    calib_batches: Iterable[torch.Tensor],
    run: Callable[[torch.Tensor], object],
    percentile: float,
    chunk_elements: int = 2**18,
) -> list[QCFS]:
    """Replace every ReLU of ``units`` by a :class:`QCFS` whose λ starts at the ReLU's ``percentile``-th
    output on the calibration clips (``run(batch)`` executes the model). In place; returns the QCFS modules."""
    sites = activation_sites(units)
    if not sites:
        raise ConversionError("the selected layers hold no ReLU to quantize")
    lams = _percentile_outputs(run, sites, calib_batches, percentile, chunk_elements)
    made = []
    for (parent, name, _m), lam in zip(sites, lams, strict=True):
        q = QCFS(levels, lam).to(next(model.parameters()).device)
        setattr(parent, name, q)
        made.append(q)
    return made


def to_relu(units: Sequence[nn.Module]) -> list[float]:
    """Put back an ``nn.ReLU`` for every QCFS of ``units``, carrying its learned λ (``qcfs_threshold``), so that
    spikingjelly's recipe (which matches ``nn.ReLU``) converts it with that threshold. Returns the λs."""
    out = []
    for unit in units:
        for parent in unit.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, QCFS):
                    lam = float(child.threshold.detach().abs().clamp_min(1e-6))
                    relu = nn.ReLU()
                    setattr(relu, THRESHOLD_ATTR, lam)
                    setattr(parent, name, relu)
                    out.append(lam)
    return out


def finetune_visual(
    model,
    tokenizer,
    train_ds,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    device: torch.device,
    seed: int,
    teacher: nn.Module | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Fine-tune ``model.visual`` (with its QCFS activations) against the frozen text tower; see the module doc.

    ``teacher``: the un-quantized visual encoder (frozen) for the distillation term. Returns what was measured:
    per epoch the mean loss and the train-batch top-1 of the zero-shot classifier.
    """
    from spklip.augment import dataset_flips, flip_batch
    from spklip.training import _check_finite_loss, _loader, _optimizer_step

    cfg = model.cfg
    epochs = check_positive_int(epochs, "--finetune-epochs")
    model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    lams = [p for n, p in model.visual.named_parameters() if n.endswith(".threshold")]
    rest = [p for n, p in model.visual.named_parameters() if not n.endswith(".threshold")]
    for p in lams + rest:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        [{"params": rest, "weight_decay": cfg.train.weight_decay}, {"params": lams, "weight_decay": 0.0}],
        lr=lr,
        betas=tuple(cfg.train.betas),
    )
    with torch.no_grad():
        model.eval()
        tokens = tokenizer.encode(list(train_ds.class_prompts), cfg.text.context_length).to(device)
        prompts = F.normalize(model.encode_text(tokens).float(), dim=-1)
        scale = model.logit_scale().detach().float()
    if teacher is not None:
        teacher = teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    flips = dataset_flips(train_ds.manifest) if cfg.train.augment == "flip" else []
    steps = math.ceil(len(train_ds) / batch_size)
    total, done, history = epochs * steps, 0, []
    torch.manual_seed(seed)
    for epoch in range(epochs):
        model.visual.train()
        rng = torch.Generator().manual_seed(seed * 1000 + 900 + epoch)
        seen, loss_sum, hits = 0, 0.0, 0
        for step, batch in enumerate(_loader(train_ds, batch_size, True, seed * 1000 + 900 + epoch)):
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * done / total))
            spikes, labels = batch["spikes"], batch["label"]
            if flips:
                spikes, labels, _ = flip_batch(spikes, labels, list(batch["caption"]), flips, rng)
            spikes, labels = spikes.to(device), labels.to(device)
            feats = F.normalize(model.visual(spikes).float(), dim=-1)
            logits = scale * feats @ prompts.T
            loss = F.cross_entropy(logits, labels)
            if teacher is not None:
                with torch.no_grad():
                    ref = F.normalize(teacher(spikes).float(), dim=-1)
                loss = loss + (1 - (feats * ref).sum(-1)).mean()
            _check_finite_loss(
                loss, "QCFS fine-tuning", epoch + 1, step + 1, steps, opt.param_groups[0]["lr"], "nothing was written"
            )
            _optimizer_step(loss, opt, lams + rest, cfg.train.grad_clip)
            seen += len(labels)
            loss_sum += float(loss.detach()) * len(labels)
            hits += int((logits.argmax(1) == labels).sum())
            done += 1
            if progress is not None:
                progress(done, total)
        history.append({"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "train_top1": hits / max(seen, 1)})
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "history": history,
        "objective": "zero-shot cross-entropy against the frozen class prompts + (1 - cos) to the ANN's embedding"
        if teacher is not None
        else "zero-shot cross-entropy against the frozen class prompts",
        "thresholds": [float(p.detach().abs()) for p in lams],
    }


__all__ = [
    "DEFAULT_LEVELS",
    "MAX_LEVELS",
    "QCFS",
    "THRESHOLD_ATTR",
    "activation_sites",
    "check_levels",
    "finetune_visual",
    "quantize_activations",
    "to_relu",
]
