"""The same run twice at once, in two processes on one store: no duplicates, nothing corrupt, a version
per model (two trainings that happen to give the same bytes share one), and latest on a complete one,
decided in the audit log."""
import json
import multiprocessing

import pytest
from conftest import make_config

from tasks.data.shards import read_shard_index
from tasks.registry import HISTORY, LATEST
from tasks.registry.versions import list_versions
from tasks.store import LocalStore


def run_every_stage(root: str) -> dict:
    from tasks.build_shards import build_shards
    from tasks.check_inputs import check_inputs
    from tasks.encode_labels import encode_labels
    from tasks.evaluate import evaluate
    from tasks.ingest import ingest
    from tasks.publish import publish
    from tasks.train import train

    store = LocalStore(root)
    cfg = make_config(store)
    for stage in (check_inputs, ingest, encode_labels, build_shards, train, evaluate):
        stage(cfg, store)
    return publish(cfg, store)


def test_two_runs_of_the_same_date_at_once_leave_one_consistent_result(tmp_path):
    root = tmp_path / "store"
    LocalStore(root)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(run_every_stage, [str(root)] * 2)
    store = LocalStore(root)
    versions = {first["version"], second["version"]}
    assert versions == {record["version"] for record in list_versions(store)}
    assert len(list(store.list("raw/"))) == 48
    assert len(list(store.list("manifests/"))) == 2  # the manifest and current.json
    manifest = list(store.iter_jsonl(store.get_json("manifests/current.json")["manifest"]))
    assert len({e["sha256"] for e in manifest}) == len(manifest) == 48
    [index_key] = store.list("shards/sets/")
    index = read_shard_index(store, index_key.rsplit("/", 1)[1].removesuffix(".json"))
    assert sum(f["records"] for files in index["files"].values() for f in files) == 48
    latest = store.get_json(LATEST)
    for name in ("model.keras", "model.onnx", "model.json", "metrics.json", "model_card.md"):
        assert store.exists(f"{latest['folder']}{name}"), name
    json.loads(store.get_bytes(f"{latest['folder']}metrics.json"))
    decisions = list(store.iter_jsonl(HISTORY))
    assert {d["candidate"] for d in decisions} == versions and decisions[0]["from"] is None
    assert all(d["from"] == before["to"] for before, d in zip(decisions, decisions[1:]))
    assert decisions[-1]["to"] == latest["version"] in versions


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_two_ingests_at_once_both_land(kind, tmp_path, request):
    """Two sources ingested into one store at the same moment: the second to finish finds that the
    data set moved since it loaded it, merges the other's images in and stores the union."""
    from tasks.ingest import ingest
    from tasks.store import S3Store

    if kind == "file":
        base, opened = LocalStore, lambda: LocalStore(tmp_path / "store")
    else:
        bucket, options = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_options")
        base, opened = S3Store, lambda: S3Store(f"s3://{bucket}/root", options)
    store = opened()

    class Racing(base):
        """Runs the other ingest to its end just before this one moves manifests/current.json."""

        def __init__(self, other):
            self.__dict__.update(store.__dict__)
            self.other = other

        def put_if(self, key, data, tag):
            if key == "manifests/current.json" and self.other:
                other, self.other = self.other, None
                other()
            return super().put_if(key, data, tag)

    first = make_config(store, source="synthetic://?count=30&length=4&seed=11", run_key="first")
    second = make_config(store, source="synthetic://?count=20&length=4&seed=12", run_key="second")
    ingest(make_config(store, source="synthetic://?count=10&length=4&seed=10", run_key="before"), store)
    summary = ingest(first, Racing(lambda: ingest(second, opened())))
    current = store.get_json("manifests/current.json")
    manifest = list(store.iter_jsonl(current["manifest"]))
    assert len(manifest) == current["images"] == summary["total_images"] == 60
    assert current["data_version"] == summary["data_version"]
    assert store.get_json("runs/second/ingest.json")["total_images"] == 30  # it landed first: 10 + 20
