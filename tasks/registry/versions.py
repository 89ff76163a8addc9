"""Published versions in a store, and the pointer to the champion.

Each version lives under models/<version>/ and is immutable: its name is the run key plus a digest
of the trained model file, so publishing another model always makes a new version, and publishing
the same model again finds its version already there. The version's own record,
models/<version>/version.json, is written after every other file of the version: a version without
it is incomplete and no reader lists or serves it. models/latest.json names the champion and is
only ever moved by compare-and-swap (tasks.registry.promotion).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tasks.store import MissingObjectError, ObjectStore, StoreError, check_key

LATEST = "models/latest.json"
HISTORY = "models/history.jsonl"  # the audit log of every decision about `latest`
RECORD = "version.json"


def version_prefix(version: str) -> str:
    """Folder of one published version."""
    return f"models/{check_key(version)}/"


def version_name(run_key: str, model_file: Path) -> str:
    """The version a trained model publishes under: its run key and the first 12 hex digits of the
    model file's SHA-256."""
    digest = hashlib.sha256()
    with open(model_file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{run_key}-{digest.hexdigest()[:12]}"


def read_version(store: ObjectStore, version: str) -> dict | None:
    """The record of a complete version, or None if there is no such complete version."""
    try:
        return store.get_json(f"{version_prefix(version)}{RECORD}")
    except MissingObjectError:
        return None


def list_versions(store: ObjectStore) -> list[dict]:
    """The records of every complete version, oldest first."""
    records = [store.get_json(key) for key in store.list("models/")
               if key.count("/") == 2 and key.endswith(f"/{RECORD}")]
    return sorted(records, key=lambda r: (r.get("created_at", 0), r["version"]))


def read_champion(store: ObjectStore) -> tuple[dict | None, str | None]:
    """(models/latest.json, its tag for a compare-and-swap), or (None, None) when nothing is
    published. The keys it names are checked as any key the code builds."""
    try:
        data, tag = store.get_tagged(LATEST)
    except MissingObjectError:
        return None, None
    latest = json.loads(data)
    try:
        for field in ("folder", "model", "onnx"):
            if latest.get(field):
                check_key(latest[field].rstrip("/"))
        if latest["folder"] != version_prefix(latest["version"]):
            raise StoreError(f"its folder {latest['folder']!r} is not that of version {latest['version']!r}")
    except (StoreError, KeyError) as error:
        raise StoreError(f"{store.url(LATEST)} is damaged: {error}") from None
    return latest, tag


def read_history(store: ObjectStore) -> list[dict]:
    """Every decision about `latest`, oldest first."""
    if not store.exists(HISTORY):
        return []
    return list(store.iter_jsonl(HISTORY))
