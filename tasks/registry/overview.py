"""What the model pages show, read from a store: every published version as one row, one version's
figures and files, and how far a run has come. Plain data, so any front end (the Airflow plugin in
plugins/, a notebook) shows the same; a store that cannot be read gives a StoreError with the reason.

Names that come from a request (a version, a run, a file) are checked before any key is built from
them: a version or run must be one the store lists, a file one of the published names.
"""
from __future__ import annotations

from tasks.registry.versions import list_versions, read_champion, read_history, read_version, version_prefix
from tasks.store import MissingObjectError, ObjectStore, StoreError, check_key

PLOTS = ("history.png", "test_gallery.png", "misread_gallery.png", "confusion.png")
DOWNLOADS = ("model.onnx", "model.keras", "model_card.md")
STAGES = ("check_inputs", "ingest", "encode_labels", "build_shards", "train", "evaluate", "publish", "approve")
DECIDING = ("gate", "approval")  # the actions that decide about a version when it is published


def version_rows(store: ObjectStore) -> list[dict]:
    """Every complete version, newest first: when, data version and image count, arch, full-captcha
    accuracy with its 95% interval, character accuracy, training time, whether it was promoted when it
    was published and why (the gate's decision, or the approver's where approval was asked: the last
    one counts; `awaiting` while a person has yet to answer), and whether it is the champion now."""
    champion, _ = read_champion(store)
    decisions = {}
    for entry in read_history(store):
        if entry.get("action") in DECIDING and entry.get("candidate"):
            decisions[entry["candidate"]] = entry
    rows = []
    for record in reversed(list_versions(store)):
        metrics = record.get("metrics", {})
        decision = decisions.get(record["version"], {})
        rows.append({
            "version": record["version"], "created_at": record.get("created_at"), "run_key": record.get("run_key"),
            "data_version": record.get("data_version"), "images": record.get("images"), "arch": record.get("arch"),
            "input": record.get("input"), "full_accuracy": metrics.get("full_accuracy"),
            "full_accuracy_ci95": metrics.get("full_accuracy_ci95"), "char_accuracy": metrics.get("char_accuracy"),
            "training_seconds": record.get("training_seconds"), "epochs": record.get("epochs"),
            "promoted": decision.get("moved"), "reason": decision.get("why"),
            "awaiting": bool(decision.get("awaiting")),
            "champion": bool(champion) and champion["version"] == record["version"],
        })
    return rows


def version_page(store: ObjectStore, version: str) -> dict:
    """One version: its record, metrics, model card text, and which plots and downloads exist (a missing
    one is listed as missing, not an error). StoreError when there is no such complete version."""
    record = _known_version(store, version)
    prefix = version_prefix(version)
    card = _text(store, f"{prefix}model_card.md")
    champion, _ = read_champion(store)
    return {
        "record": record, "metrics": record.get("metrics", {}), "model_card": card,
        "champion": bool(champion) and champion["version"] == version,
        "plots": {name: store.exists(f"{prefix}{name}") for name in PLOTS},
        "downloads": {name: store.exists(f"{prefix}{name}") for name in DOWNLOADS},
    }


def version_file(store: ObjectStore, version: str, name: str) -> bytes:
    """A plot or download of a published version; StoreError for any other name or version."""
    if name not in PLOTS + DOWNLOADS:
        raise StoreError(f"{name!r} is not a file a version publishes")
    _known_version(store, version)
    try:
        return store.get_bytes(f"{version_prefix(version)}{name}")
    except MissingObjectError:
        raise StoreError(f"version {version} has no {name}") from None


def run_progress(store: ObjectStore, run_key: str) -> dict:
    """How far a run has come: each stage's result so far, the epochs trained (loss and accuracy), and
    its outcome: `published` (with the version, and `approval`: the approver's decision, "awaiting"
    while a person has yet to answer, or None when none was asked), `skipped` (nothing new: why),
    `failed` (which stage, with the message), `running` or `not started`."""
    from tasks.pipeline.records import ACTIVITY, FAILURE, run_prefix

    if "/" in run_key:
        raise StoreError(f"{run_key!r} is not a run key")
    prefix = check_key(run_prefix(run_key).rstrip("/")) + "/"
    stages = {stage: result for stage in STAGES
              if (result := _json_or_none(store, f"{prefix}{stage}.json")) is not None}
    progress = {"run_key": run_key, "stages": stages, "epochs": _epochs(store, prefix, stages.get("train"))}
    failure = _json_or_none(store, f"{prefix}{FAILURE}")
    active = _json_or_none(store, f"{prefix}{ACTIVITY}")
    if failure and active and active["at"] > failure["at"]:
        failure = None  # a task has started again since (the run was cleared)
    if "publish" in stages:
        approval = stages.get("approve") or ("awaiting" if stages["publish"].get("awaiting_approval") else None)
        progress.update(outcome="published", version=stages["publish"]["version"], approval=approval)
    elif failure:
        progress.update(outcome="failed", stage=failure.get("task"), message=failure.get("message"))
    elif stages.get("ingest", {}).get("up_to_date"):
        progress.update(outcome="skipped", message=stages["ingest"]["up_to_date"])
    else:
        progress.update(outcome="running" if stages or active else "not started")
    return progress


def _known_version(store: ObjectStore, version: str) -> dict:
    """The record of a complete version (one read; the name is checked as a key first)."""
    record = read_version(store, version)
    if record is None:
        raise StoreError(f"no published version {version!r}")
    return record


def _epochs(store: ObjectStore, prefix: str, trained: dict | None) -> list[dict]:
    """Per-epoch figures: the finished training's history, or the checkpoint's while training runs."""
    history = None
    if trained and trained.get("history"):
        history = _json_or_none(store, trained["history"])
    history = history or (_json_or_none(store, f"{prefix}checkpoint.json") or {}).get("history") or {}
    count = max((len(values) for values in history.values() if isinstance(values, list)), default=0)
    return [{name: values[i] for name, values in history.items() if isinstance(values, list) and i < len(values)}
            | {"epoch": i + 1} for i in range(count)]


def _json_or_none(store: ObjectStore, key: str):
    try:
        return store.get_json(key)
    except MissingObjectError:
        return None


def _text(store: ObjectStore, key: str) -> str | None:
    try:
        return store.get_bytes(key).decode("utf-8", errors="replace")
    except MissingObjectError:
        return None
