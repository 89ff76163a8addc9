"""Stage 6, publish: the model, what inference needs, its metrics and plots under models/<version>/.

models/latest.json, the pointer users and `tasks.predict` follow, is written last, once every other
file of the version is in place: nobody ever sees half a model.
"""
from __future__ import annotations

import io
import logging
import tempfile
import time
from pathlib import Path

from tasks.runs import read_stage_result, run_prefix, write_stage_result
from tasks.storage import ObjectStore

log = logging.getLogger(__name__)
LATEST = "models/latest.json"
GALLERY_SIZE = 16


def model_version(run_key: str) -> str:
    """The version a run publishes under: its run key, so republishing a run replaces, never duplicates."""
    return run_key


def _copy(store: ObjectStore, source: str, target: str, workdir: Path) -> None:
    local = workdir / Path(target).name
    store.download_file(source, local)
    store.upload_file(local, target)


def _gallery(store: ObjectStore, predictions: list[dict]) -> bytes:
    from PIL import Image

    from tasks.plots import gallery_plot

    samples = []
    for row in predictions[:GALLERY_SIZE]:
        key = next(iter(store.list(f"raw/{row['sha256']}.")))
        samples.append((Image.open(io.BytesIO(store.get_bytes(key))), row["true"], row["predicted"]))
    return gallery_plot(samples, title="Test captchas: true and read text")


def publish(cfg, store: ObjectStore) -> dict:
    """Publish this run's model and plots, then point models/latest.json at it."""
    import json

    from tasks.plots import history_plot

    trained = read_stage_result(store, cfg.run_key, "train")
    evaluated = read_stage_result(store, cfg.run_key, "evaluate")
    version = model_version(cfg.run_key)
    prefix = f"models/{version}/"
    metrics = store.get_json(evaluated["metrics"])
    meta = store.get_json(trained["metadata"])
    history = store.get_json(trained["history"])
    predictions = [json.loads(line) for line in store.get_bytes(evaluated["predictions"]).decode().splitlines()]
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        _copy(store, trained["model"], f"{prefix}model.keras", Path(tmp))
    store.put_json(f"{prefix}model.json", meta)
    store.put_json(f"{prefix}metrics.json", metrics)
    store.put_json(f"{prefix}history.json", history)
    store.put_bytes(f"{prefix}history.png", history_plot(history))
    store.put_bytes(f"{prefix}test_gallery.png", _gallery(store, predictions))
    pointer = {"version": version, "model": f"{prefix}model.keras", "metadata": f"{prefix}model.json",
               "metrics": metrics, "run": run_prefix(cfg.run_key), "published_at": time.time()}
    store.put_json(LATEST, pointer)
    result = {
        "version": version, "model_uri": store.url(f"{prefix}model.keras"),
        "plots": [store.url(f"{prefix}history.png"), store.url(f"{prefix}test_gallery.png")],
        "full_accuracy": round(metrics["full_accuracy"], 4), "char_accuracy": round(metrics["char_accuracy"], 4),
        "latest": store.url(LATEST),
    }
    log.info("publish: model %s published at %s (full-captcha accuracy %.1f%%); plots %s", version,
             result["model_uri"], 100 * metrics["full_accuracy"], ", ".join(result["plots"]))
    return write_stage_result(store, cfg.run_key, "publish", result)
