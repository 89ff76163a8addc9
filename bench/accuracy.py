"""Accuracy benchmark on a labelled folder, through the pipeline's own stage functions.

    python -m bench.accuracy --data ../shared/datasets/wilhelmy_v2 --seeds 0 1 2 [--baseline]

The held-out split is the published one for wilhelmy_v2: files sorted by the MD5 hex digest of their
file name, the last fifth held out (208 of 1040); 10% of the rest, by content hash, is the
validation split that early stopping watches. Each seed trains with the pipeline's default settings.
Prints one JSON line per seed (full-captcha and character accuracy on the held-out images, training
time, prediction latency with ONNX and Keras, one image and batched), then a summary line; with
--baseline, the tutorial recipe's own line from the same machine first.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tasks.build_shards import build_shards
from tasks.data.labels import split_of
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.pipeline.config import PipelineConfig
from tasks.store import LocalStore
from tasks.train import train

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT.parent / "shared" / "reference" / "tutorial_recipe.py"


def md5_holdout(names: list[str]) -> set[str]:
    """The file names held out: sorted by MD5 of the name, the last fifth."""
    ordered = sorted(names, key=lambda n: hashlib.md5(n.encode()).hexdigest())
    return set(ordered[-(len(ordered) // 5):])


def latency_ms(reader, images: np.ndarray, repeats: int = 20) -> dict:
    """Median milliseconds per captcha, one image at a time and in one batch."""
    single, batched = [], []
    reader(images[:1])
    for _ in range(repeats):
        start = time.perf_counter()
        reader(images[:1])
        single.append(time.perf_counter() - start)
    for _ in range(max(3, repeats // 4)):
        start = time.perf_counter()
        reader(images)
        batched.append((time.perf_counter() - start) / len(images))
    return {"single_ms": round(1000 * statistics.median(single), 3),
            "batched_ms": round(1000 * statistics.median(batched), 3)}


def measure_latency(store: LocalStore, run_key: str, meta: dict, test_files: list[Path], workdir: Path) -> dict:
    """Prediction latency of the run's model with onnxruntime (one CPU thread) and with Keras."""
    from tasks.data.images import preprocess_bytes
    from tasks.modelling.export import export_onnx
    from tasks.modelling.saving import load_model
    from tasks.serving.predict import KerasReader, OnnxReader

    keras_path = workdir / "model.keras"
    store.download_file(f"runs/{run_key}/model.keras", keras_path)
    export_onnx(load_model(keras_path), workdir / "model.onnx")
    images = np.stack([preprocess_bytes(p.read_bytes(), meta["height"], meta["width"], meta["preprocessing"])
                       for p in test_files[:64]])[..., None].astype(np.float32)
    return {"onnx_1_thread": latency_ms(OnnxReader(workdir / "model.onnx", threads=1), images),
            "keras": latency_ms(KerasReader(keras_path), images), "batch": len(images)}


def train_and_score(cfg: PipelineConfig, store: LocalStore, assign_split=None, latency_images=None) -> dict:
    """Run ingest, encode_labels (with `assign_split` if given), build_shards, train and evaluate;
    return the figures, with prediction latency measured on `latency_images` (paths) if given."""
    ingest(cfg, store)
    encoded = encode_labels(cfg, store, assign_split=assign_split)
    build_shards(cfg, store)
    trained = train(cfg, store)
    evaluated = evaluate(cfg, store)
    figures = {"splits": encoded["splits"], "epochs": trained["epochs"], "train_s": trained["seconds"],
               "full_accuracy": evaluated["full_accuracy"], "correct": evaluated["correct"],
               "test_images": evaluated["test_images"], "char_accuracy": evaluated["char_accuracy"]}
    if latency_images:
        meta = store.get_json(trained["metadata"])
        with tempfile.TemporaryDirectory() as tmp:
            figures["latency"] = measure_latency(store, cfg.run_key, meta, latency_images, Path(tmp))
    return figures


def run_seed(data: Path, seed: int, store: LocalStore, holdout: set[str], minutes: float | None) -> dict:
    """Train and evaluate one seed with the pipeline's defaults on all but `holdout`; return its figures."""
    settings = {"max_train_minutes": minutes} if minutes is not None else {}
    cfg = PipelineConfig(run_key=f"bench-{data.name}-seed{seed}", source=str(data), store=store.uri, seed=seed,
                         **settings)

    def assign_split(entry: dict) -> str:
        if Path(entry["name"]).name in holdout:
            return "test"
        return "val" if split_of(entry["sha256"], 0.1, 0.0) == "val" else "train"

    test_files = sorted(p for p in data.iterdir() if p.name in holdout)
    return {"dataset": data.name, "seed": seed, **train_and_score(cfg, store, assign_split, test_files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of labelled captcha images")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=None, help="training time limit (default: the pipeline's)")
    parser.add_argument("--baseline", action="store_true", help="run the tutorial recipe first, on the same data")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # the stages' lines, to stderr
    if args.baseline:
        done = subprocess.run([sys.executable, str(TUTORIAL), str(args.data)], capture_output=True, text=True,
                              check=True)
        print(json.dumps({"recipe": "tutorial", **json.loads(done.stdout.strip().splitlines()[-1])}), flush=True)
    names = [p.name for p in args.data.iterdir() if p.is_file() and not p.name.startswith(".")]
    holdout = md5_holdout(names)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        store = LocalStore(Path(tmp) / "store")
        for seed in args.seeds:
            results.append(run_seed(args.data, seed, store, holdout, args.minutes))
            print(json.dumps({"recipe": "pipeline", **results[-1]}), flush=True)
    accuracies = [r["full_accuracy"] for r in results]
    print(json.dumps({"summary": "pipeline", "dataset": args.data.name, "seeds": args.seeds,
                      "full_accuracy": accuracies, "min_full_accuracy": min(accuracies),
                      "mean_full_accuracy": round(statistics.mean(accuracies), 4),
                      "max_train_s": max(r["train_s"] for r in results)}), flush=True)


if __name__ == "__main__":
    main()
