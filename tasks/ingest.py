"""Stage 1, ingest: add the source's usable images to the stored data set, each once by content hash.

The data set grows: each run adds what is new in the source (a landing folder or prefix, say) to what
earlier runs stored, and its data version is a hash of the whole stored set. A source item whose
fingerprint (size and modification time, or S3 ETag) and label are as when it was last read is not
read again. Ingest streams: the working state is a temporary SQLite catalog (tasks.data.catalog), never
the data set in memory.

Store layout written here:
  raw/<sha256>.<ext>               each usable image, once, whatever its name or how often it is ingested
  manifests/<data version>.jsonl   the data set: one line per image (sha256, label, name, ext, width,
                                   height), sorted by sha256
  manifests/current.json           which manifest is the data set now (written after the manifest)
  ledgers/<source id>.jsonl        the source's usable items as last read (name, fingerprint, sha256, label)
  quarantine/<run key>.jsonl       every refused image with the reason
  runs/<run key>/ingest.json       this stage's summary, which encode_labels reads
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tasks.data.catalog import Catalog
from tasks.data.images import ImageRejected, decode_image
from tasks.data.labels import check_label
from tasks.data.manifests import CURRENT, manifest_key
from tasks.data.parallel import CpuPool, bounded_map
from tasks.data.sources import SourceError, SourceItem, iter_source
from tasks.pipeline.config import PipelineConfig
from tasks.pipeline.failures import PermanentError
from tasks.pipeline.records import write_stage_result
from tasks.reporting.progress import Progress
from tasks.store import MissingObjectError, ObjectStore, check_key, update_json

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """Ingest could not read its source."""


class IngestRefused(IngestError, PermanentError):
    """Ingest found nothing usable, or refused more than the configured fraction: the same source
    gives the same answer however often it is read."""


@dataclass(frozen=True)
class CheckedImage:
    item: SourceItem
    sha256: str = ""
    ext: str = ""
    width: int = 0
    height: int = 0
    data: bytes = b""
    problem: str | None = None
    unchanged: bool = False  # known from the ledger; not read


def check_item(item: SourceItem, cfg: PipelineConfig, known: dict | None, cpu: Executor) -> CheckedImage:
    """Read and validate one source item, decoding and hashing it on `cpu`; any problem is returned,
    never raised. `known`, the item's ledger entry, stands in for reading it."""
    if item.problem:
        return CheckedImage(item, problem=item.problem)
    problem = check_label(item.label, cfg)
    if problem:
        return CheckedImage(item, problem=problem)
    if known:
        return CheckedImage(item, known["sha256"], known["ext"], known["width"], known["height"], unchanged=True)
    try:
        data = item.read()
    except (SourceError, OSError) as error:
        return CheckedImage(item, problem=str(error))
    inspected = cpu.submit(inspect_image, data).result()
    if isinstance(inspected, str):
        return CheckedImage(item, problem=inspected)
    return CheckedImage(item, *inspected, data=data)


def inspect_image(data: bytes) -> tuple[str, str, int, int] | str:
    """(sha256, extension, width, height) of an image, or why it is refused; runs in worker processes."""
    try:
        image, ext = decode_image(data)
    except ImageRejected as error:
        return str(error)
    return hashlib.sha256(data).hexdigest(), ext, image.width, image.height


