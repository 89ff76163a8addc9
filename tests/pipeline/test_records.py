"""Stage records: a stage whose upstream stage has not run says which one to run."""
import pytest
from conftest import make_config

from tasks.encode_labels import encode_labels
from tasks.pipeline.records import UpstreamMissing


def test_a_stage_without_its_upstream_says_what_to_run(local_store):
    with pytest.raises(UpstreamMissing, match="stage 'ingest' has not run for run '20261129T000000'"):
        encode_labels(make_config(local_store), local_store)


def test_runs_triggered_within_one_second_get_keys_of_their_own():
    from datetime import datetime, timezone

    from tasks.pipeline.records import run_key_for

    second = datetime(2026, 11, 29, 2, 0, 0, tzinfo=timezone.utc)
    assert run_key_for(second, "scheduled__x") == "20261129T020000"  # as `airflow tasks test` names it
    first, next_one = (run_key_for(second.replace(microsecond=us), "manual__x") for us in (123, 456))
    assert first == "20261129T020000.000123" and next_one != first
    assert run_key_for(None, "manual__2026-11-29T02:00:00+00:00") == "manual__2026-11-29T02-00-00-00-00"
