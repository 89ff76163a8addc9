"""Stage 3, build_shards: TFRecord shards per split, built incrementally and cached.

Records hold preprocessed pixels (the format: tasks.data.shards), so reading a batch is a parse and
a reshape, with no image decoding in the training input pipeline.

Shard files belong to a family (same alphabet, split rule and preprocessing) and are named by their
content: shards/<family>/<split>-<digest>.tfrecord. A shard set lists the files that hold one data
version: shards/sets/<cache key>.json, written last (a set without its index is never read). When
the data set grows, the new set reuses every file of the family's last set and writes files only
for the new images, so a night with 1% new images writes about 1% of the pixels. Files are sized to
TARGET_SHARD_MB, with at least MIN_FILES per split once there are images enough, so several readers
(or workers of a multi-worker strategy) read disjoint files.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from tasks.data.images import preprocess_bytes
from tasks.data.labels import SPLITS
from tasks.data.parallel import CpuPool, bounded_map
from tasks.data.shards import SHARD_FORMAT, serialize_example, shard_index_key
from tasks.pipeline.records import read_stage_result, write_stage_result
from tasks.reporting.progress import Progress
from tasks.store import MissingObjectError, ObjectStore

log = logging.getLogger(__name__)
# File sizes and counts: docs/decisions.md#shard-sizes.
TARGET_SHARD_MB = 64
MIN_FILES = 8
MIN_RECORDS_PER_FILE = 256
MAX_SMALL_FILES = 16


def shard_family(alphabet: str, split_rule: str, height: int, width: int, method: str) -> str:
    """Shards of one family hold records that mean the same in any set: same ids, split and pixels."""
    text = f"{alphabet}|{split_rule}|{height}x{width}|{method}-uint8|format{SHARD_FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_cache_key(encoded_key: str, height: int, width: int, method: str) -> str:
    """Cache key of a shard set: the encoded data (content and labels) and the preprocessing settings."""
    text = f"{encoded_key}|{height}x{width}|{method}-uint8|format{SHARD_FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_record(job: tuple[bytes, list[int], str, int, int, str]) -> bytes:
    """(image bytes, label ids, sha256, height, width, preprocessing) -> the shard record; runs in worker
    processes."""
    data, ids, sha256, height, width, method = job
    return serialize_example(preprocess_bytes(data, height, width, method).tobytes(), ids, sha256)


def shard_count(images: int, height: int, width: int, min_files: int = MIN_FILES) -> int:
    """Files for `images` records: enough to stay near TARGET_SHARD_MB each, and at least `min_files`
    (never fewer than MIN_RECORDS_PER_FILE records each) so reads can run in parallel."""
    by_size = math.ceil(images * _record_bytes(height, width) / (TARGET_SHARD_MB * 1024 * 1024))
    by_readers = min(min_files, math.ceil(images / MIN_RECORDS_PER_FILE))
    return max(1, by_size, by_readers)


def _record_bytes(height: int, width: int) -> int:
    return height * width + 100


class _SplitWriter:
    """Round-robin writer of one split's records into `count` local files."""

    def __init__(self, workdir: Path, split: str, count: int):
        import tensorflow as tf

        self.paths = [workdir / f"{split}-{i:05d}-{time.monotonic_ns()}.tmp" for i in range(count)]
        self.writers = [tf.io.TFRecordWriter(str(p)) for p in self.paths]
        self.counts = [0] * count
        self.split = split

    def write(self, record: bytes) -> None:
        i = sum(self.counts) % len(self.writers)
        self.writers[i].write(record)
        self.counts[i] += 1

    def close(self) -> list[tuple[Path, str, int]]:
        """(local path, file name, records) of each non-empty file; the name is a hash of its content."""
        for writer in self.writers:
            writer.close()
        return [(path, f"{self.split}-{_file_digest(path)}.tfrecord", n)
                for path, n in zip(self.paths, self.counts) if n]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:20]


def _upload(store: ObjectStore, family: str, written: list[tuple[Path, str, int]]) -> list[dict]:
    entries = []
    for path, name, records in written:
        key = f"shards/{family}/{name}"
        store.upload_file(path, key)
        entries.append({"key": key, "records": records})
    return entries


def _new_rows(store: ObjectStore, encoded_key: str, base: dict | None) -> Iterator[dict] | None:
    """The rows of `encoded_key` not already in the base set, by a merge of the two sorted encoded
    files; None if the base holds anything the new data set lacks (then everything is rebuilt)."""
    current = store.iter_jsonl(encoded_key)
    if base is None:
        yield from current
        return
    previous = store.iter_jsonl(base["encoded"])
    old = next(previous, None)
    for row in current:
        if old is not None and old["sha256"] < row["sha256"]:
            raise _BaseMismatch(old["sha256"])
        if old is not None and old["sha256"] == row["sha256"]:
            if (old["ids"], old["split"]) != (row["ids"], row["split"]):
                raise _BaseMismatch(old["sha256"])
            old = next(previous, None)
            continue
        yield row
    if old is not None:
        raise _BaseMismatch(old["sha256"])


class _BaseMismatch(Exception):
    """The family's last set holds an image the new data set does not: it cannot be extended."""


