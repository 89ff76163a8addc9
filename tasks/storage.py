"""One object-store interface with two backends: a local folder (`file://`) and S3 (`s3://bucket/prefix`).

Keys are relative, '/'-separated names made of letters, digits, '.', '_' and '-' only, so a key can
never climb out of the store root. Every write is atomic: a reader sees the old object or the new
one, never a partial one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


class StoreError(RuntimeError):
    """The store cannot be used as asked (bad URI, bad key, unreachable endpoint)."""


class MissingObjectError(StoreError, KeyError):
    """An expected object is not in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise StoreError naming it."""
    parts = key.split("/")
    if not key or any(not _SEGMENT.fullmatch(p) or p in (".", "..") for p in parts):
        raise StoreError(f"invalid object key {key!r}: use '/'-separated names of letters, digits, '.', '_', '-'")
    return key


class ObjectStore(ABC):
    """Objects addressed by key under one root URI."""

    uri: str

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
    def check_access(self) -> None:
        """Raise StoreError, saying why, if this store cannot be reached or written."""

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


class LocalStore(ObjectStore):
    """A folder on a local or mounted file system."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
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
        _atomic_copy_to(Path(local_path), lambda tmp: shutil.copyfile(source, tmp))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check_access(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"store {self.uri} is not writable by this process")


class S3Store(ObjectStore):
    """A bucket and prefix on S3 or any S3-compatible endpoint (MinIO, moto), through boto3.

    Transient errors are retried by the client (see make_s3_client); what still fails becomes a
    StoreError naming the store, the key and the error code, never a bare botocore traceback.
    """

    def __init__(self, uri: str, client_options: dict | None = None):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StoreError(f"store URI {uri!r} names no bucket; write s3://bucket/prefix")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = make_s3_client(client_options or {})

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _failures(self, action: str, key: str):
        """Turn what boto3 still raises after its retries into a StoreError that says what failed."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("NoSuchKey", "404", "NotFound"):
                raise MissingObjectError(f"{self.url(key)} does not exist") from None
            raise StoreError(f"store {self.uri}: {action} {key!r} failed: {code} "
                             f"({error.response['Error'].get('Message', '')})") from None
        except BotoCoreError as error:
            raise StoreError(f"store {self.uri}: {action} {key!r} failed: {error}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._failures("writing", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        with self._failures("reading", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            with self._failures("checking", key):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except MissingObjectError:
            return False

    def list(self, prefix: str = "") -> Iterator[str]:
        if prefix:
            check_key(prefix.rstrip("/"))
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        with self._failures("listing", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield item["Key"][strip:]

    def upload_file(self, local_path: str | Path, key: str) -> None:
        # boto3's transfer manager: large files go up in concurrent multipart chunks.
        with self._failures("writing", key):
            self.client.upload_file(str(local_path), self.bucket, self._key(key))

    def download_file(self, key: str, local_path: str | Path) -> None:
        with self._failures("reading", key):
            _atomic_copy_to(Path(local_path),
                            lambda tmp: self.client.download_file(self.bucket, self._key(key), str(tmp)))

    def delete(self, key: str) -> None:
        with self._failures("deleting", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def check_access(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            raise StoreError(f"store {self.uri}: bucket {self.bucket!r} cannot be used ({code})") from None
        except BotoCoreError as error:
            raise StoreError(f"store {self.uri} cannot be reached: {error}") from None


def _atomic_copy_to(target: Path, write) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def make_s3_client(options: dict):
    """A boto3 S3 client; options not given come from the standard AWS environment variables.

    Besides boto3's client arguments, `connect_timeout`, `read_timeout` (seconds) and `max_attempts`
    tune the connection. Errors that may pass (throttling, 5xx, timeouts, dropped connections) are
    retried with exponential backoff and jitter, up to `max_attempts` tries in all.
    """
    import boto3
    from botocore.config import Config

    options = {k: v for k, v in options.items() if v}
    tuning = {k: options.pop(k) for k in ("connect_timeout", "read_timeout", "max_attempts") if k in options}
    config = Config(retries={"max_attempts": int(tuning.get("max_attempts", 8)), "mode": "standard"},
                    connect_timeout=float(tuning.get("connect_timeout", 10)),
                    read_timeout=float(tuning.get("read_timeout", 60)),
                    s3={"addressing_style": "path"} if options.get("endpoint_url") or
                    os.environ.get("AWS_ENDPOINT_URL") else None)
    return boto3.session.Session().client("s3", config=config, **options)


def s3_options_from_connection(login: str | None, password: str | None, extra: dict | None) -> dict:
    """boto3 client options from an Airflow AWS connection's login, password and extra fields
    (`endpoint_url`, `region_name`, and the optional `connect_timeout`, `read_timeout`, `max_attempts`)."""
    extra = extra or {}
    endpoint = extra.get("endpoint_url") or extra.get("host")
    return {
        "aws_access_key_id": login or extra.get("aws_access_key_id"),
        "aws_secret_access_key": password or extra.get("aws_secret_access_key"),
        "region_name": extra.get("region_name"),
        "endpoint_url": endpoint,
        **{k: extra[k] for k in ("connect_timeout", "read_timeout", "max_attempts") if k in extra},
    }


def open_store(uri: str, s3_options: dict | None = None) -> ObjectStore:
    """Open the store at `uri` (`file:///abs/path` or `s3://bucket/prefix`)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"store URI {uri!r}: file:// URIs must be absolute paths (file:///...)")
        return LocalStore(unquote(parsed.path))
    if parsed.scheme == "s3":
        return S3Store(uri, s3_options)
    raise StoreError(f"store URI {uri!r} is not supported: use file:///path or s3://bucket/prefix")
