"""Stage 3, build_shards: TFRecord shards per split, cached by data and preprocessing settings.

Each tf.train.Example holds the preprocessed image as raw uint8 pixels (height x width, grey), the
label ids and the image's sha256: reading a batch is then a parse and a reshape, with no image
decoding in the training input pipeline.

Layout: shards/<cache key>/<split>-<i>-of-<n>.tfrecord, then shards/<cache key>/index.json written
last: a shard set without its index is incomplete and is never read.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.images import preprocess_bytes
from tasks.labels import SPLITS
from tasks.parallel import bounded_map
from tasks.runs import read_stage_result, write_stage_result
from tasks.storage import ObjectStore

log = logging.getLogger(__name__)
SHARD_FORMAT = 1
TARGET_SHARD_BYTES = 64 * 1024 * 1024


def shard_cache_key(encoded_key: str, height: int, width: int) -> str:
    """Cache key of a shard set: the encoded data (content and labels) and the preprocessing settings."""
    text = f"{encoded_key}|{height}x{width}|grey-uint8|format{SHARD_FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_index_key(cache_key: str) -> str:
    return f"shards/{cache_key}/index.json"


def serialize_example(pixels, ids: list[int], sha256: str) -> bytes:
    """One tf.train.Example: raw pixels, label ids, content hash."""
    import tensorflow as tf

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pixels.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=ids)),
        "sha256": tf.train.Feature(bytes_list=tf.train.BytesList(value=[sha256.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _shard_count(images: int, height: int, width: int) -> int:
    return max(1, math.ceil(images * (height * width + 64) / TARGET_SHARD_BYTES))


def write_split(store: ObjectStore, rows: list[dict], split: str, cache_key: str, height: int, width: int,
                workdir: Path, workers: int) -> list[str]:
    """Preprocess the split's images in parallel and write its shards; return their store keys."""
    import tensorflow as tf

    count = _shard_count(len(rows), height, width)
    names = [f"{split}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]
    writers = [tf.io.TFRecordWriter(str(workdir / name)) for name in names]

    def prepare(row: dict) -> bytes:
        data = store.get_bytes(f"raw/{row['sha256']}.{row['ext']}")
        return serialize_example(preprocess_bytes(data, height, width), row["ids"], row["sha256"])

    try:
        with ThreadPoolExecutor(workers) as pool:
            for i, record in enumerate(bounded_map(pool, prepare, rows, 8 * workers)):
                writers[i % count].write(record)
    finally:
        for writer in writers:
            writer.close()
    keys = []
    for name in names:
        key = f"shards/{cache_key}/{name}"
        store.upload_file(workdir / name, key)
        keys.append(key)
    return keys


def build_shards(cfg, store: ObjectStore, workers: int | None = None) -> dict:
    """Build (or reuse) the shard set for this run's encoded data; return the stage summary."""
    started = time.perf_counter()
    encoded = read_stage_result(store, cfg.run_key, "encode_labels")
    cache_key = shard_cache_key(encoded["encoded"], cfg.height, cfg.width)
    index_key = shard_index_key(cache_key)
    summary = {"cache_key": cache_key, "index": index_key}
    if store.exists(index_key):
        log.info("build_shards: shard set %s is complete, reused; nothing rebuilt", cache_key)
        return write_stage_result(store, cfg.run_key, "build_shards", {**summary, "reused": True})
    rows = [json.loads(line) for line in store.get_bytes(encoded["encoded"]).decode().splitlines() if line]
    workers = workers or min(32, 2 * (os.cpu_count() or 1))
    files = {}
    with tempfile.TemporaryDirectory(prefix="shards-") as workdir:
        for split in SPLITS:
            split_rows = [r for r in rows if r["split"] == split]
            files[split] = write_split(store, split_rows, split, cache_key, cfg.height, cfg.width,
                                       Path(workdir), workers)
    seconds = time.perf_counter() - started
    index = {
        "cache_key": cache_key, "files": files, "counts": encoded["splits"], "height": cfg.height,
        "width": cfg.width, "alphabet": encoded["alphabet"], "max_length": encoded["max_length"],
        "num_classes": encoded["num_classes"], "data_version": encoded["data_version"],
        "format": SHARD_FORMAT,
    }
    store.put_json(index_key, index)
    log.info("build_shards: %d images into %d shards in %.1f s (%.0f images/s)", len(rows),
             sum(map(len, files.values())), seconds, len(rows) / max(seconds, 1e-9))
    return write_stage_result(store, cfg.run_key, "build_shards",
                              {**summary, "reused": False, "images": len(rows), "seconds": round(seconds, 2)})


def read_shard_index(store: ObjectStore, cache_key: str) -> dict:
    """The index of a complete shard set."""
    return store.get_json(shard_index_key(cache_key))


def local_shard_files(store: ObjectStore, index: dict, cache_dir: Path) -> dict[str, list[str]]:
    """Local paths of the shard files, per split: in place for a file:// store, else downloaded once
    into `cache_dir/<cache key>/` (a rerun on the same worker downloads nothing)."""
    from tasks.storage import LocalStore

    if isinstance(store, LocalStore):
        return {split: [str(store.root / key) for key in keys] for split, keys in index["files"].items()}
    target = cache_dir / index["cache_key"]
    paths = {}
    for split, keys in index["files"].items():
        paths[split] = []
        for key in keys:
            local = target / Path(key).name
            if not local.exists():
                store.download_file(key, local)
            paths[split].append(str(local))
    return paths
