"""Matplotlib figures of a run: confusion matrix and a grid of labelled test images."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def confusion_matrix_figure(
    matrix: torch.Tensor, class_names: Sequence[str], *, title: str = "Confusion matrix"
) -> Figure:
    """Counts with row-normalized colours (rows: true class, columns: predicted class)."""
    counts = matrix.detach().cpu().long()
    rates = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    fig, ax = plt.subplots(figsize=(8, 7), layout="constrained")
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    n = len(class_names)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = counts.diag().sum().item() / max(counts.sum().item(), 1)
    ax.set_title(f"{title} (accuracy {accuracy:.2%})")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                int(counts[i, j]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    return fig


def prediction_grid_figure(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor,
    class_names: Sequence[str],
    *,
    columns: int = 8,
) -> Figure:
    """Images with their true and predicted class; wrong predictions in red with a frame."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label, pred in zip(
        axes.flat, images, labels.tolist(), predictions.tolist(), strict=False
    ):
        ax.imshow(image.detach().float().cpu().squeeze(0).numpy(), cmap="gray")
        wrong = label != pred
        ax.set_title(
            f"{class_names[pred]}\n(true: {class_names[label]})" if wrong else class_names[pred],
            fontsize=7,
            color="red" if wrong else "black",
        )
        if wrong:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2)
    fig.suptitle("Test predictions (red: wrong)")
    fig.tight_layout()
    return fig
