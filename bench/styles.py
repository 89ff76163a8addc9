"""The style suite: the pipeline's default settings on captchas of many styles, one table.

    python -m bench.styles [--train-images 1600] [--minutes 9] [--seeds 0] [--styles NAME ...]
                           [--real ../shared/datasets/wilhelmy_v2]

Each style is a `synthetic://` spec (see tasks.data.synthetic): its own image size, label lengths,
alphabet, colour mode, file format and drawing. Every style gets enough images for
`--train-images` training captchas under the default hash split (70% train, 10% validation, 20%
test), and goes through ingest, encode_labels, build_shards, train and evaluate with the defaults
(input size chosen from the images, ink preprocessing, the stall watch). `--real` adds a folder of
real captchas with the held-out split of bench.accuracy. Prints one JSON line per run, then a
Markdown table: full-captcha accuracy on the test split with its 95% interval, character accuracy,
training time, and when the model first read (5% of training or validation captchas) and reached
95% and 99% of the validation captchas (epoch, minutes of training), with any change of course.
Each JSON line also lists up to MISREADS_SHOWN test captchas read wrong, as label and reading.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path

from bench.accuracy import run_seed, train_and_score
from tasks.pipeline.config import PipelineConfig
from tasks.store import LocalStore

UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # the usual captcha set: no 0/O, 1/I
# Letters whose two cases differ in shape: c/C or s/S would be told apart by size alone.
MIXED = "abdefghnqrtABDEFGHNQRT"
ALNUM = "abdefghkmnpqrtwxyABDEFGHJKLMNPQRTWXY2345679"
LOWER_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
DIGITS_UPPER = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
STYLES = {
    "small-clean-72x24": f"style=plain&width=72&height=24&length=4&alphabet={UPPER}",
    "digits-noisy-jpeg-70x30": "style=noisy&width=70&height=30&length=4&alphabet=0123456789&format=jpeg",
    "wide-colour-rgba-len4-8": f"style=colour&mode=rgba&width=0&height=80&length=4-8&alphabet={ALNUM}",
    "distorted-digits-160x60": "length=4&alphabet=0123456789&width=160&height=60",
    "distorted-upper-grey-jpeg-200x70": f"length=4-5&alphabet={UPPER}&width=200&height=70&mode=grey&format=jpeg",
    "distorted-mixedcase-rgba-240x80": f"length=3-4&alphabet={MIXED}&width=240&height=80&mode=rgba",
    "case-sensitive-plain-120x40": f"style=plain&width=120&height=40&length=5&alphabet={MIXED}",
    "long-noisy-len8-10": f"style=noisy&width=0&height=40&length=8-10&alphabet={UPPER}",
    # What some real captchas have: text anywhere on a wide canvas, capitals drawn for lower-case
    # labels, pale characters under lines, narrow touching characters with doubled ones, all at once.
    "placed-wide-len4-8": f"style=placed&width=0&height=80&length=4-8&alphabet={LOWER_DIGITS}&mode=rgba&lines=2",
    "caps-for-lower-plain-160x50": f"style=plain&width=160&height=50&length=4-6&alphabet={LOWER_DIGITS}&caps=0.5",
    "pale-colour-lines-rgba": f"style=colour&mode=rgba&width=0&height=60&length=4-6&alphabet={ALNUM}&lines=3",
    "touching-doubles-72x24": f"style=touching&width=72&height=24&length=4&alphabet={DIGITS_UPPER}&doubles=0.2",
    "wide-real-kind-len4-8": f"style=placed&width=0&height=80&length=4-8&alphabet={LOWER_DIGITS}&mode=rgba"
                             "&caps=0.3&lines=2",
}
TRAIN_FRACTION = 0.7
MISREADS_SHOWN = 30  # test captchas read wrong listed per run


def time_to_accuracy(history: dict) -> dict:
    """Epoch and minute of training at which the model first read, and first reached 95% and 99% of
    its validation captchas (None where it never did)."""
    elapsed, marks = 0.0, {"reads": None, "val_95": None, "val_99": None}
    for epoch, seconds in enumerate(history.get("epoch_seconds", []), start=1):
        elapsed += seconds
        val = history["val_accuracy"][epoch - 1]
        reached = {"reads": max(val, history["accuracy"][epoch - 1]) >= 0.05, "val_95": val >= 0.95,
                   "val_99": val >= 0.99}
        for name, hit in reached.items():
            if hit and marks[name] is None:
                marks[name] = {"epoch": epoch, "minutes": round(elapsed / 60, 1)}
    return marks


def run_style(name: str, train_images: int, minutes: float, store: LocalStore, seed: int) -> dict:
    """Generate, train and evaluate one style in a store of its own; return its figures."""
    count = math.ceil(train_images / TRAIN_FRACTION)
    source = f"synthetic://?count={count}&seed={seed}&{STYLES[name]}"
    cfg = PipelineConfig(run_key=f"bench-style-{name}-seed{seed}", source=source, store=store.uri, seed=seed,
                         max_train_minutes=minutes)
    started = time.perf_counter()
    figures = train_and_score(cfg, store)
    return {"style": name, "seed": seed, "source": source, "images": count, **figures,
            "total_s": round(time.perf_counter() - started, 1)}


def details(store: LocalStore, run_key: str) -> dict:
    """Time to accuracy, course changes and the input chosen, from what the run left in the store."""
    trained = store.get_json(f"runs/{run_key}/train.json")
    encoded = store.get_json(f"runs/{run_key}/encode_labels.json")
    metrics = store.get_json(f"runs/{run_key}/metrics.json")
    return {**time_to_accuracy(store.get_json(trained["history"])), "arch": trained.get("arch"),
            "course": [c["action"] for c in trained.get("course", [])],
            "input": f"{encoded['height']}x{encoded['width']}", "ci95": metrics["full_accuracy_ci95"],
            "misreads": misreads(store, run_key)}


def misreads(store: LocalStore, run_key: str) -> list[dict]:
    """Up to MISREADS_SHOWN test captchas the run's model read wrong, from evaluate's predictions."""
    predictions = store.get_json(f"runs/{run_key}/evaluate.json")["predictions"]
    wrong = (r for r in store.iter_jsonl(predictions) if r["predicted"] != r["true"])
    return [{"label": r["true"], "reading": r["predicted"]} for r in itertools.islice(wrong, MISREADS_SHOWN)]


def table(rows: list[dict]) -> str:
    """The Markdown table of the runs."""
    def mark(value):
        return f"{value['epoch']} / {value['minutes']}" if value else "never"

    lines = ["| style | seed | train / test | input | full-captcha accuracy (95% CI) | characters | training | "
             "reads from | 95% val | 99% val | course |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        low, high = r["ci95"]
        lines.append(f"| {r['style']} | {r['seed']} | {r['splits']['train']} / {r['test_images']} | {r['input']} | "
                     f"{100 * r['full_accuracy']:.1f}% ({100 * low:.1f}-{100 * high:.1f}) | "
                     f"{100 * r['char_accuracy']:.1f}% | {r['train_s'] / 60:.1f} min, {r['epochs']} epochs | "
                     f"{mark(r['reads'])} | {mark(r['val_95'])} | {mark(r['val_99'])} | "
                     f"{', '.join(r['course']) or '-'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", nargs="+", choices=sorted(STYLES), default=list(STYLES))
    parser.add_argument("--train-images", type=int, default=1600, help="training captchas per style")
    parser.add_argument("--minutes", type=float, default=None, help="training time limit (default: the pipeline's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--real", type=Path, help="a folder of real labelled captchas to add (bench.accuracy's split)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # the stages' lines, to stderr
    minutes = args.minutes if args.minutes is not None else PipelineConfig(run_key="defaults").max_train_minutes
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-styles-") as tmp:
        for seed in args.seeds:
            if args.real:
                from bench.accuracy import md5_holdout

                store = LocalStore(Path(tmp) / f"real-{seed}")
                names = [p.name for p in args.real.iterdir() if p.is_file() and not p.name.startswith(".")]
                figures = run_seed(args.real, seed, store, md5_holdout(names), minutes)
                rows.append({"style": f"real: {args.real.name}", **figures,
                             **details(store, f"bench-{args.real.name}-seed{seed}")})
                print(json.dumps(rows[-1]), flush=True)
            for name in args.styles:  # a store per run: a store's data set grows with every source ingested
                store = LocalStore(Path(tmp) / f"{name}-{seed}")
                figures = run_style(name, args.train_images, minutes, store, seed)
                rows.append({**figures, **details(store, f"bench-style-{name}-seed{seed}")})
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"summary": "styles", "full_accuracy": {f"{r['style']} seed {r['seed']}": r["full_accuracy"]
                                                             for r in rows},
                      "min_full_accuracy": min(r["full_accuracy"] for r in rows)}), flush=True)
    print(table(rows), flush=True)


if __name__ == "__main__":
    main()
