"""The stages after ingest, run in order on tiny data (one epoch), each checked on what it wrote."""
import json

import numpy as np
import pytest

from conftest import make_config
from tasks.evaluate import edit_distance, score, wilson_interval
from tasks.ingest import ingest
from tasks.labels import encode_labels
from tasks.publish import LATEST, publish
from tasks.runs import UpstreamMissing
from tasks.shards import build_shards, read_shard_index
from tasks.storage import LocalStore
from tasks.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A store after every stage has run once on 48 tiny captchas."""
    root = tmp_path_factory.mktemp("pipeline")
    store = LocalStore(root / "store")
    cfg = make_config(store)
    results = {"ingest": ingest(cfg, store), "encode_labels": encode_labels(cfg, store),
               "build_shards": build_shards(cfg, store), "train": train(cfg, store, cache_dir=root / "cache")}
    results["evaluate"] = __import__("tasks.evaluate", fromlist=["evaluate"]).evaluate(cfg, store, root / "cache")
    results["publish"] = publish(cfg, store)
    return cfg, store, results


def test_encode_labels_fixes_alphabet_lengths_and_split(trained):
    cfg, store, results = trained
    encoded = results["encode_labels"]
    assert set(encoded["alphabet"]) <= set("0123456789") and encoded["num_classes"] == len(encoded["alphabet"]) + 1
    assert encoded["label_lengths"] == [3, 4] and encoded["max_length"] == 4
    assert sum(encoded["splits"].values()) == 48 and min(encoded["splits"].values()) > 0
    rows = [json.loads(line) for line in store.get_bytes(encoded["encoded"]).decode().splitlines()]
    assert all(len(r["ids"]) == len(r["label"]) and 0 not in r["ids"] for r in rows)


def test_shards_are_real_tfrecords_with_every_image(trained):
    import tensorflow as tf

    cfg, store, results = trained
    index = read_shard_index(store, results["build_shards"]["cache_key"])
    assert index["height"] == 32 and index["width"] == 96
    total = 0
    for split, keys in index["files"].items():
        for key in keys:
            for record in tf.data.TFRecordDataset(str(store.root / key)):
                example = tf.train.Example.FromString(record.numpy())
                pixels = example.features.feature["image"].bytes_list.value[0]
                assert len(pixels) == 32 * 96
                total += 1
    assert total == 48 == sum(index["counts"].values())


def test_shards_are_reused_when_nothing_changed(trained):
    cfg, store, results = trained
    before = sorted(store.list("shards/"))
    again = build_shards(cfg, store)
    assert again["reused"] is True and again["cache_key"] == results["build_shards"]["cache_key"]
    assert sorted(store.list("shards/")) == before


def test_other_preprocessing_gets_another_shard_set(trained):
    cfg, store, results = trained
    wider = make_config(store, width=128, run_key="wider")
    ingest(wider, store)
    encode_labels(wider, store)
    built = build_shards(wider, store)
    assert built["reused"] is False and built["cache_key"] != results["build_shards"]["cache_key"]


def test_train_saves_model_history_and_checkpoint(trained):
    cfg, store, results = trained
    prefix = "runs/20261129T000000/"
    for name in ("model.keras", "model.json", "history.json", "checkpoint.keras", "checkpoint.json"):
        assert store.exists(prefix + name), name
    history = store.get_json(prefix + "history.json")
    assert len(history["loss"]) == 1 and len(history["val_accuracy"]) == 1
    assert store.get_json(prefix + "checkpoint.json")["epoch"] == 1
    assert results["train"]["epochs"] == 1


def test_train_resumes_from_its_checkpoint(trained, tmp_path):
    cfg, store, results = trained
    more = make_config(store, epochs=2)
    resumed = train(more, store, cache_dir=tmp_path)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 2
    assert len(store.get_json("runs/20261129T000000/history.json")["loss"]) == 2


def test_evaluate_writes_metrics_and_predictions(trained):
    cfg, store, results = trained
    metrics = store.get_json(results["evaluate"]["metrics"])
    assert metrics["test_images"] == results["encode_labels"]["splits"]["test"]
    assert 0 <= metrics["full_accuracy"] <= metrics["char_accuracy"] + 1e-9 <= 1 + 1e-9
    rows = [json.loads(line) for line in store.get_bytes(results["evaluate"]["predictions"]).decode().splitlines()]
    assert len(rows) == metrics["test_images"] and all(r["true"] for r in rows)


def test_publish_writes_the_version_then_latest(trained):
    cfg, store, results = trained
    published = results["publish"]
    latest = store.get_json(LATEST)
    assert latest["version"] == published["version"]
    for name in ("model.keras", "model.json", "metrics.json", "history.png", "test_gallery.png"):
        assert store.exists(f"models/{published['version']}/{name}"), name
    assert store.get_bytes(f"models/{published['version']}/history.png").startswith(b"\x89PNG")


def test_a_stage_without_its_upstream_says_what_to_run(local_store):
    with pytest.raises(UpstreamMissing, match="stage 'ingest' has not run for run '20261129T000000'"):
        encode_labels(make_config(local_store), local_store)


def test_scores():
    assert edit_distance("abcd", "abd") == 1 and edit_distance("", "ab") == 2
    metrics = score([("abcd", "abcd"), ("abcd", "abce"), ("ab", "abc")])
    assert metrics["correct"] == 1 and np.isclose(metrics["full_accuracy"], 1 / 3)
    assert np.isclose(metrics["char_accuracy"], (4 + 3 + 2) / (4 + 4 + 3))
    assert np.isclose(metrics["char_error_rate"], 2 / 10)
    low, high = wilson_interval(208, 208)
    assert 0.98 < low < 1 and high == 1.0
