"""Object stores: one interface (base.ObjectStore), one class per URI scheme, chosen by `open_store`.

Built in: `file://` (local.LocalStore) and `s3://` (s3.S3Store, boto3). Another backend is one
ObjectStore subclass with a `scheme`, registered with `register_store` (or the entry-point group
`captcha_training.stores`).
"""
from tasks.store.base import (
    MissingObjectError, ObjectStore, PreconditionFailed, StoreError, StoreUnavailable, append_jsonl, check_key,
    open_store, register_store, store_schemes, update_json,
)
from tasks.store.local import LocalStore
from tasks.store.s3 import S3Store

register_store(LocalStore)
register_store(S3Store)

__all__ = ["MissingObjectError", "ObjectStore", "PreconditionFailed", "StoreError", "StoreUnavailable", "append_jsonl",
           "check_key", "open_store", "register_store", "store_schemes", "update_json", "LocalStore", "S3Store"]
