"""check_inputs: a source or store that cannot work is refused with a message naming it."""
import re

import pytest
from conftest import make_config

from tasks.check_inputs import check_inputs
from tasks.data.sources import SourceError
from tasks.store import S3Store, StoreError


def test_a_usable_source_and_store_pass_and_are_recorded(store, tiny_folder):
    cfg = make_config(store, source=str(tiny_folder))
    result = check_inputs(cfg, store)
    assert result["source"] == str(tiny_folder) and result["store"] == store.uri
    assert store.get_json(f"runs/{cfg.run_key}/check_inputs.json") == result


def test_a_missing_folder_is_named(local_store, tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(SourceError, match=f"source '{missing}' does not exist"):
        check_inputs(make_config(local_store, source=str(missing)), local_store)
    assert list(local_store.list()) == []


def test_an_s3_prefix_without_objects_is_named(local_store, s3_bucket, s3_options):
    source = f"s3://{s3_bucket}/landing/"
    with pytest.raises(SourceError, match=f"source '{source}' holds no objects"):
        check_inputs(make_config(local_store, source=source), local_store, s3_options)


def test_an_s3_source_in_a_missing_bucket_is_named(local_store, s3_options):
    with pytest.raises(SourceError, match="source 's3://no-such-bucket-x1/a' cannot be listed"):
        check_inputs(make_config(local_store, source="s3://no-such-bucket-x1/a"), local_store, s3_options)


def test_a_store_in_a_missing_bucket_is_named(s3_options):
    store = S3Store("s3://no-such-bucket-x2/root", s3_options)
    with pytest.raises(StoreError,
                       match="store s3://no-such-bucket-x2/root: bucket 'no-such-bucket-x2' cannot be used"):
        check_inputs(make_config(store), store, s3_options)


def test_settings_the_stored_images_do_not_fit_are_refused_before_any_work(local_store, tiny_folder):
    from tasks.ingest import ingest
    from tasks.pipeline.config import ConfigError

    ingest(make_config(local_store, source=str(tiny_folder)), local_store)  # 4-character labels
    before = set(local_store.list())
    for settings, problem in (({"label_length": 5}, "not the label_length of 5"),
                              ({"max_label_length": 3}, "longer than max_label_length (3)"),
                              ({"alphabet": "0123"}, "outside the alphabet")):
        cfg = make_config(local_store, source=str(tiny_folder), run_key="changed", **settings)
        pattern = rf"(?s)of the \d+ images already in store .* do not fit .*{re.escape(problem)}"
        with pytest.raises(ConfigError, match=pattern):
            check_inputs(cfg, local_store)
    assert set(local_store.list()) == before  # nothing stored is lost or changed
    check_inputs(make_config(local_store, source=str(tiny_folder), run_key="same"), local_store)


def test_a_mistyped_store_folder_is_named_not_created(tmp_path, monkeypatch):
    from tasks.check_inputs import check_store_exists

    monkeypatch.setenv("CAPTCHA_STORE", (tmp_path / "default-store").as_uri())
    typo = tmp_path / "stroe"
    with pytest.raises(StoreError, match=f"store {re.escape(typo.as_uri())} does not exist: correct the path, or "
                                         f"create the folder \\(mkdir -p {re.escape(str(typo))}\\)"):
        check_store_exists(typo.as_uri())
    assert not typo.exists()
    check_store_exists((tmp_path / "default-store").as_uri())  # the default store is made on first use
    check_store_exists(tmp_path.as_uri())  # an existing folder
    check_store_exists("s3://bucket/prefix")  # a bucket is checked by check_access