def _write_new_shards(store: ObjectStore, rows: Iterator[dict], counts: dict, family: str, height: int,
                      width: int, method: str, workdir: Path, workers: int, min_files: int) -> dict[str, list[dict]]:
    """Preprocess `rows` in parallel into new shard files per split; upload them; return their entries."""
    writers = {split: _SplitWriter(workdir, split, shard_count(counts[split], height, width, min_files))
               for split in SPLITS if counts[split]}

    with CpuPool() as cpu:
        def prepare(row: dict) -> tuple[str, bytes]:
            # A thread fetches the image (I/O); a worker process decodes, resizes and encodes it (CPU).
            data = store.get_bytes(f"raw/{row['sha256']}.{row['ext']}")
            job = (data, row["ids"], row["sha256"], height, width, method)
            return row["split"], cpu.submit(encode_record, job).result()

        progress = Progress("build_shards: images encoded", total=sum(counts.values()), logger=log)
        with ThreadPoolExecutor(workers) as io_pool:
            for split, record in progress.track(bounded_map(io_pool, prepare, rows, 8 * workers)):
                writers[split].write(record)
    return {split: _upload(store, family, writers[split].close()) if split in writers else [] for split in SPLITS}


def _compact(store: ObjectStore, files: list[dict], split: str, family: str, height: int, width: int,
             workdir: Path) -> list[dict]:
    """Merge a split's small files once there are more than MAX_SMALL_FILES of them (each night of a
    growing data set adds a few): readers then open a handful of files, not hundreds."""
    import tensorflow as tf

    small_limit = TARGET_SHARD_MB * 1024 * 1024 // 2
    small = [f for f in files if f["records"] * _record_bytes(height, width) < small_limit]
    if len(small) <= MAX_SMALL_FILES:
        return files
    records = sum(f["records"] for f in small)
    writer = _SplitWriter(workdir, split, shard_count(records, height, width, min_files=1))
    for entry in small:
        local = workdir / "compact-input.tfrecord"
        store.download_file(entry["key"], local)
        for record in tf.data.TFRecordDataset(str(local)):
            writer.write(record.numpy())
    merged = _upload(store, family, writer.close())
    log.info("build_shards: %d small %s files merged into %d", len(small), split, len(merged))
    return [f for f in files if f not in small] + merged


def _count_new(store: ObjectStore, encoded_key: str, base: dict | None) -> dict | None:
    """Per split, how many rows are new over the base; None if the base cannot be extended."""
    counts = dict.fromkeys(SPLITS, 0)
    try:
        for row in _new_rows(store, encoded_key, base):
            counts[row["split"]] += 1
    except _BaseMismatch as mismatch:
        log.info("build_shards: the last shard set holds %s, which the data set no longer has; rebuilding", mismatch)
        return None
    return counts


def _family_base(store: ObjectStore, family: str) -> dict | None:
    """The family's last shard set, to extend; None where there is none or a file it names is gone."""
    try:
        base = store.get_json(f"shards/{family}/latest.json")
    except MissingObjectError:
        return None
    missing = [f["key"] for files in base["files"].values() for f in files if not store.exists(f["key"])]
    if missing:
        log.info("build_shards: the family's last shard set lacks %d of its files (%s...): building afresh",
                 len(missing), missing[0])
        return None
    return base


def build_shards(cfg, store: ObjectStore, workers: int | None = None) -> dict:
    """Build (or reuse, or extend) the shard set for this run's encoded data; return the stage summary."""
    started = time.perf_counter()
    encoded = read_stage_result(store, cfg.run_key, "encode_labels")
    height, width, method = encoded["height"], encoded["width"], encoded["preprocessing"]
    cache_key = shard_cache_key(encoded["encoded"], height, width, method)
    index_key = shard_index_key(cache_key)
    summary = {"cache_key": cache_key, "index": index_key}
    if store.exists(index_key):
        log.info("build_shards: shard set %s is complete, reused; nothing rebuilt", cache_key)
        return write_stage_result(store, cfg.run_key, "build_shards", {**summary, "reused": True})
    family = shard_family(encoded["alphabet"], encoded["split_rule"], height, width, method)
    base = _family_base(store, family)
    new_counts = _count_new(store, encoded["encoded"], base) if base else None
    if new_counts is None:
        base, new_counts = None, dict(encoded["splits"])
    workers = workers or min(32, 2 * (os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="shards-") as workdir:
        # A night's new images go into as few files as their size needs; a full build spreads the
        # data over at least MIN_FILES per split.
        new_files = _write_new_shards(store, _new_rows(store, encoded["encoded"], base), new_counts, family,
                                      height, width, method, Path(workdir), workers, 1 if base else MIN_FILES)
        files = {split: _compact(store, (base["files"][split] if base else []) + new_files[split], split, family,
                                 height, width, Path(workdir)) for split in SPLITS}
    new_images = sum(new_counts.values())
    seconds = time.perf_counter() - started
    index = {
        "cache_key": cache_key, "family": family, "encoded": encoded["encoded"], "files": files,
        "counts": encoded["splits"], "height": height, "width": width, "preprocessing": method,
        "alphabet": encoded["alphabet"],
        "max_length": encoded["max_length"], "num_classes": encoded["num_classes"],
        "data_version": encoded["data_version"], "format": SHARD_FORMAT,
    }
    store.put_json(index_key, index)
    store.put_json(f"shards/{family}/latest.json", {"cache_key": cache_key, "encoded": encoded["encoded"],
                                                    "files": files})
    reused_files = sum(len(base["files"][split]) for split in SPLITS) if base else 0
    log.info("build_shards: %d new images into %d new shard files (%d files reused) in %.1f s (%.0f images/s)",
             new_images, sum(map(len, new_files.values())), reused_files, seconds, new_images / max(seconds, 1e-9))
    return write_stage_result(store, cfg.run_key, "build_shards", {
        **summary, "reused": False, "extended": base is not None, "images": new_images,
        "files_written": sum(map(len, new_files.values())), "files_reused": reused_files,
        "seconds": round(seconds, 2), "images_per_s": round(new_images / max(seconds, 1e-9), 1)})
