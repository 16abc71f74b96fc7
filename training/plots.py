"""Figures people would rather look at than read: PNG files and TensorBoard images."""

from __future__ import annotations

import io
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes (for a file and for TensorBoard); closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def training_curves(history: List[Dict[str, float]]):
    """Loss and accuracy against step, train and validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "o-")):
            points = [(h["step"], h[prefix + metric]) for h in history if prefix + metric in h]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, label="validation" if prefix else "train")
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training curves")
    return fig


def filter_grid(kernel: np.ndarray):
    """First-layer filters (KH, KW, C, F) as a grid of images, each min-max scaled."""
    f_count = kernel.shape[3]
    cols = int(np.ceil(np.sqrt(f_count)))
    rows = int(np.ceil(f_count / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < f_count:
            f = kernel[:, :, :, i]
            f = (f - f.min()) / (f.max() - f.min() + 1e-12)
            ax.imshow(f[:, :, 0] if f.shape[2] == 1 else f[:, :, :3], cmap="gray",
                      interpolation="nearest")
    fig.suptitle("First-layer filters")
    return fig


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str]):
    """Counts with true class on rows, predicted on columns."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * n, 1 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    ax.set_title("Test confusion matrix")
    return fig


def sample_predictions(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                       class_names: Sequence[str]):
    """Images titled "pred (true)"; wrong predictions in red."""
    count = len(images)
    cols = min(count, 8)
    rows = int(np.ceil(count / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.6))
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < count:
            image = images[i]
            ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray")
            ok = predictions[i] == labels[i]
            ax.set_title(f"{class_names[predictions[i]]} ({class_names[labels[i]]})",
                         fontsize=7, color="black" if ok else "red")
    fig.suptitle("Predicted (true)")
    return fig


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int counts, rows true, columns predicted."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix
