"""Stage 6, publish: the model in every serving format, what inference needs, metrics, plots and a
model card under a new, immutable models/<version>/ (tasks.registry.versions); then the gate decides
whether it becomes `latest`.

The gate (tasks.registry.promotion): the model must read at least `min_accuracy` of the test captchas,
and at least as many as the champion reads of the same test captchas. The champion is read again
when the gate decides; if it is no longer the one evaluate measured, the new one is measured on this
run's test captchas first. models/latest.json then moves by compare-and-swap, so a publish that lost
a race decides again against the winner instead of overwriting it. A model that fails stays under its
version and `latest` does not move; with `approval` on, one that passes waits for a person (stage 7,
tasks.approve). Every decision goes to the audit log.
"""
from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from pathlib import Path

from tasks.pipeline.records import read_stage_result, run_prefix, write_stage_result
from tasks.registry.promotion import HEADLINE_METRICS, decide, evaluated_rows, gate
from tasks.registry.versions import LATEST, RECORD, read_version, version_name, version_prefix
from tasks.reporting.model_card import model_card
from tasks.store import ObjectStore, PreconditionFailed

log = logging.getLogger(__name__)
GALLERY_SIZE = 16


def _gallery(store: ObjectStore, rows: list[dict], title: str) -> bytes:
    from PIL import Image

    from tasks.reporting.plots import gallery_plot

    samples = [(Image.open(io.BytesIO(store.get_bytes(f"raw/{r['sha256']}.{r['ext']}"))), r["true"], r["predicted"])
               for r in rows[:GALLERY_SIZE]]
    return gallery_plot(samples, title=title)


def _export_serving_formats(store: ObjectStore, local: Path, prefix: str, workdir: Path) -> list[str]:
    from tasks.modelling.export import export_onnx, export_saved_model
    from tasks.modelling.runtime import import_tensorflow
    from tasks.modelling.saving import load_model

    import_tensorflow()
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


def _write_version(cfg, store: ObjectStore, version: str, local_model: Path, workdir: Path, trained: dict,
                   metrics: dict, rows: list[dict], passes: bool, reason: str) -> dict:
    """Every file of a new version, then its record (version.json) last; return the record."""
    from tasks.reporting.plots import confusion_plot, history_plot

    prefix = version_prefix(version)
    encoded = read_stage_result(store, cfg.run_key, "encode_labels")
    meta = store.get_json(trained["metadata"])
    history = store.get_json(trained["history"])
    files = _export_serving_formats(store, local_model, prefix, workdir)
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
                    model_card(cfg, version, meta, metrics, encoded, trained, passes, reason).encode())
    files += [f"{prefix}{name}" for name in ("model.json", "alphabet.json", "metrics.json", "history.json",
                                              *plots, "model_card.md")]
    record = {
        "version": version, "run_key": cfg.run_key, "run": run_prefix(cfg.run_key), "created_at": time.time(),
        "data_version": encoded["data_version"], "images": sum(encoded["splits"].values()),
        "splits": encoded["splits"], "arch": meta["arch"], "input": f"{meta['height']}x{meta['width']}",
        "metrics": {k: v for k, v in metrics.items() if k not in ("confusion", "champion")},
        "evaluated_against": (metrics.get("champion") or {}).get("version"),
        "training_seconds": trained["seconds"], "epochs": trained["epochs"], "course": trained.get("course", []),
        "parent": trained.get("parent"),
        "settings": cfg.model_settings(), "files": files,
    }
    try:
        store.put_if(f"{prefix}{RECORD}", json.dumps(record, indent=2, sort_keys=True).encode(), None)
    except PreconditionFailed:  # the same model published at the same moment by another try: keep that one
        return read_version(store, version)
    return record


def publish(cfg, store: ObjectStore) -> dict:
    """Publish this run's model as a new version (or find it already published), then move
    models/latest.json to it if it passes the gate; with `approval` on, a model that passes waits for a
    person's decision (tasks.approve) instead, and the result says so and carries both models' figures."""
    started = time.perf_counter()
    trained = read_stage_result(store, cfg.run_key, "train")
    evaluated = read_stage_result(store, cfg.run_key, "evaluate")
    metrics = store.get_json(evaluated["metrics"])
    rows = evaluated_rows(store, evaluated)
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        workdir = Path(tmp)
        local = workdir / "trained.keras"
        store.download_file(trained["model"], local)
        version = version_name(cfg.run_key, local)
        record = read_version(store, version)
        if record is None:
            passes, verdict = gate(metrics, cfg.min_accuracy)
            record = _write_version(cfg, store, version, local, workdir, trained, metrics, rows, passes, verdict)
        else:
            log.info("publish: version %s is already published; its files stay as they are", version)
        verdict, reason, champion = decide(store, record, metrics, rows, workdir, cfg.min_accuracy, "gate",
                                           f"publish of run {cfg.run_key}", hold=cfg.approval)
    prefix = version_prefix(version)
    promoted = verdict == "promoted"
    result = {
        "version": version, "promoted": promoted, "awaiting_approval": verdict == "held", "reason": reason,
        "champion": champion and {key: champion.get(key) for key in ("version", *HEADLINE_METRICS)},
        "model_uri": store.url(f"{prefix}model.keras"), "onnx_uri": store.url(f"{prefix}model.onnx"),
        "model_card": store.url(f"{prefix}model_card.md"),
        "plots": [store.url(f"{prefix}{name}") for name in ("history.png", "test_gallery.png",
                                                              "misread_gallery.png", "confusion.png")],
        "full_accuracy": round(metrics["full_accuracy"], 4), "char_accuracy": round(metrics["char_accuracy"], 4),
        "latest": store.url(LATEST), "seconds": round(time.perf_counter() - started, 1),
    }
    log.info("publish: model %s at %s; %s: %s", version, result["model_uri"],
             {"promoted": "promoted to latest", "held": "waits for approval"}.get(verdict, "NOT promoted"), reason)
    return write_stage_result(store, cfg.run_key, "publish", result)
