"""Faults between the pipeline and S3: transient errors and timeouts are retried and the data comes
out complete; a permanent error stops the stage with a message that says what failed."""
import hashlib

import pytest
from conftest import make_config, write_synthetic
from s3_fault_proxy import FaultProxy

from tasks.build_shards import build_shards
from tasks.check_inputs import check_inputs
from tasks.data.shards import read_shard_index
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest
from tasks.store import S3Store, StoreError


def test_transient_s3_faults_are_retried_and_the_data_is_complete(s3_endpoint, s3_options, s3_bucket, tmp_path):
    images = write_synthetic(tmp_path / "images", "synthetic://?count=24&length=4&seed=31")
    with FaultProxy(s3_endpoint, every=3, delay=1.5) as proxy:
        store = S3Store(f"s3://{s3_bucket}/root", {**s3_options, "endpoint_url": proxy.url, "read_timeout": 0.5})
        cfg = make_config(store, source=str(tmp_path / "images"))
        check_inputs(cfg, store)
        ingested = ingest(cfg, store)
        encode_labels(cfg, store)
        built = build_shards(cfg, store)
    assert all(proxy.counts[fault] > 0 for fault in ("503", "500", "dropped", "delayed")), proxy.counts
    assert ingested["seen"] == ingested["stored"] == 24 and ingested["refused"] == 0
    direct = S3Store(f"s3://{s3_bucket}/root", s3_options)  # read back without the proxy
    contents = {hashlib.sha256(p.read_bytes()).hexdigest() for p in images}
    stored = {key.split("/")[1].split(".")[0]: direct.get_bytes(key) for key in direct.list("raw/")}
    assert set(stored) == contents
    assert all(hashlib.sha256(data).hexdigest() == sha for sha, data in stored.items())
    index = read_shard_index(direct, built["cache_key"])
    assert sum(f["records"] for files in index["files"].values() for f in files) == 24


def test_a_permanent_s3_error_stops_the_stage_and_names_it(s3_endpoint, s3_options, s3_bucket, tiny_folder):
    with FaultProxy(s3_endpoint, permanent=True) as proxy:
        store = S3Store(f"s3://{s3_bucket}/root", {**s3_options, "endpoint_url": proxy.url})
        cfg = make_config(store, source=str(tiny_folder))
        with pytest.raises(StoreError,
                           match=rf"store s3://{s3_bucket}/root: bucket '{s3_bucket}' cannot be used \(403\)"):
            check_inputs(cfg, store)
        with pytest.raises(StoreError, match=rf"store s3://{s3_bucket}/root: reading 'manifests/current.json' "
                                             r"failed: AccessDenied"):
            ingest(cfg, store)


def test_each_task_fails_at_once_on_what_a_retry_cannot_change_and_is_retried_otherwise(
        s3_endpoint, s3_options, s3_bucket, tiny_folder, local_store, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    import sys

    from tasks.ingest import IngestError
    from tasks.store import StoreUnavailable

    sys.path.insert(0, "dags")
    from captcha_training import by_kind

    # S3 not answering at all, as MinIO restarting at night: a StoreUnavailable, retried.
    gone = S3Store(f"s3://{s3_bucket}/root", {**s3_options, "endpoint_url": "http://127.0.0.1:9",
                                               "connect_timeout": 0.2})
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        by_kind(check_inputs)(make_config(gone, source=str(tiny_folder)), gone)
    # A refusing store, a wrong setting or a source of unusable images: failed at once, with the reason.
    with FaultProxy(s3_endpoint, permanent=True) as proxy:
        refusing = S3Store(f"s3://{s3_bucket}/root", {**s3_options, "endpoint_url": proxy.url})
        with pytest.raises(AirflowFailException, match=r"cannot be used \(403\)"):
            by_kind(check_inputs)(make_config(refusing, source=str(tiny_folder)), refusing)
    with pytest.raises(AirflowFailException, match="does not exist"):
        by_kind(check_inputs)(make_config(local_store, source=str(tmp_path / "nowhere")), local_store)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "1234.png").write_bytes(b"not an image")
    with pytest.raises(AirflowFailException, match="no usable image"):
        by_kind(ingest)(make_config(local_store, source=str(tmp_path / "junk")), local_store)

    def source_unreadable():
        raise IngestError("cannot read source 's3://x/y': connection reset")

    with pytest.raises(IngestError):  # may read on a retry
        by_kind(source_unreadable)()
