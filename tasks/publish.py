"""Stage 6, publish: the model in every serving format, what inference needs, metrics, plots and a
model card under models/<version>/; then the gate decides whether it becomes `latest`.

The gate: the model must read at least `min_accuracy` of the test captchas, and at least as many as
the current champion reads of the same test captchas. A model that fails stays under its version and
nothing else changes. models/latest.json is written last, once every file of the version is in
place: nobody ever sees half a model.
"""
from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from pathlib import Path

from tasks.pipeline.records import read_stage_result, run_prefix, write_stage_result
from tasks.reporting.model_card import model_card
from tasks.serving.registry import LATEST, version_prefix
from tasks.store import ObjectStore

log = logging.getLogger(__name__)
GALLERY_SIZE = 16


def model_version(run_key: str) -> str:
    """The version a run publishes under: its run key, so republishing a run replaces, never duplicates."""
    return run_key


def gate(metrics: dict, min_accuracy: float) -> tuple[bool, str]:
    """(promote?, why) for a model with these test metrics (champion's included, if any)."""
    accuracy = metrics["full_accuracy"]
    if accuracy < min_accuracy:
        return False, f"it reads {accuracy:.1%} of test captchas, below the min_accuracy floor of {min_accuracy:.1%}"
    champion = metrics.get("champion")
    if champion and accuracy < champion["full_accuracy"]:
        return False, (f"it reads {accuracy:.1%} of test captchas, fewer than the champion {champion['version']} "
                       f"({champion['full_accuracy']:.1%}) on the same test split")
    if champion:
        return True, f"it reads {accuracy:.1%}, the champion {champion['version']} {champion['full_accuracy']:.1%}"
    return True, f"it reads {accuracy:.1%} of test captchas and there is no champion yet"


def _gallery(store: ObjectStore, rows: list[dict], title: str) -> bytes:
    from PIL import Image

    from tasks.reporting.plots import gallery_plot

    samples = [(Image.open(io.BytesIO(store.get_bytes(f"raw/{r['sha256']}.{r['ext']}"))), r["true"], r["predicted"])
               for r in rows[:GALLERY_SIZE]]
    return gallery_plot(samples, title=title)


def _export_serving_formats(store: ObjectStore, keras_key: str, prefix: str, workdir: Path) -> list[str]:
    from tasks.modelling.export import export_onnx, export_saved_model
    from tasks.modelling.runtime import import_tensorflow
    from tasks.modelling.saving import load_model

    import_tensorflow()
    local = workdir / "model.keras"
    store.download_file(keras_key, local)
    store.upload_file(local, f"{prefix}model.keras")
    model = load_model(local)
    written = [f"{prefix}model.keras"]
    store.upload_file(export_onnx(model, workdir / "model.onnx"), f"{prefix}model.onnx")
    written.append(f"{prefix}model.onnx")
    saved = export_saved_model(model, workdir / "saved_model")
    for path in sorted(p for p in saved.rglob("*") if p.is_file()):
        key = f"{prefix}saved_model/{path.relative_to(saved).as_posix()}"
        store.upload_file(path, key)
        written.append(key)
    return written


def publish(cfg, store: ObjectStore) -> dict:
    """Publish this run's model, then move models/latest.json to it if it passes the gate."""
    from tasks.reporting.plots import confusion_plot, history_plot

    started = time.perf_counter()
    trained = read_stage_result(store, cfg.run_key, "train")
    evaluated = read_stage_result(store, cfg.run_key, "evaluate")
    encoded = read_stage_result(store, cfg.run_key, "encode_labels")
    version = model_version(cfg.run_key)
    prefix = version_prefix(version)
    metrics = store.get_json(evaluated["metrics"])
    meta = store.get_json(trained["metadata"])
    history = store.get_json(trained["history"])
    rows = [json.loads(line) for line in store.get_bytes(evaluated["predictions"]).decode().splitlines()]
    promoted, reason = gate(metrics, cfg.min_accuracy)

    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        _export_serving_formats(store, trained["model"], prefix, Path(tmp))
    store.put_json(f"{prefix}model.json", meta)
    store.put_json(f"{prefix}alphabet.json", {"alphabet": meta["alphabet"], "max_length": meta["max_length"]})
    store.put_json(f"{prefix}metrics.json", metrics)
    store.put_json(f"{prefix}history.json", history)
    plots = {
        "history.png": history_plot(history),
        "test_gallery.png": _gallery(store, rows, "Test captchas: true and read text"),
        "misread_gallery.png": _gallery(store, [r for r in rows if r["true"] != r["predicted"]],
                                        "Misread test captchas"),
        "confusion.png": confusion_plot(metrics["confusion"], meta["alphabet"]),
    }
    for name, png in plots.items():
        store.put_bytes(f"{prefix}{name}", png)
    store.put_bytes(f"{prefix}model_card.md",
                    model_card(cfg, version, meta, metrics, encoded, trained, promoted, reason).encode())
    if promoted:
        store.put_json(LATEST, {"version": version, "folder": prefix, "model": f"{prefix}model.keras",
                                "onnx": f"{prefix}model.onnx", "metrics": {k: metrics[k] for k in (
                                    "full_accuracy", "char_accuracy", "char_error_rate", "test_images")},
                                "run": run_prefix(cfg.run_key), "data_version": encoded["data_version"],
                                "settings": cfg.model_settings(), "published_at": time.time()})
    result = {
        "version": version, "promoted": promoted, "reason": reason,
        "model_uri": store.url(f"{prefix}model.keras"), "onnx_uri": store.url(f"{prefix}model.onnx"),
        "model_card": store.url(f"{prefix}model_card.md"),
        "plots": [store.url(f"{prefix}{name}") for name in plots],
        "full_accuracy": round(metrics["full_accuracy"], 4), "char_accuracy": round(metrics["char_accuracy"], 4),
        "latest": store.url(LATEST), "seconds": round(time.perf_counter() - started, 1),
    }
    log.info("publish: model %s at %s; %s: %s", version, result["model_uri"],
             "promoted to latest" if promoted else "NOT promoted", reason)
    return write_stage_result(store, cfg.run_key, "publish", result)
