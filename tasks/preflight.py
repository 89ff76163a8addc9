"""The first task, check_inputs: refuse a run whose settings, source or store cannot work, in
seconds and before any other task, with a message that says what is wrong."""
from __future__ import annotations

import logging
from urllib.parse import urlparse

from tasks.config import ConfigError, PipelineConfig
from tasks.runs import write_stage_result
from tasks.sources import SourceError, check_source
from tasks.storage import ObjectStore, StoreError

log = logging.getLogger(__name__)

# What a wrong setting raises; the DAG turns these into a failure without retries.
INPUT_ERRORS = (ConfigError, SourceError, StoreError)


def check_inputs(cfg: PipelineConfig, store: ObjectStore, s3_options: dict | None = None) -> dict:
    """Check that the store can be written and the source exists (an s3:// prefix must hold objects
    unless the store already holds a data set: an empty landing prefix just means nothing new);
    return what was checked (also stored as runs/<run key>/check_inputs.json)."""
    from tasks.ingest import CURRENT

    store.check_access()
    check_source(cfg.source)
    if urlparse(cfg.source).scheme == "s3":
        _check_s3_prefix(cfg.source, s3_options or {}, may_be_empty=store.exists(CURRENT))
    log.info("check_inputs: source %s and store %s are usable", cfg.source, store.uri)
    return write_stage_result(store, cfg.run_key, "check_inputs",
                              {"source": cfg.source, "store": store.uri, "settings": cfg.model_settings()})


def _check_s3_prefix(uri: str, s3_options: dict, may_be_empty: bool) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from tasks.storage import make_s3_client

    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    try:
        listed = make_s3_client(s3_options).list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as error:
        raise SourceError(f"source {uri!r} cannot be listed ({error.response['Error']['Code']})") from None
    except BotoCoreError as error:
        raise SourceError(f"source {uri!r} cannot be reached: {error}") from None
    if not listed.get("KeyCount") and not may_be_empty:
        raise SourceError(f"source {uri!r} holds no objects")
