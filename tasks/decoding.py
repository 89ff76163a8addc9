"""Turning model outputs into label ids, in NumPy alone so inference needs no TensorFlow.

Class 0 is "no character" for both heads: the CTC blank of `crnn`, the padding position of `cnn`.
"""
from __future__ import annotations

import numpy as np


def decode_per_position(probabilities: np.ndarray) -> list[list[int]]:
    """cnn head (batch, positions, classes): the most likely class per position, padding dropped."""
    best = np.asarray(probabilities).argmax(-1)
    return [[int(i) for i in row if i != 0] for row in best]


def decode_ctc_greedy(logits: np.ndarray) -> list[list[int]]:
    """crnn head (batch, time, classes): best path, repeats collapsed, blanks dropped."""
    best = np.asarray(logits).argmax(-1)
    decoded = []
    for row in best:
        keep = np.ones(len(row), dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        decoded.append([int(i) for i in row[keep] if i != 0])
    return decoded


def decode_output(arch: str, output: np.ndarray) -> list[list[int]]:
    """Label ids per image from the raw output of a model of architecture `arch`."""
    if arch == "cnn":
        return decode_per_position(output)
    if arch == "crnn":
        return decode_ctc_greedy(output)
    raise ValueError(f"unknown architecture {arch!r}")


def predict_dataset(model, dataset, arch: str) -> tuple[list[list[int]], list[list[int]]]:
    """(predicted ids, true ids) for every image of a batched (images, targets) dataset."""
    predicted, true = [], []
    for images, targets in dataset:
        predicted += decode_output(arch, model.predict_on_batch(images))
        targets = np.asarray(targets)
        ids = targets.argmax(-1) if arch == "cnn" else targets
        true += [[int(i) for i in row if i != 0] for row in ids]
    return predicted, true
