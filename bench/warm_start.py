"""Nightly retraining benchmark: a night with new images, fine-tuned from the champion (warm start)
beside the same night trained from scratch (cold start), through the pipeline's own stage functions.

    python -m bench.warm_start --data ../shared/datasets/wilhelmy_v2 [--new 0.1] [--seed 0]

Night 1 trains from scratch on all but a `--new` fraction of the training images and publishes the
champion. Night 2 adds those images and trains twice on the same shards: once from the champion's
weights, once from scratch. The held-out test split is the same every night (bench.accuracy's: the
last fifth of the files by MD5 of their name), so the figures compare on the same captchas. Prints
one JSON line per training, then a summary line with the ratio of training times.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

from bench.accuracy import md5_holdout
from tasks.build_shards import build_shards
from tasks.data.labels import split_of
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.pipeline.config import PipelineConfig
from tasks.publish import publish
from tasks.store import LocalStore
from tasks.train import train


def night(cfg: PipelineConfig, store: LocalStore, holdout: set[str], publish_it: bool = False) -> dict:
    """Ingest, encode, shard, train and evaluate one night; return its figures."""
    def assign_split(entry: dict) -> str:
        if Path(entry["name"]).name in holdout:
            return "test"
        return "val" if split_of(entry["sha256"], 0.1, 0.0) == "val" else "train"

    ingest(cfg, store)
    encoded = encode_labels(cfg, store, assign_split=assign_split)
    build_shards(cfg, store)
    trained = train(cfg, store)
    evaluated = evaluate(cfg, store)
    metrics = store.get_json(evaluated["metrics"])
    if publish_it:
        publish(cfg, store)
    return {"night": cfg.run_key, "warm_start": cfg.warm_start, "parent": trained["parent"]["version"],
            "splits": encoded["splits"], "epochs": trained["epochs"], "train_s": trained["seconds"],
            "full_accuracy": evaluated["full_accuracy"], "test_images": evaluated["test_images"],
            "champion_full_accuracy": (metrics.get("champion") or {}).get("full_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of labelled captcha images")
    parser.add_argument("--new", type=float, default=0.1, help="fraction of images that arrive on night 2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    files = sorted(p for p in args.data.iterdir() if p.is_file() and not p.name.startswith("."))
    holdout = md5_holdout([p.name for p in files])
    pool = [p for p in files if p.name not in holdout]
    arriving = set(random.Random(args.seed).sample([p.name for p in pool], round(args.new * len(files))))
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        landing, store = Path(tmp) / "landing", LocalStore(Path(tmp) / "store")
        landing.mkdir()
        for path in files:
            if path.name not in arriving:
                shutil.copy2(path, landing / path.name)  # ingest refuses links
        base = PipelineConfig(run_key="night1", source=str(landing), store=store.uri, seed=args.seed)
        first = night(base, store, holdout, publish_it=True)
        print(json.dumps(first), flush=True)
        for name in arriving:
            shutil.copy2(args.data / name, landing / name)
        warm = night(dataclasses.replace(base, run_key="night2-warm"), store, holdout)
        print(json.dumps(warm), flush=True)
        cold = night(dataclasses.replace(base, run_key="night2-cold", warm_start=False), store, holdout)
        print(json.dumps(cold), flush=True)
    print(json.dumps({"summary": "warm start", "dataset": args.data.name, "new_images": len(arriving),
                      "time_ratio_warm_to_cold": round(warm["train_s"] / cold["train_s"], 3),
                      "warm_full_accuracy": warm["full_accuracy"], "cold_full_accuracy": cold["full_accuracy"],
                      "champion_full_accuracy": warm["champion_full_accuracy"],
                      "warm_train_s": warm["train_s"], "cold_train_s": cold["train_s"]}), flush=True)


if __name__ == "__main__":
    main()
