"""Evaluation metrics: zero-shot class accuracy and text-to-video retrieval.

* Class accuracy (as CLIP zero-shot classification): each clip's embedding is
  matched against the embeddings of the class prompts; top-k is whether the
  true class is among the k most similar prompts.
* Text-to-video retrieval (paper A.4): each clip's own caption is a query over
  all clips; Recall@k is the fraction of queries whose clip is among the k most
  similar. Clips with an identical caption are equally correct answers.

The ``*_hits`` functions give the per-clip (per-query) outcomes that intervals
and paired tests (:mod:`spklip_energy.stats`) are computed from; the aggregate
functions are their means.
"""

from __future__ import annotations

import numpy as np
import torch


def topk_hits(similarity: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, np.ndarray]:
    """Per clip, whether its true class is among the ``k`` most similar prompts.

    ``similarity [N, C]`` (clip x class), ``labels [N]`` -> ``{"top1": bool [N], "top5": bool [N]}``.
    """
    c = similarity.shape[1]
    order = similarity.argsort(dim=1, descending=True)
    truth = labels.to(order.device)[:, None]
    return {f"top{k}": (order[:, : min(k, c)] == truth).any(dim=1).cpu().numpy() for k in ks}


def _rate(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else float("nan")


def topk_accuracy(similarity: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """``similarity [N, C]`` (clip x class), ``labels [N]`` -> ``{"top1": ..., "top5": ...}``
    (the means of :func:`topk_hits`; nan for no clips)."""
    return {key: _rate(h) for key, h in topk_hits(similarity, labels, ks).items()}


def confusion_matrix(similarity: torch.Tensor, labels: torch.Tensor, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` of the arg-max prediction."""
    pred = similarity.argmax(dim=1)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels.cpu().numpy(), pred.cpu().numpy()), 1)
    return cm


def retrieval_hits(similarity: torch.Tensor, captions: list[str], ks=(1, 5, 10)) -> dict[str, np.ndarray]:
    """Per caption query, whether a right clip is among the ``k`` most similar.

    ``similarity [N, N]`` (query caption x clip); query ``i``'s answer is clip ``i``
    or any clip with the same caption. -> ``{"R@1": bool [N], ...}``.
    """
    n = similarity.shape[0]
    if len(captions) != n:
        raise ValueError(f"{len(captions)} captions for {n} queries")
    _, group = np.unique(np.asarray(captions, dtype=object), return_inverse=True)
    group = np.asarray(group).reshape(-1)
    order = similarity.argsort(dim=1, descending=True).cpu().numpy()
    return {f"R@{k}": (group[order[:, :k]] == group[:, None]).any(axis=1) if n else np.zeros(0, dtype=bool) for k in ks}


def retrieval_recall(similarity: torch.Tensor, captions: list[str], ks=(1, 5, 10)) -> dict[str, float]:
    """``similarity [N, N]`` (query caption x clip); query ``i``'s answer is clip ``i``
    (or any clip with the same caption). The means of :func:`retrieval_hits`; nan for no clips."""
    return {key: _rate(h) for key, h in retrieval_hits(similarity, captions, ks).items()}


def chance_recall(n: int, k: int) -> float:
    """Recall@k of a random ranking over ``n`` clips."""
    return min(k, n) / n if n else float("nan")
