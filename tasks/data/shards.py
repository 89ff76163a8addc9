"""The shard format and how readers find shard files.

Each record is a serialized tf.train.Example holding the preprocessed image as raw uint8 pixels
(height x width, grey), the label ids and the image's sha256. A complete shard set is listed by its
index, shards/sets/<cache key>.json (written by build_shards after its files).
"""
from __future__ import annotations

import os
from pathlib import Path

from tasks.store import ObjectStore

SHARD_FORMAT = 2


def default_cache_dir() -> Path:
    """Local cache of downloaded shards: CAPTCHA_CACHE_DIR, else ~/.cache/captcha-training."""
    return Path(os.environ.get("CAPTCHA_CACHE_DIR") or Path.home() / ".cache" / "captcha-training")


def shard_index_key(cache_key: str) -> str:
    return f"shards/sets/{cache_key}.json"


def serialize_example(pixels: bytes, ids: list[int], sha256: str) -> bytes:
    """One serialized tf.train.Example (features image: raw pixels, label: ids, sha256), encoded
    without TensorFlow so worker processes need not import it."""
    features = b"".join(_map_entry(key, feature) for key, feature in (
        ("image", _field(1, _field(1, pixels))),
        ("label", _field(3, _field(1, b"".join(_varint(i) for i in ids)))),
        ("sha256", _field(1, _field(1, sha256.encode()))),
    ))
    return _field(1, features)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _map_entry(key: str, feature: bytes) -> bytes:
    return _field(1, _field(1, key.encode()) + _field(2, feature))


def read_shard_index(store: ObjectStore, cache_key: str) -> dict:
    """The index of a complete shard set."""
    return store.get_json(shard_index_key(cache_key))


def local_shard_files(store: ObjectStore, index: dict, cache_dir: Path) -> dict[str, list[str]]:
    """Local paths of the shard files, per split: in place for a store of local files, else downloaded once
    into `cache_dir/` under the same key as in the store: shard files are named by their content, so
    a rerun on the same worker downloads nothing, and a grown set downloads only its new files."""
    paths: dict[str, list[str]] = {}
    for split, files in index["files"].items():
        paths[split] = []
        for key in (f["key"] for f in files):
            local = store.local_path(key)
            if local is None:
                local = cache_dir / key
                if not local.exists():
                    store.download_file(key, local)
            paths[split].append(str(local))
    return paths
