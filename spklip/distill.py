"""Knowledge distillation from a trained SPKLIP (``train --teacher``), e.g. the ANN teaching an FSVE.

Two terms, each with its config weight (``train.distill_*``), added to whatever the stage
trains the visual encoder with (the supervised pre-training, or Eq. 6 when the tower is not
locked):

* **embeddings** (``train.distill_weight``): ``1 - cos(f_s, f_t)``, the cosine distance between
  the student's and the teacher's visual embeddings of the same clip, averaged over the batch;
* **class logits** (``train.distill_logits``, temperature ``tau`` = ``train.distill_temperature``):
  Hinton et al.'s ``tau^2 * KL(p_t || p_s)`` with ``p = softmax(z / tau)``, where both logits are
  taken against the teacher's class-prompt embeddings at the teacher's temperature,
  ``z = scale_t * norm(f) @ norm(P_t)^T``: the student learns to classify as the teacher does in the
  teacher's text space.

The teacher is frozen and in eval mode, so its embedding of a clip (and flip state) never
changes: it is computed once and reused (:class:`~spklip.training.LockedFeatures`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from spklip_energy.errors import ConfigError

from .config import SPKLIPConfig
from .io import LoadedSPKLIP, load_spklip
from .tokenizer import SpikeTextTokenizer


def embedding_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean of ``1 - cos`` between rows of ``student`` and ``teacher`` ``[B, D]``."""
    return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).mean()


def logit_distillation(
    student: torch.Tensor, teacher: torch.Tensor, prompts: torch.Tensor, scale: float, temperature: float
) -> torch.Tensor:
    """``tau^2 * KL(p_t || p_s)`` over the class prompts ``prompts [K, D]`` (see the module docstring)."""
    p = F.normalize(prompts, dim=-1)
    zs = scale * F.normalize(student, dim=-1) @ p.T
    zt = scale * F.normalize(teacher, dim=-1) @ p.T
    log_ps = F.log_softmax(zs / temperature, dim=-1)
    log_pt = F.log_softmax(zt / temperature, dim=-1)
    return temperature**2 * F.kl_div(log_ps, log_pt, log_target=True, reduction="batchmean")


@dataclass
class Teacher:
    """A loaded, frozen teacher and what distilling from it needs."""

    loaded: LoadedSPKLIP
    prompts: torch.Tensor  # the teacher's class-prompt embeddings [K, D]
    scale: float  # the teacher's logit scale
    features: object  # LockedFeatures over the teacher
    weight: float
    logits_weight: float
    temperature: float

    def loss(self, student: torch.Tensor, spikes: torch.Tensor, keys: list[tuple]) -> torch.Tensor:
        """The distillation terms for the student's embeddings ``student [B, D]`` of ``spikes``."""
        return self.loss_from(student, self.targets(spikes, keys))

    def targets(self, spikes: torch.Tensor, keys: list[tuple]) -> torch.Tensor:
        """The teacher's embeddings ``[B, D]`` of ``spikes`` (cached per clip key)."""
        return self.features(spikes, keys)

    def loss_from(self, student: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The distillation terms for ``student [B, D]`` against the teacher's ``targets [B, D]``."""
        t = targets.to(student.device).float()
        s = student.float()
        loss = self.weight * embedding_distance(s, t) if self.weight > 0 else s.new_zeros(())
        if self.logits_weight > 0:
            loss = loss + self.logits_weight * logit_distillation(
                s, t, self.prompts.to(s.device), self.scale, self.temperature
            )
        return loss

    def record(self) -> dict:
        return {
            "from": str(Path(self.loaded.checkpoint.path).resolve()),
            "kind": self.loaded.checkpoint.kind,
            "distill_weight": self.weight,
            "distill_logits": self.logits_weight,
            "distill_temperature": self.temperature,
        }


def check_teacher(loaded: LoadedSPKLIP, cfg: SPKLIPConfig, tokenizer: SpikeTextTokenizer, path: str) -> None:
    """Refuse a teacher that cannot teach this student: another input geometry, embedding size, text
    tower or tokenizer (the student's embeddings are compared with its own, in its text space)."""
    t = loaded.model.cfg
    if loaded.checkpoint.kind == "spklip-converted":
        raise ConfigError(f"--teacher {path}: a converted checkpoint; teach with the ANN it was converted from")
    if (t.frames, t.height, t.width) != (cfg.frames, cfg.height, cfg.width):
        raise ConfigError(
            f"--teacher {path}: it reads clips of {t.frames}x{t.height}x{t.width} frames, this "
            f"student {cfg.frames}x{cfg.height}x{cfg.width}"
        )
    if t.embed_dim != cfg.embed_dim:
        raise ConfigError(
            f"--teacher {path}: its embeddings have {t.embed_dim} dimensions, the student's {cfg.embed_dim}"
        )
    if t.text != cfg.text:
        raise ConfigError(f"--teacher {path}: its text tower differs from the student's")
    if loaded.tokenizer.to_json() != tokenizer.to_json():
        raise ConfigError(
            f"--teacher {path}: its tokenizer differs from the student's (start the student with "
            "--init from the teacher, or from a checkpoint with the same tokenizer)"
        )


def load_teacher(
    path: str | os.PathLike, cfg: SPKLIPConfig, tokenizer: SpikeTextTokenizer, prompts: list[str], device: torch.device
) -> Teacher:
    """Load and check ``path`` as the teacher of a student with ``cfg`` and ``tokenizer``; its class-prompt
    embeddings of ``prompts`` are computed once."""
    from .training import LockedFeatures  # training imports this module

    loaded = load_spklip(path)
    check_teacher(loaded, cfg, tokenizer, str(path))
    model = loaded.model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        tokens = loaded.tokenizer.encode(list(prompts), model.cfg.text.context_length).to(device)
        emb = model.encode_text(tokens).float()
        scale = float(model.logit_scale())
    tr = cfg.train
    return Teacher(
        loaded, emb, scale, LockedFeatures(model, device), tr.distill_weight, tr.distill_logits, tr.distill_temperature
    )


__all__ = ["Teacher", "check_teacher", "embedding_distance", "load_teacher", "logit_distillation"]
