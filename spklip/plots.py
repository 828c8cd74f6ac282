"""Figures of training and evaluation: learning curves, confusion matrix, accuracy vs shots."""

from __future__ import annotations

import numpy as np

from reports.plots import _plt, _png


def training_curves_png(history: list[dict]) -> bytes:
    """Training loss and validation accuracy / recall per epoch."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(ep, [h["train_loss"] for h in history], marker="o")
    a.set_xlabel("epoch")
    a.set_ylabel("contrastive loss (train)")
    for key, label in (
        ("val_top1", "val top-1 (zero-shot class)"),
        ("val_top5", "val top-5"),
        ("val_R@1", "val text→video R@1"),
        ("val_R@5", "val text→video R@5"),
    ):
        b.plot(ep, [100 * h[key] for h in history], marker="o", label=label)
    b.set_xlabel("epoch")
    b.set_ylabel("%")
    b.set_ylim(0, 100)
    b.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def confusion_png(cm: np.ndarray, classes: list[str], title: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels(classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def shots_png(results: list[dict], title: str) -> bytes:
    """Accuracy against shots per class (the paper's Fig. 4 analogue)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    k = [r["shots"] for r in results]
    ax.plot(k, [100 * r["top1_after"] for r in results], marker="o", label="adapted")
    ax.plot(k, [100 * r["top1_before"] for r in results], marker="x", linestyle="--", label="before adaptation")
    ax.set_xlabel("shots per class")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig)
