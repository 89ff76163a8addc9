"""Plots published with a model: training history and a gallery of test captchas."""
from __future__ import annotations

import io


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def history_plot(history: dict) -> bytes:
    """PNG with two panels: accuracy and val_accuracy, loss and val_loss, per epoch, with legends."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in zip(axes, ("accuracy", "loss")):
        for name in (metric, f"val_{metric}"):
            values = history.get(name)
            if values:
                axis.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.set_title(metric.capitalize())
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    return _png(figure)


def gallery_plot(samples: list[tuple], columns: int = 4, title: str = "") -> bytes:
    """PNG grid of (PIL image, true text, predicted text): right readings in green, wrong in red."""
    plt = _pyplot()
    rows = max(1, -(-len(samples) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 1.2 * rows + 0.4), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (image, true, predicted) in zip(axes.flat, samples):
        axis.imshow(image.convert("RGB"))
        right = true == predicted
        axis.set_title(f"true {true} / read {predicted}", color="green" if right else "red", fontsize=9)
    if title:
        figure.suptitle(title)
    return _png(figure)


def confusion_plot(confusion: dict[str, dict[str, int]], alphabet: str) -> bytes:
    """PNG heat map of per-character confusion: rows the true character, columns the one read;
    the last row and column ("∅") count characters added or missed."""
    import numpy as np

    plt = _pyplot()
    labels = list(alphabet) + [""]
    position = {c: i for i, c in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true, reads in confusion.items():
        for read, count in reads.items():
            if true in position and read in position:
                matrix[position[true], position[read]] += count
    size = max(4.0, 0.35 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    shown = axis.imshow(np.log1p(matrix), cmap="Blues")
    ticks = [c or "∅" for c in labels]
    axis.set_xticks(range(len(labels)), ticks, fontsize=8)
    axis.set_yticks(range(len(labels)), ticks, fontsize=8)
    axis.set_xlabel("read as")
    axis.set_ylabel("true character")
    axis.set_title("Character confusion on the test split (log scale)")
    figure.colorbar(shown, ax=axis, label="log(1 + count)")
    return _png(figure)
