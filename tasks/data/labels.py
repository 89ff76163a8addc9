"""Label encoding: the alphabet, label <-> integer ids, the tutorial's one-hot text2vec, the data split.

Id 0 means "no character" (the CTC blank, or an unused position of a shorter label); the alphabet's
characters are ids 1..len(alphabet).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "val", "test")


class LabelError(ValueError):
    """A label cannot be encoded with the alphabet; the message says which character."""


def check_label(label: str | None, cfg) -> str | None:
    """Why `label` is unusable under the alphabet and length rules of `cfg` (a PipelineConfig), or None."""
    if label is None:
        return "no label: the file is not listed in labels.csv"
    if not label:
        return "empty label"
    if len(label) > cfg.max_label_length:
        return f"label {label!r} is longer than max_label_length ({cfg.max_label_length})"
    if cfg.label_length and len(label) != cfg.label_length:
        return f"label {label!r} has {len(label)} characters, not the label_length of {cfg.label_length}"
    if any(not c.isprintable() or c.isspace() for c in label):
        return f"label {label!r} has spaces or unprintable characters"
    outside = sorted(set(label) - set(cfg.alphabet)) if cfg.alphabet else []
    if outside:
        return f"label {label!r} has characters outside the alphabet: {''.join(outside)!r}"
    return None


@dataclass(frozen=True)
class Alphabet:
    chars: str

    @classmethod
    def from_labels(cls, labels) -> "Alphabet":
        """The sorted set of characters used by `labels` (any iterable, read once)."""
        chars: set[str] = set()
        for label in labels:
            chars.update(label)
        return cls("".join(sorted(chars)))

    @property
    def num_classes(self) -> int:
        """Characters plus the "no character" class 0."""
        return len(self.chars) + 1

    def problem_with(self, label: str) -> str | None:
        """Why `label` cannot be encoded, or None if it can."""
        if not label:
            return "empty label"
        outside = sorted(set(label) - set(self.chars))
        if outside:
            return f"label {label!r} has characters outside the alphabet: {''.join(outside)!r}"
        return None

    def encode(self, label: str) -> list[int]:
        """Label -> ids 1..len(alphabet)."""
        problem = self.problem_with(label)
        if problem:
            raise LabelError(problem)
        return [self.chars.index(c) + 1 for c in label]

    def decode(self, ids) -> str:
        """Ids -> label; 0 ("no character") is skipped."""
        return "".join(self.chars[i - 1] for i in ids if i)


def text2vec(label: str, length: int, alphabet: Alphabet) -> np.ndarray:
    """The tutorial's one-hot label matrix, shape (length, num_classes); unused positions are class 0."""
    ids = alphabet.encode(label)
    if len(ids) > length:
        raise LabelError(f"label {label!r} is longer than {length} characters")
    vector = np.zeros((length, alphabet.num_classes), dtype=np.float32)
    vector[np.arange(length), ids + [0] * (length - len(ids))] = 1.0
    return vector


def vec2text(vector: np.ndarray, alphabet: Alphabet) -> str:
    """Inverse of text2vec (argmax per position)."""
    return alphabet.decode(np.asarray(vector).argmax(-1))


def split_of(sha256: str, val_fraction: float, test_fraction: float) -> str:
    """The split of an image, fixed by its content hash: it never moves from one run to the next."""
    position = int(sha256[:12], 16) / float(16 ** 12)
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"