def source_id(source: str) -> str:
    """The name of a source's ledger: a hash of its URI."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def ingest(cfg: PipelineConfig, store: ObjectStore, s3_options: dict | None = None,
           workers: int = 8) -> dict:
    """Add `cfg.source`'s usable images to the data set in `store`; return the summary (also stored as
    runs/<run key>/ingest.json)."""
    started = time.perf_counter()
    ledger_key = f"ledgers/{source_id(cfg.source)}.jsonl"
    quarantine_key = f"quarantine/{cfg.run_key}.jsonl"
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        work = Path(tmp)
        catalog = Catalog(work / "catalog.sqlite")
        try:
            previous = _load_previous(store, catalog, ledger_key)
            with open(work / "quarantine.jsonl", "w") as quarantine, open(work / "ledger.jsonl", "w") as ledger:
                counts = _scan_source(cfg, store, catalog, s3_options, workers, quarantine, ledger)
            new_images = catalog.add_found_to_stored()
            version = catalog.data_version()
            summary = {"source": cfg.source, "data_version": version, "manifest": manifest_key(version),
                       "quarantine": quarantine_key, **counts, "stored": catalog.found_count(),
                       "new_images": new_images, "total_images": catalog.stored_count()}
            summary["duplicates"] = summary["seen"] - summary["stored"] - summary["refused"]
            store.upload_file(work / "quarantine.jsonl", quarantine_key)
            _check_counts(cfg, store, summary)
            _publish_data_set(store, catalog, work / "manifest.jsonl", summary, previous)
            store.upload_file(work / "ledger.jsonl", ledger_key)
        finally:
            catalog.close()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["images_per_s"] = round(summary["seen"] / max(summary["seconds"], 1e-9), 1)
    log.info("ingest: %(seen)d seen (%(unchanged)d unchanged since last read), %(stored)d usable, "
             "%(duplicates)d duplicates, %(refused)d refused; %(new_images)d new images, %(new_objects)d new "
             "objects; data set %(total_images)d images, version %(data_version)s; %(images_per_s).0f images/s",
             summary)
    summary["up_to_date"] = up_to_date(cfg, store, summary["data_version"])
    if summary["up_to_date"]:
        log.info("ingest: %s", summary["up_to_date"])
    return write_stage_result(store, cfg.run_key, "ingest", summary)


def _load_previous(store: ObjectStore, catalog: Catalog, ledger_key: str) -> str | None:
    """Load the stored data set and the source's ledger into the catalog; return the data version."""
    try:
        current = store.get_json(CURRENT)
    except MissingObjectError:
        current = None
    if current:
        catalog.load("stored", store.iter_jsonl(check_key(current["manifest"])))
    if store.exists(ledger_key):
        catalog.load("ledger", store.iter_jsonl(ledger_key))
    return current["data_version"] if current else None


def _scan_source(cfg, store, catalog: Catalog, s3_options, workers: int, quarantine, ledger) -> dict:
    """Check every source item (in parallel; unchanged ones from the ledger) and record the outcome in
    the catalog, the quarantine file and the new ledger file; store new images under raw/."""
    seen = refused = unchanged = written = 0

    def refuse(name: str, reason: str) -> None:
        nonlocal refused
        refused += 1
        quarantine.write(json.dumps({"name": name, "reason": reason}) + "\n")

    def with_ledger(items):
        for item in items:
            yield item, catalog.ledger_entry(item.name, item.fingerprint, item.label)

    uploads: deque = deque()

    def store_image(key: str, data: bytes) -> bool:
        if store.exists(key):
            return False
        store.put_bytes(key, data)
        return True

    try:
        items = with_ledger(iter_source(cfg.source, s3_options))
        # Threads read (I/O) and wait for worker processes that decode and hash (CPU); a pool of
        # threads uploads new images while the next ones are checked.
        with CpuPool() as cpu, ThreadPoolExecutor(workers) as readers, ThreadPoolExecutor(workers) as uploaders:
            check = lambda pair: check_item(pair[0], cfg, pair[1], cpu)  # noqa: E731
            progress = Progress("ingest: images checked", logger=log)  # a source's size is not known ahead
            for checked in progress.track(bounded_map(readers, check, items, 4 * workers)):
                seen += 1
                name, label, sha = checked.item.name, checked.item.label, checked.sha256
                if checked.problem:
                    refuse(name, checked.problem)
                    continue
                stored_label = catalog.stored_label(sha)
                if stored_label is not None and stored_label != label:
                    refuse(name, f"the same image is already stored labelled {stored_label!r}; the stored one is kept")
                    continue
                if catalog.is_conflicted(sha):
                    refuse(name, "the same image has two different labels")
                    continue
                found = catalog.found_entry(sha)
                if found and found[0] != label:
                    # One image under two labels in one source: no copy of it can be trusted.
                    first_label, names = catalog.conflict(sha)
                    reason = f"the same image is labelled both {first_label!r} and {label!r}"
                    for other in names + [name]:
                        refuse(other, reason)
                    continue
                entry = {"sha256": sha, "label": label, "name": name, "ext": checked.ext,
                         "width": checked.width, "height": checked.height}
                if checked.item.fingerprint:
                    ledger.write(json.dumps({**entry, "fingerprint": checked.item.fingerprint}) + "\n")
                unchanged += checked.unchanged
                if found:
                    catalog.add_name(sha, name)
                    continue
                catalog.add_found(entry)
                if stored_label is None:
                    uploads.append(uploaders.submit(store_image, f"raw/{sha}.{checked.ext}", checked.data))
                    while len(uploads) > 4 * workers:
                        written += uploads.popleft().result()
            while uploads:
                written += uploads.popleft().result()
    except SourceError as error:
        raise IngestError(f"cannot read source {cfg.source!r}: {error}") from None
    return {"seen": seen, "refused": refused, "unchanged": unchanged, "new_objects": written}


