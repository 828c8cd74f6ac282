"""Evaluation metrics: zero-shot class accuracy and text-to-video retrieval.

* Class accuracy (as CLIP zero-shot classification): each clip's embedding is
  matched against the embeddings of the class prompts; top-k is whether the
  true class is among the k most similar prompts.
* Text-to-video retrieval (paper A.4): each clip's own caption is a query over
  all clips; Recall@k is the fraction of queries whose clip is among the k most
  similar. Clips with an identical caption are equally correct answers.
"""

from __future__ import annotations

import numpy as np
import torch


def topk_accuracy(similarity: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """``similarity [N, C]`` (clip x class), ``labels [N]`` -> ``{"top1": ..., "top5": ...}``."""
    n, c = similarity.shape
    order = similarity.argsort(dim=1, descending=True)
    out = {}
    for k in ks:
        kk = min(k, c)
        hit = (order[:, :kk] == labels[:, None]).any(dim=1).float().mean().item() if n else float("nan")
        out[f"top{k}"] = hit
    return out


def confusion_matrix(similarity: torch.Tensor, labels: torch.Tensor, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` of the arg-max prediction."""
    pred = similarity.argmax(dim=1)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels.cpu().numpy(), pred.cpu().numpy()), 1)
    return cm


def retrieval_recall(similarity: torch.Tensor, captions: list[str], ks=(1, 5, 10)) -> dict[str, float]:
    """``similarity [N, N]`` (query caption x clip); query ``i``'s answer is clip ``i``
    (or any clip with the same caption)."""
    n = similarity.shape[0]
    groups: dict[str, list[int]] = {}
    for i, cap in enumerate(captions):
        groups.setdefault(cap, []).append(i)
    order = similarity.argsort(dim=1, descending=True).cpu().numpy()
    out = {}
    for k in ks:
        hits = 0
        for i in range(n):
            correct = set(groups[captions[i]])
            hits += any(j in correct for j in order[i, :k])
        out[f"R@{k}"] = hits / n if n else float("nan")
    return out


def chance_recall(n: int, k: int) -> float:
    """Recall@k of a random ranking over ``n`` clips."""
    return min(k, n) / n if n else float("nan")
