"""Accuracy on synthetic captchas of other styles, through the pipeline with its default settings.

    python -m bench.styles [--count 6000] [--minutes 12] [--styles digits-rgb upper-grey-jpeg ...]

Each style is a `synthetic://` spec: its own image size (resized and padded to the model's 50x200),
label lengths, alphabet, colour mode and file format. Every image goes through ingest, encode_labels
(the default hash split: 70% train, 10% validation, 20% test), build_shards, train and evaluate.
Prints one JSON line per style (images, test size, full-captcha and character accuracy, training
time), then a summary line.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from bench.accuracy import train_and_score
from tasks.pipeline.config import PipelineConfig
from tasks.store import LocalStore

UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # the usual captcha set: no 0/O, 1/I
# Letters whose two cases differ in shape: the captcha package scales each glyph at random, so a
# c/C or s/S pair would be told apart by size alone, which no reader could do.
MIXED = "abdefghnqrtABDEFGHNQRT"
STYLES = {
    "digits-rgb-png-160x60-len4": "length=4&alphabet=0123456789&width=160&height=60&mode=rgb&format=png",
    "upper-grey-jpeg-200x70-len4-5": f"length=4-5&alphabet={UPPER}&width=200&height=70&mode=grey&format=jpeg",
    "mixedcase-rgba-png-240x80-len3-4": f"length=3-4&alphabet={MIXED}&width=240&height=80&mode=rgba&format=png",
}


def run_style(name: str, count: int, minutes: float, store: LocalStore, seed: int) -> dict:
    """Generate, train and evaluate one style in a store of its own; return its figures."""
    source = f"synthetic://?count={count}&seed={seed}&{STYLES[name]}"
    cfg = PipelineConfig(run_key=f"bench-style-{name}", source=source, store=store.uri, seed=seed,
                         max_train_minutes=minutes)
    started = time.perf_counter()
    figures = train_and_score(cfg, store)
    return {"style": name, "source": source, "images": count, **figures,
            "total_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", nargs="+", choices=sorted(STYLES), default=list(STYLES))
    parser.add_argument("--count", type=int, default=6000, help="images per style")
    parser.add_argument("--minutes", type=float, default=12.0, help="training time limit per style")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # the stages' lines, to stderr
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-styles-") as tmp:
        for name in args.styles:  # a store per style: a store's data set grows with every source ingested
            results.append(run_style(name, args.count, args.minutes, LocalStore(Path(tmp) / name), args.seed))
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"summary": "styles", "full_accuracy": {r["style"]: r["full_accuracy"] for r in results},
                      "min_full_accuracy": min(r["full_accuracy"] for r in results)}), flush=True)


if __name__ == "__main__":
    main()
