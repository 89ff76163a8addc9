"""Moving the champion pointer, models/latest.json: by the gate when a run publishes, or by hand
(promote, rollback). Every move is a compare-and-swap against the pointer as it was read when the
decision was made, and every decision, moved or not, is appended to the audit log
models/history.jsonl (when, which action, from, to, why, who)."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from tasks.registry.versions import HISTORY, LATEST, version_prefix
from tasks.store import ObjectStore, append_jsonl

# What latest.json repeats of a version's metrics, for readers that only need the headline.
HEADLINE_METRICS = ("full_accuracy", "full_accuracy_ci95", "char_accuracy", "char_error_rate", "test_images")


def latest_entry(record: dict, why: str) -> dict:
    """The models/latest.json that makes the version of `record` (its version.json) the champion."""
    prefix = version_prefix(record["version"])
    return {"version": record["version"], "folder": prefix, "model": f"{prefix}model.keras",
            "onnx": f"{prefix}model.onnx", "metrics": {k: record["metrics"][k] for k in HEADLINE_METRICS},
            "run": record["run"], "data_version": record["data_version"], "settings": record["settings"],
            "published_at": time.time(), "why": why}


def record_decision(store: ObjectStore, action: str, candidate: str | None, before: str | None, moved: bool,
                    why: str, who: str) -> dict:
    """Append one decision about `latest` to the audit log; return it."""
    entry = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "action": action,
             "candidate": candidate, "from": before, "to": candidate if moved else before, "moved": moved,
             "why": why, "who": who}
    append_jsonl(store, HISTORY, entry)
    return entry


def move_latest(store: ObjectStore, record: dict, expected_tag: str | None, before: str | None, action: str,
                why: str, who: str) -> dict:
    """Make `record`'s version the champion if models/latest.json is still what was read as
    `expected_tag` (None: still absent), and log the move; PreconditionFailed, with nothing written,
    if it is not."""
    entry = latest_entry(record, why)
    store.put_if(LATEST, json.dumps(entry, indent=2, sort_keys=True).encode(), expected_tag)
    record_decision(store, action, record["version"], before, True, why, who)
    return entry


def score_version(store: ObjectStore, folder: str, rows: list[dict], workdir: Path) -> dict:
    """Metrics of the published model in `folder` on the test captchas `rows` (sha256, ext, true),
    read from the raw images with the model's own preprocessing, as `predict` reads them."""
    from tasks.reporting.metrics import score
    from tasks.serving.predict import download_model, open_reader, read_images

    files = download_model(store, folder, workdir)
    reader = open_reader(files)
    items = ((row, store.get_bytes(f"raw/{row['sha256']}.{row['ext']}")) for row in rows)
    return score([(row["true"], text or "") for row, text, _ in read_images(reader, files.meta, items)])
