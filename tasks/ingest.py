"""Stage 1, ingest: check every image of a source, store it once by content hash, list it in a manifest.

Store layout written here:
  raw/<sha256>.<ext>               each usable image, once, whatever its name or how often it is ingested
  manifests/<data version>.jsonl   one line per usable image (sha256, label, name, ext, width, height)
  quarantine/<run key>.jsonl       every refused image with the reason
  runs/<run key>/ingest.json       this stage's summary, which encode_labels reads
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tasks.config import PipelineConfig
from tasks.images import ImageRejected, decode_image
from tasks.parallel import bounded_map
from tasks.runs import write_stage_result
from tasks.sources import SourceError, SourceItem, iter_source
from tasks.storage import ObjectStore

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """Ingest found nothing usable, or refused more than the configured fraction."""


@dataclass(frozen=True)
class CheckedImage:
    item: SourceItem
    sha256: str = ""
    ext: str = ""
    width: int = 0
    height: int = 0
    data: bytes = b""
    problem: str | None = None


def check_label(label: str | None, alphabet: str, max_length: int) -> str | None:
    """Why `label` is unusable, or None."""
    if label is None:
        return "no label: the file is not listed in labels.csv"
    if not label:
        return "empty label"
    if len(label) > max_length:
        return f"label {label!r} is longer than max_label_length ({max_length})"
    if any(not c.isprintable() or c.isspace() for c in label):
        return f"label {label!r} has spaces or unprintable characters"
    outside = sorted(set(label) - set(alphabet)) if alphabet else []
    if outside:
        return f"label {label!r} has characters outside the alphabet: {''.join(outside)!r}"
    return None


def check_item(item: SourceItem, alphabet: str, max_length: int) -> CheckedImage:
    """Read, decode and validate one source item; any problem is returned, never raised."""
    if item.problem:
        return CheckedImage(item, problem=item.problem)
    problem = check_label(item.label, alphabet, max_length)
    if problem:
        return CheckedImage(item, problem=problem)
    try:
        data = item.read()
        image, ext = decode_image(data)
    except (ImageRejected, SourceError, OSError) as error:
        return CheckedImage(item, problem=str(error))
    return CheckedImage(item, hashlib.sha256(data).hexdigest(), ext, image.width, image.height, data)


def data_version(entries: dict[str, dict]) -> str:
    """A short hash of the data set's content: the images (by hash) and their labels."""
    digest = hashlib.sha256()
    for sha in sorted(entries):
        digest.update(f"{sha}\t{entries[sha]['label']}\n".encode())
    return digest.hexdigest()[:16]


def ingest(cfg: PipelineConfig, store: ObjectStore, s3_options: dict | None = None,
           workers: int = 8) -> dict:
    """Ingest `cfg.source` into `store`; return the summary (also stored as runs/<run key>/ingest.json)."""
    started = time.perf_counter()
    existing = set(store.list("raw/"))
    entries: dict[str, dict] = {}
    names_of: dict[str, list[str]] = {}
    conflicted: set[str] = set()
    quarantine: list[dict] = []
    seen = written = 0
    try:
        items = iter_source(cfg.source, s3_options)
        with ThreadPoolExecutor(workers) as pool:
            check = lambda item: check_item(item, cfg.alphabet, cfg.max_label_length)  # noqa: E731
            for checked in bounded_map(pool, check, items, 4 * workers):
                seen += 1
                name = checked.item.name
                if checked.problem:
                    quarantine.append({"name": name, "reason": checked.problem})
                    continue
                sha = checked.sha256
                if sha in conflicted:
                    quarantine.append({"name": name, "reason": "the same image has two different labels"})
                    continue
                if sha in entries:
                    if entries[sha]["label"] == checked.item.label:
                        names_of[sha].append(name)
                        continue
                    # One image under two labels: no copy of it can be trusted.
                    conflicted.add(sha)
                    first = entries.pop(sha)
                    reason = f"the same image is labelled both {first['label']!r} and {checked.item.label!r}"
                    quarantine.extend({"name": other, "reason": reason} for other in names_of.pop(sha) + [name])
                    continue
                key = f"raw/{sha}.{checked.ext}"
                if key not in existing:
                    store.put_bytes(key, checked.data)
                    existing.add(key)
                    written += 1
                entries[sha] = {"sha256": sha, "label": checked.item.label, "name": name, "ext": checked.ext,
                                "width": checked.width, "height": checked.height}
                names_of[sha] = [name]
    except SourceError as error:
        raise IngestError(f"cannot read source {cfg.source!r}: {error}") from None

    version = data_version(entries)
    manifest_key = f"manifests/{version}.jsonl"
    quarantine_key = f"quarantine/{cfg.run_key}.jsonl"
    store.put_bytes(quarantine_key, "".join(json.dumps(q) + "\n" for q in quarantine).encode())
    refused = len(quarantine)
    summary = {
        "source": cfg.source, "data_version": version, "manifest": manifest_key, "quarantine": quarantine_key,
        "seen": seen, "stored": len(entries), "duplicates": seen - len(entries) - refused, "refused": refused,
        "new_objects": written, "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("ingest: %(seen)d seen, %(stored)d usable, %(duplicates)d duplicates, %(refused)d refused, "
             "%(new_objects)d new objects stored", summary)
    if not entries:
        raise IngestError(f"no usable image in source {cfg.source!r} ({seen} seen, {refused} refused; "
                          f"reasons in {store.url(quarantine_key)})")
    if refused > cfg.max_refused_fraction * seen:
        raise IngestError(f"{refused} of {seen} images refused, over the max_refused_fraction of "
                          f"{cfg.max_refused_fraction:.0%}; reasons in {store.url(quarantine_key)}")
    summary["up_to_date"] = up_to_date(cfg, store, version)
    if summary["up_to_date"]:
        log.info("ingest: %s", summary["up_to_date"])
    if not store.exists(manifest_key):
        store.put_bytes(manifest_key, "".join(json.dumps(entries[s], sort_keys=True) + "\n"
                                              for s in sorted(entries)).encode())
    return write_stage_result(store, cfg.run_key, "ingest", summary)


def up_to_date(cfg: PipelineConfig, store: ObjectStore, version: str) -> str | None:
    """Why no retraining is needed (the published model was trained on this very data with these
    settings), or None when it is, or when `force` asks for it anyway."""
    from tasks.publish import LATEST

    if cfg.force or not store.exists(LATEST):
        return None
    latest = store.get_json(LATEST)
    if latest.get("data_version") == version and latest.get("settings") == cfg.model_settings():
        return (f"nothing new: the published model {latest['version']} was trained on data version {version} "
                "with the same settings; the champion stays (set force to retrain)")
    return None


def read_manifest(store: ObjectStore, key: str) -> list[dict]:
    """The entries of a stored manifest."""
    return [json.loads(line) for line in store.get_bytes(key).decode().splitlines() if line]
