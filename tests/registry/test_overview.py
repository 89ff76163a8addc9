"""What the model pages show (tasks/registry/overview.py), on both store kinds: the versions of a store
with several, a version with a plot missing, a run's progress and outcome, and names from a request
that must not reach the store."""
import json

import pytest
from conftest import copy_of_kind

from tasks.pipeline.records import mark_active, record_failure, write_stage_result
from tasks.registry import overview
from tasks.store import StoreError


@pytest.fixture(params=["file", "s3"])
def published(request, three_versions, tmp_path):
    """A copy, on each store kind, of the session's store with three versions: the first, a better one
    that became champion and a worse one the gate turned down."""
    _, local, (first, better, worse) = three_versions
    return copy_of_kind(request.param, local, tmp_path, request), first, better, worse


def test_versions_are_listed_newest_first_with_their_figures_and_gate_decision(published):
    store, first, better, worse = published
    rows = overview.version_rows(store)
    assert [row["version"] for row in rows] == [worse, better, first]
    by_version = {row["version"]: row for row in rows}
    assert by_version[better]["champion"] and by_version[better]["promoted"] is True
    assert not by_version[worse]["champion"] and by_version[worse]["promoted"] is False
    assert by_version[worse]["reason"]
    record = json.loads(store.get_bytes(f"models/{first}/version.json"))
    row = by_version[first]
    assert row["full_accuracy"] == record["metrics"]["full_accuracy"]
    assert row["full_accuracy_ci95"] == record["metrics"]["full_accuracy_ci95"]
    assert (row["images"], row["data_version"], row["arch"]) == (record["images"], record["data_version"],
                                                                  record["arch"])


def test_a_version_page_lists_a_missing_plot_as_missing(published):
    store, first, *_ = published
    store.delete(f"models/{first}/confusion.png")
    page = overview.version_page(store, first)
    assert page["plots"] == {"history.png": True, "test_gallery.png": True, "misread_gallery.png": True,
                             "confusion.png": False}
    assert page["downloads"] == {"model.onnx": True, "model.keras": True, "model_card.md": True}
    assert page["model_card"].startswith("#") and page["metrics"]["full_accuracy"] is not None
    assert overview.version_file(store, first, "history.png").startswith(b"\x89PNG")
    with pytest.raises(StoreError, match="has no confusion.png"):
        overview.version_file(store, first, "confusion.png")


@pytest.mark.parametrize("version, name", [("../runs", "history.png"), ("nope", "history.png"),
                                           (None, "version.json"), (None, "../../models/latest.json")])
def test_names_from_a_request_reach_only_published_files(published, version, name):
    store, first, *_ = published
    with pytest.raises(StoreError):
        overview.version_file(store, version or first, name)


def test_a_run_reads_as_published_skipped_failed_or_running(published):
    store, first, *_ = published
    published_run = overview.run_progress(store, "20261129T000000")
    assert published_run["outcome"] == "published" and published_run["version"] == first
    assert published_run["epochs"] and {"epoch", "loss"} <= set(published_run["epochs"][0])

    write_stage_result(store, "20261204T020000", "ingest", {"up_to_date": "nothing new since 20261129T000000"})
    assert overview.run_progress(store, "20261204T020000")["outcome"] == "skipped"

    mark_active(store, "20261205T020000", "ingest")
    assert overview.run_progress(store, "20261205T020000")["outcome"] == "running"
    record_failure(store, "20261205T020000", "ingest", "source s3://x cannot be read")
    failed = overview.run_progress(store, "20261205T020000")
    assert (failed["outcome"], failed["stage"]) == ("failed", "ingest")
    assert failed["message"] == "source s3://x cannot be read"
    mark_active(store, "20261205T020000", "ingest")  # cleared and started again
    assert overview.run_progress(store, "20261205T020000")["outcome"] == "running"
    assert overview.run_progress(store, "20261206T020000")["outcome"] == "not started"
    with pytest.raises(StoreError):
        overview.run_progress(store, "../models")


def test_a_store_that_cannot_be_read_says_so(tmp_path):
    from tasks.store import LocalStore

    broken = LocalStore(tmp_path / "store")
    (tmp_path / "store" / "models").mkdir(parents=True)
    (tmp_path / "store" / "models" / "latest.json").write_text("{not json")
    with pytest.raises((StoreError, ValueError)):
        overview.version_rows(broken)
