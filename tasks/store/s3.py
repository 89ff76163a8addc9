"""The `s3://bucket/prefix` store, on AWS S3 or any S3-compatible endpoint (MinIO, moto), through boto3;
and the boto3 client settings the S3 source shares."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from tasks.store.base import (
    MissingObjectError, ObjectStore, PreconditionFailed, StoreError, StoreUnavailable, atomic_copy_to, check_key,
)


class S3Store(ObjectStore):
    """A bucket and prefix on S3 or any S3-compatible endpoint (MinIO, moto), through boto3.

    Transient errors are retried by the client (see make_s3_client); what still fails becomes a
    StoreError naming the store, the key and the error code, never a bare botocore traceback.
    """

    scheme = "s3"

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

    @classmethod
    def from_uri(cls, uri: str, options: dict | None = None) -> "S3Store":
        return cls(uri, options)

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
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise PreconditionFailed(f"{self.url(key)} changed since it was read") from None
            kind = StoreUnavailable if _server_side(error) else StoreError
            raise kind(f"store {self.uri}: {action} {key!r} failed: {code} "
                       f"({error.response['Error'].get('Message', '')})") from None
        except BotoCoreError as error:  # no answer (connection, timeout): boto3's own retries are spent
            raise StoreUnavailable(f"store {self.uri}: {action} {key!r} failed: {error}") from None

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
            atomic_copy_to(Path(local_path),
                            lambda tmp: self.client.download_file(self.bucket, self._key(key), str(tmp)))

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        with self._failures("reading", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read(), response["ETag"]

    def put_if(self, key: str, data: bytes, tag: str | None) -> str:
        # Conditional PUT: S3, MinIO and moto refuse it with 412 when the ETag no longer matches.
        condition = {"IfMatch": tag} if tag else {"IfNoneMatch": "*"}
        with self._failures("writing", key):
            return self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)["ETag"]

    def delete(self, key: str) -> None:
        with self._failures("deleting", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def check_access(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            kind = StoreUnavailable if _server_side(error) else StoreError
            raise kind(f"store {self.uri}: bucket {self.bucket!r} cannot be used ({code})") from None
        except BotoCoreError as error:
            raise StoreUnavailable(f"store {self.uri} cannot be reached: {error}") from None


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


def _server_side(error) -> bool:
    """Whether a boto3 ClientError is the server's trouble (5xx, throttling), not the request's."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return status >= 500 or error.response["Error"]["Code"] in ("SlowDown", "Throttling", "RequestTimeout")
