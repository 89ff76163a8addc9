"""The same run twice at once, in two processes on one store: no duplicates, nothing corrupt, and
latest points at a complete model."""
import json
import multiprocessing

from conftest import make_config

from tasks.data.shards import read_shard_index
from tasks.serving.registry import LATEST
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
    assert first["version"] == second["version"] == "20261129T000000"
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
    leftovers = [p for p in root.rglob(".*")]
    assert leftovers == [], leftovers  # no temporary file is left behind
