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


def encode_labels(cfg, store, assign_split=None) -> dict:
    """Stage 2: fix the alphabet and the split, and write the encoded manifest build_shards reads.

    cfg is a PipelineConfig and store an ObjectStore; returns the stage summary. `assign_split`, a
    function of a manifest entry, replaces the hash split (benchmarks use a published split). The
    manifest is streamed, twice at most: never held in memory.
    """
    import hashlib
    import json
    import tempfile
    from pathlib import Path

    from tasks.runs import read_stage_result, write_stage_result

    ingested = read_stage_result(store, cfg.run_key, "ingest")
    manifest = ingested["manifest"]
    alphabet = Alphabet(cfg.alphabet) if cfg.alphabet else Alphabet.from_labels(
        entry["label"] for entry in store.iter_jsonl(manifest))
    counts, lengths, splits = dict.fromkeys(SPLITS, 0), set(), hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="encode-") as tmp:
        local = Path(tmp) / "encoded.jsonl"
        with open(local, "w") as out:
            for entry in store.iter_jsonl(manifest):
                split = (assign_split(entry) if assign_split
                         else split_of(entry["sha256"], cfg.val_fraction, cfg.test_fraction))
                ids = alphabet.encode(entry["label"])
                counts[split] += 1
                lengths.add(len(ids))
                splits.update(f"{entry['sha256']}\t{split}\n".encode())
                out.write(json.dumps({"sha256": entry["sha256"], "ext": entry["ext"], "label": entry["label"],
                                      "ids": ids, "split": split}, sort_keys=True) + "\n")
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            raise LabelError(f"the {' and '.join(empty)} split(s) got no image out of {sum(counts.values())}: "
                             "ingest more images or change val_fraction/test_fraction")
        split_rule = splits.hexdigest() if assign_split else f"{cfg.val_fraction}|{cfg.test_fraction}"
        settings = f"{ingested['data_version']}|{alphabet.chars}|{split_rule}"
        encoding = hashlib.sha256(settings.encode()).hexdigest()[:16]
        encoded_key = f"encoded/{encoding}.jsonl"
        if not store.exists(encoded_key):
            store.upload_file(local, encoded_key)
    return write_stage_result(store, cfg.run_key, "encode_labels", {
        "data_version": ingested["data_version"], "encoding": encoding, "encoded": encoded_key,
        "alphabet": alphabet.chars, "num_classes": alphabet.num_classes, "max_length": max(lengths),
        "label_lengths": sorted(lengths), "splits": counts, "split_rule": split_rule,
    })
