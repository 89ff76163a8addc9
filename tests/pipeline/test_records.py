"""Stage records: a stage whose upstream stage has not run says which one to run."""
import pytest
from conftest import make_config

from tasks.encode_labels import encode_labels
from tasks.pipeline.records import UpstreamMissing


def test_a_stage_without_its_upstream_says_what_to_run(local_store):
    with pytest.raises(UpstreamMissing, match="stage 'ingest' has not run for run '20261129T000000'"):
        encode_labels(make_config(local_store), local_store)
