"""Creates an S3 store's bucket where it is missing: the set-up step of a deployment (the compose
file's minio-init), with the same S3 client as the store, so any S3 server will do.

    python -m tasks.store.bucket s3://captcha --endpoint-url http://minio:9000

Credentials and region come from the standard AWS environment variables.
"""
from __future__ import annotations

import argparse
import sys
from urllib.parse import urlparse

from tasks.store.s3 import make_s3_client


def ensure_bucket(client, name: str) -> bool:
    """Creates bucket `name` unless it exists; True when it was created."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=name)
        return False
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    try:
        client.create_bucket(Bucket=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.store.bucket", description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="s3://bucket (a prefix after the bucket is allowed and ignored)")
    parser.add_argument("--endpoint-url", help="the S3 server (default: AWS, or AWS_ENDPOINT_URL)")
    args = parser.parse_args(argv)
    location = urlparse(args.uri)
    if location.scheme != "s3" or not location.netloc:
        parser.error(f"{args.uri!r} is not an s3://bucket URI")
    client = make_s3_client({"endpoint_url": args.endpoint_url})
    created = ensure_bucket(client, location.netloc)
    print(f"bucket {location.netloc}: {'created' if created else 'already there'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
