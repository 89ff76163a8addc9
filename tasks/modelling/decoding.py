"""Turning model outputs into label ids, in NumPy alone so inference needs no TensorFlow.

Class 0 is "no character" for every head: the CTC blank of `crnn`, the padding position of `cnn`.
"""
from __future__ import annotations

import numpy as np


def decode_per_position(probabilities: np.ndarray) -> list[list[int]]:
    """Per-position head (batch, positions, classes): the most likely class per position, padding dropped."""
    best = np.asarray(probabilities).argmax(-1)
    return [[int(i) for i in row if i != 0] for row in best]


def decode_ctc_greedy(logits: np.ndarray) -> list[list[int]]:
    """CTC head (batch, time, classes): best path, repeats collapsed, blanks dropped."""
    best = np.asarray(logits).argmax(-1)
    decoded = []
    for row in best:
        keep = np.ones(len(row), dtype=bool)
        keep[1:] = row[1:] != row[:-1]
        decoded.append([int(i) for i in row[keep] if i != 0])
    return decoded


def predict_dataset(model, dataset, decode) -> tuple[list[list[int]], list[list[int]]]:
    """(predicted ids, true ids) for every image of a batched (images, label ids) dataset; `decode`
    turns a batch of model outputs into ids."""
    predicted, true = [], []
    for images, ids in dataset:
        predicted += decode(model.predict_on_batch(images))
        true += [[int(i) for i in row if i != 0] for row in np.asarray(ids)]
    return predicted, true
