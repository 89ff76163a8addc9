"""The `file://` store: a folder on a local or mounted file system (the embedded default)."""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

from tasks.store.base import (
    MissingObjectError, ObjectStore, PreconditionFailed, StoreError, atomic_copy_to, check_key,
)


class LocalStore(ObjectStore):
    """A folder on a local or mounted file system."""

    scheme = "file"

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = self.root.as_uri()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"store {self.uri} cannot be created: {error.strerror or error}") from None

    @classmethod
    def from_uri(cls, uri: str, options: dict | None = None) -> "LocalStore":
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"store URI {uri!r}: file:// URIs must be absolute paths (file:///...)")
        return cls(unquote(parsed.path))

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextmanager
    def _writing(self, key: str):
        """Turn what the file system refuses (no permission, no space, a file where a folder should be)
        into a StoreError naming the store and the key."""
        try:
            yield
        except OSError as error:
            raise StoreError(f"store {self.uri}: writing {key!r} failed: {error.strerror or error}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._writing(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise MissingObjectError(f"{self.url(key)} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        if prefix:
            check_key(prefix.rstrip("/"))
        folder = prefix if prefix.endswith("/") or not prefix else prefix.rpartition("/")[0]
        base = self.root / folder
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, dirnames, names in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in names:
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if not name.startswith(".") and key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def upload_file(self, local_path: str | Path, key: str) -> None:
        path = self._path(key)
        with self._writing(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                shutil.copyfile(local_path, tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def download_file(self, key: str, local_path: str | Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise MissingObjectError(f"{self.url(key)} does not exist")
        atomic_copy_to(Path(local_path), lambda tmp: shutil.copyfile(source, tmp))

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def put_if(self, key: str, data: bytes, tag: str | None) -> str:
        with self._locked(key):
            try:
                current = self.get_tagged(key)[1]
            except MissingObjectError:
                current = None
            if current != tag:
                raise PreconditionFailed(f"{self.url(key)} changed since it was read" if tag else
                                         f"{self.url(key)} was created since it was found missing")
            self.put_bytes(key, data)
        return hashlib.sha256(data).hexdigest()

    @contextmanager
    def _locked(self, key: str):
        """An exclusive lock on the folder of `key` among the processes of this host (flock on the
        folder itself, so no lock file is left behind)."""
        folder = self._path(key).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check_access(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"store {self.uri} is not writable by this process")
