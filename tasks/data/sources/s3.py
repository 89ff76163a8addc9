"""The `s3` source kind: every image object under an s3://bucket/prefix."""
from __future__ import annotations

from typing import Iterator
from urllib.parse import urlparse

from tasks.data.sources.base import (
    LABELS_FILE,
    MAX_FILE_BYTES,
    Labeller,
    SourceError,
    SourceItem,
    SourceKind,
    is_hidden,
    is_image_name,
    parse_labels_csv,
)


class S3Source(SourceKind):
    """Objects under a prefix of a bucket; `options` are boto3's client settings."""

    scheme = "s3"

    def check(self) -> None:
        if not urlparse(self.uri).netloc:
            raise SourceError(f"source {self.uri!r} names no bucket; write s3://bucket/prefix")

    def check_reachable(self, may_be_empty: bool) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from tasks.store.s3 import make_s3_client

        parsed = urlparse(self.uri)
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        try:
            listed = make_s3_client(self.options).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as error:
            raise SourceError(f"source {self.uri!r} cannot be listed ({error.response['Error']['Code']})") from None
        except BotoCoreError as error:
            raise SourceError(f"source {self.uri!r} cannot be reached: {error}") from None
        if not listed.get("KeyCount") and not may_be_empty:
            raise SourceError(f"source {self.uri!r} holds no objects")

    def items(self) -> Iterator[SourceItem]:
        return iter_s3(self.uri, self.options)


def iter_s3(uri: str, s3_options: dict | None) -> Iterator[SourceItem]:
    """Every image object under an s3:// prefix."""
    from tasks.store.s3 import make_s3_client

    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise SourceError(f"source {uri!r} names no bucket; write s3://bucket/prefix")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    client = make_s3_client(s3_options or {})
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    csv_key = prefix + LABELS_FILE
    try:
        csv_data = client.get_object(Bucket=bucket, Key=csv_key)["Body"].read()
    except client.exceptions.NoSuchKey:
        csv_data = None
    label_of = Labeller(parse_labels_csv(csv_data, f"s3://{bucket}/{csv_key}") if csv_data is not None else None)

    def read(key: str, size: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        if size > MAX_FILE_BYTES:
            raise SourceError(f"s3://{bucket}/{key} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit")
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:  # what is left after the client's retries: this object only
            code = error.response["Error"]["Code"]
            gone = code in ("NoSuchKey", "404", "NotFound")
            raise SourceError(f"s3://{bucket}/{key} was listed but " + (
                "is gone (deleted or replaced since)" if gone else f"cannot be read ({code})")) from None
        except BotoCoreError as error:
            raise SourceError(f"s3://{bucket}/{key} was listed but cannot be read ({error})") from None

    for page in pages:  # keys come sorted, a page at a time: millions of objects are never all in memory
        for obj in page.get("Contents", []):
            key, relative = obj["Key"], obj["Key"][len(prefix):]
            if is_hidden(relative) or not is_image_name(relative):
                continue
            yield SourceItem(relative, label_of(relative), read=lambda k=key, n=obj["Size"]: read(k, n),
                             fingerprint=f"{obj['Size']}:{obj.get('ETag', '').strip(chr(34))}")
