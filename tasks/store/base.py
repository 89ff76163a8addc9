"""The object-store interface every backend implements, and the registry that picks one by URI scheme.

Keys are relative, '/'-separated names made of letters, digits, '.', '_' and '-' only, so a key can
never climb out of the store root. Every write is atomic: a reader sees the old object or the new
one, never a partial one. Pointers that several runs may move at once (the champion, the current
data set, the audit log) are updated by compare-and-swap (`get_tagged`, `put_if`, `update_json`):
a writer that lost a race sees the winner's object and decides again, never overwrites it.
"""
from __future__ import annotations

import json
import os
import random
import re
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

from tasks.pipeline.plugins import Registry

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


class StoreError(RuntimeError):
    """The store cannot be used as asked (bad URI, bad key, unreachable endpoint)."""


class StoreUnavailable(StoreError):
    """The store did not answer, or answered with a server error: a retry may succeed."""


class MissingObjectError(StoreError, KeyError):
    """An expected object is not in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PreconditionFailed(StoreError):
    """A conditional write lost: the object is no longer the one it was read as."""


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise StoreError naming it."""
    parts = key.split("/")
    if not key or any(not _SEGMENT.fullmatch(p) or p in (".", "..") for p in parts):
        raise StoreError(f"invalid object key {key!r}: use '/'-separated names of letters, digits, '.', '_', '-'")
    return key


class ObjectStore(ABC):
    """Objects addressed by key under one root URI.

    A backend sets `scheme` (the URI scheme it serves) and implements `from_uri` and the abstract
    methods; `open_store` then finds it by scheme once it is registered (`register_store`).
    """

    scheme: str = ""
    uri: str

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: str, options: dict | None = None) -> "ObjectStore":
        """Open the store at `uri`; `options` are the backend's connection settings (S3: boto3's).
        A URI the backend cannot use raises StoreError saying why."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any object there atomically."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object's content; MissingObjectError if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys that start with `prefix`, in sorted order."""

    @abstractmethod
    def upload_file(self, local_path: str | Path, key: str) -> None:
        """Copy a local file into the store under `key`, atomically."""

    @abstractmethod
    def download_file(self, key: str, local_path: str | Path) -> None:
        """Copy the object to a local file (written atomically)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if present."""

    @abstractmethod
    def get_tagged(self, key: str) -> tuple[bytes, str]:
        """(content, tag) of the object, the tag changing whenever the object does (S3: its ETag);
        MissingObjectError if absent."""

    @abstractmethod
    def put_if(self, key: str, data: bytes, tag: str | None) -> str:
        """Store `data` under `key` only if the object still has `tag` (None: only if there is no
        object), atomically with that check; return the new tag. Raise PreconditionFailed otherwise."""

    @abstractmethod
    def check_access(self) -> None:
        """Raise StoreError, saying why, if this store cannot be reached or written."""

    def local_path(self, key: str) -> Path | None:
        """A local file holding the object, for backends whose objects are files here; else None."""
        return None

    def url(self, key: str) -> str:
        """The full URI of `key`."""
        return f"{self.uri.rstrip('/')}/{check_key(key)}"

    def put_json(self, key: str, value) -> None:
        """Store `value` as pretty JSON."""
        self.put_bytes(key, json.dumps(value, indent=2, sort_keys=True).encode())

    def get_json(self, key: str):
        """Load a JSON object stored with put_json."""
        return json.loads(self.get_bytes(key))

    def iter_jsonl(self, key: str) -> Iterator:
        """The values of a JSON-lines object, one line at a time (through a local temporary copy for
        remote stores), so a manifest of millions of lines is never held in memory."""
        with tempfile.TemporaryDirectory(prefix="jsonl-") as tmp:
            local = Path(tmp) / "object.jsonl"
            self.download_file(key, local)
            with open(local, encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        yield json.loads(line)


def update_json(store: ObjectStore, key: str, change: Callable, attempts: int = 20):
    """Read-modify-write the JSON object at `key` by compare-and-swap: `change(current)` (None when
    there is no object) returns the new value, or None to leave the object as it is; when another
    writer got in between, `change` runs again on what that writer stored. Returns the value stored
    (or left)."""
    for attempt in range(attempts):
        try:
            data, tag = store.get_tagged(key)
            current = json.loads(data)
        except MissingObjectError:
            current, tag = None, None
        new = change(current)
        if new is None:
            return current
        try:
            store.put_if(key, json.dumps(new, indent=2, sort_keys=True).encode(), tag)
            return new
        except PreconditionFailed:
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # let the other writer finish
    raise StoreError(f"{store.url(key)} changed {attempts} times while being updated; try again")


def append_jsonl(store: ObjectStore, key: str, record: dict, attempts: int = 20) -> None:
    """Append one line to the JSON-lines object at `key`, by compare-and-swap: concurrent appends all land."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    for attempt in range(attempts):
        try:
            data, tag = store.get_tagged(key)
        except MissingObjectError:
            data, tag = b"", None
        try:
            store.put_if(key, data + line, tag)
            return
        except PreconditionFailed:
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
    raise StoreError(f"{store.url(key)} changed {attempts} times while a line was being appended; try again")


def atomic_copy_to(target: Path, write) -> None:
    """Call `write(temporary path)` beside `target`, then rename the result into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)



STORES: Registry[type[ObjectStore]] = Registry("store backend", "captcha_training.stores")


def register_store(backend: type[ObjectStore], replace: bool = False) -> type[ObjectStore]:
    """Make `open_store` open URIs of `backend.scheme` with `backend`."""
    if not backend.scheme:
        raise ValueError(f"store backend {backend.__name__} names no scheme")
    return STORES.register(backend.scheme, backend, replace=replace)


def store_schemes() -> list[str]:
    """The URI schemes a store can have."""
    return STORES.names()


def open_store(uri: str, options: dict | None = None) -> ObjectStore:
    """Open the store at `uri` with the backend registered for its scheme (`file:///abs/path`,
    `s3://bucket/prefix`, ...); `options` are that backend's connection settings."""
    scheme = urlparse(uri).scheme
    backend = STORES.get(scheme) if scheme else None
    if backend is None:
        known = " or ".join(f"{s}://..." for s in store_schemes())
        raise StoreError(f"store URI {uri!r} is not supported: use {known}")
    return backend.from_uri(uri, options)
