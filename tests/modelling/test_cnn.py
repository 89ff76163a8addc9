"""The tutorial CNN architecture (arch=cnn) through train, evaluate and publish."""
from conftest import make_config

from tasks.build_shards import build_shards
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.publish import publish
from tasks.store import LocalStore
from tasks.train import train


def test_the_tutorial_cnn_trains_evaluates_and_publishes(tmp_path):
    """arch=cnn: per-position softmax on one-hot labels (categorical_crossentropy, accuracy)."""
    store = LocalStore(tmp_path / "store")
    cfg = make_config(store, arch="cnn", source="synthetic://?count=40&length=4&seed=4")
    for stage in (ingest, encode_labels, build_shards):
        stage(cfg, store)
    trained = train(cfg, store, cache_dir=tmp_path / "cache")
    history = store.get_json(trained["history"])
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    assert store.get_json(trained["metadata"])["arch"] == "cnn"
    metrics = evaluate(cfg, store, tmp_path / "cache")
    assert metrics["test_images"] > 0
    published = publish(cfg, store)
    assert published["promoted"] is True
    assert store.exists(f"models/{published['version']}/model.onnx")
