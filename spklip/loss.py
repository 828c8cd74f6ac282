r"""Spike-text contrastive learning (paper section 3.3, Eq. 6).

With L2-normalised spike features ``v`` and text features ``t`` and the scale
``s = exp(logit_scale)`` (``1/τ``), ``logits[i, j] = s · cos(v_i, t_j)`` and

.. math::

    \mathcal{L} = \tfrac{1}{2}\big(\mathrm{CE}(\text{logits}, y) + \mathrm{CE}(\text{logits}^\top, y)\big),
    \quad y = (0, 1, \dots, B-1).

This is the public code's loss; the paper's Eq. 6 writes the sum of the two
terms without the ``1/2``, which only doubles the loss (and its gradients).

Same-class pairs in a batch count as negatives, as in the public code. With
``soft=True`` and class ``labels``, the target of row ``i`` is instead spread
uniformly over every entry of the same class (an option, off by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spklip_energy.errors import ConfigError


class LogitScale(nn.Module):
    """Learnable log-temperature; ``forward()`` returns ``exp(min(log_scale, max_log_scale))``.

    ``log_scale`` starts at ``init`` (CLIP: ``ln(1/0.07)``). The clamp (CLIP's, at
    ``ln 100``) is absent from the public code; ``max_log_scale=None`` removes it.
    Above the clamp the gradient is zero.
    """

    def __init__(self, init: float, max_log_scale: float | None = None) -> None:
        super().__init__()
        self.max_log_scale = max_log_scale
        self.log_scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> torch.Tensor:
        value = self.log_scale
        if self.max_log_scale is not None:
            value = value.clamp(max=self.max_log_scale)
        return value.exp()

    def extra_repr(self) -> str:
        return f"max_log_scale={self.max_log_scale}"


def _check_features(spike_features: torch.Tensor, text_features: torch.Tensor) -> None:
    for name, f in (("spike_features", spike_features), ("text_features", text_features)):
        if f.dim() != 2:
            raise ConfigError(f"{name} must be [batch, embed_dim], found shape {list(f.shape)}")
    if spike_features.shape[1] != text_features.shape[1]:
        raise ConfigError(
            f"spike and text features must share embed_dim, found {spike_features.shape[1]} "
            f"and {text_features.shape[1]}"
        )


def contrastive_logits(
    spike_features: torch.Tensor, text_features: torch.Tensor, scale: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits_per_spike [N, M], logits_per_text [M, N])`` = ``scale`` · cosine similarities.

    ``scale`` is the already exponentiated temperature (what :class:`LogitScale` returns).
    """
    _check_features(spike_features, text_features)
    s = F.normalize(spike_features, dim=-1)
    t = F.normalize(text_features, dim=-1)
    logits_per_spike = scale * s @ t.T
    return logits_per_spike, logits_per_spike.T


def soft_targets(labels: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` targets: row ``i`` uniform over the entries with ``labels[i]``'s class."""
    same = (labels[:, None] == labels[None, :]).to(torch.float32)
    return same / same.sum(dim=1, keepdim=True)


def clip_loss(
    spike_features: torch.Tensor,
    text_features: torch.Tensor,
    scale: torch.Tensor | float,
    labels: torch.Tensor | None = None,
    soft: bool = False,
) -> torch.Tensor:
    """Symmetric cross entropy over the batch; pair ``i`` is spike ``i`` with text ``i``.

    ``labels`` (``[B]`` class ids) are used only when ``soft`` is true: then
    same-class pairs share the target mass instead of counting as negatives.
    """
    if spike_features.shape[0] != text_features.shape[0]:
        raise ConfigError(
            f"clip_loss needs as many texts as spike clips, found {spike_features.shape[0]} clips "
            f"and {text_features.shape[0]} texts"
        )
    logits_per_spike, logits_per_text = contrastive_logits(spike_features, text_features, scale)
    b = logits_per_spike.shape[0]
    if soft:
        if labels is None:
            raise ConfigError("clip_loss with soft=True needs the class labels of the batch")
        if labels.shape != (b,):
            raise ConfigError(f"clip_loss labels must have shape [{b}], found {list(labels.shape)}")
        target = soft_targets(labels.to(logits_per_spike.device)).to(logits_per_spike.dtype)
        # the same-class relation is symmetric, so both directions share the target
    else:
        target = torch.arange(b, device=logits_per_spike.device)
    return (F.cross_entropy(logits_per_spike, target) + F.cross_entropy(logits_per_text, target)) / 2


class ClipLoss(nn.Module):
    """:func:`clip_loss` as a module; ``soft`` is fixed at construction (default off)."""

    def __init__(self, soft: bool = False) -> None:
        super().__init__()
        self.soft = soft

    def forward(
        self,
        spike_features: torch.Tensor,
        text_features: torch.Tensor,
        scale: torch.Tensor | float,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return clip_loss(spike_features, text_features, scale, labels=labels, soft=self.soft)

    def extra_repr(self) -> str:
        return f"soft={self.soft}"


__all__ = ["ClipLoss", "LogitScale", "clip_loss", "contrastive_logits", "soft_targets"]


def class_prompt_loss(
    spike_features: torch.Tensor, prompt_features: torch.Tensor, logit_scale: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of each clip against the text embeddings of all class prompts.

    The zero-shot classifier that ``eval`` uses, trained directly (as action-CLIP
    fine-tuning does); an optional term (``train.class_loss``) beside Eq. 6, not
    part of the paper's objective.
    """
    s = F.normalize(spike_features, dim=-1)
    t = F.normalize(prompt_features, dim=-1)
    return F.cross_entropy(logit_scale * s @ t.T, labels)