def _check_counts(cfg, store: ObjectStore, summary: dict) -> None:
    if not summary["total_images"]:
        raise IngestRefused(f"no usable image in source {cfg.source!r} ({summary['seen']} seen, "
                          f"{summary['refused']} refused; reasons in {store.url(summary['quarantine'])})")
    if summary["refused"] > cfg.max_refused_fraction * summary["seen"]:
        raise IngestRefused(f"{summary['refused']} of {summary['seen']} images refused, over the "
                          f"max_refused_fraction of {cfg.max_refused_fraction:.0%}; reasons in "
                          f"{store.url(summary['quarantine'])}")


def _publish_data_set(store: ObjectStore, catalog: Catalog, local: Path, summary: dict, loaded: str | None) -> None:
    """Write the data set's manifest, then move manifests/current.json to it by compare-and-swap (a
    reader never finds a pointer to half a manifest). If another ingest moved the pointer since this
    one loaded the data set (version `loaded`), its images are merged in (its labels kept) and the
    manifest written again: two ingests at once both land. Updates `summary`."""
    def add_ours(current: dict | None) -> dict | None:
        nonlocal loaded
        if current and current["data_version"] != loaded:
            log.info("ingest: another ingest stored data version %s meanwhile; merging its images in",
                     current["data_version"])
            catalog.load("stored", store.iter_jsonl(check_key(current["manifest"])))
            loaded = current["data_version"]
            summary.update(data_version=catalog.data_version(), total_images=catalog.stored_count())
            summary["manifest"] = manifest_key(summary["data_version"])
        if summary["data_version"] == loaded:
            return None  # the stored data set already is this one
        with open(local, "w") as manifest:
            for entry in catalog.stored_entries():
                manifest.write(json.dumps(entry, sort_keys=True) + "\n")
        store.upload_file(local, summary["manifest"])
        return {"data_version": summary["data_version"], "manifest": summary["manifest"],
                "images": summary["total_images"]}

    update_json(store, CURRENT, add_ours)


def up_to_date(cfg: PipelineConfig, store: ObjectStore, version: str) -> str | None:
    """Why no retraining is needed (the published model was trained on this very data with these
    settings), or None when it is, or when `force` asks for it anyway."""
    from tasks.registry import LATEST

    if cfg.force or not store.exists(LATEST):
        return None
    latest = store.get_json(LATEST)
    if latest.get("data_version") == version and latest.get("settings") == cfg.model_settings():
        return (f"nothing new: the published model {latest['version']} was trained on data version {version} "
                "with the same settings; the champion stays (set force to retrain)")
    return None
