"""publish: the version then latest, ONNX reading like Keras, the promotion gate, and latest on a complete
model whatever the moment a publish is interrupted. (A worse model kept but not promoted, versions never
changing, and promotion racing other publishes: tests/registry/test_registry.py.)"""
import json

import numpy as np
from conftest import make_config

from tasks.publish import publish
from tasks.registry import HISTORY, LATEST
from tasks.store import LocalStore


def test_publish_writes_the_version_then_latest(trained):
    cfg, store, results = trained
    published = results["publish"]
    assert published["promoted"] is True and "no champion yet" in published["reason"]
    latest = store.get_json(LATEST)
    assert latest["version"] == published["version"] and latest["folder"] == f"models/{published['version']}/"
    for name in ("model.keras", "model.onnx", "saved_model/saved_model.pb", "model.json", "alphabet.json",
                 "metrics.json", "model_card.md", "history.png", "test_gallery.png", "misread_gallery.png",
                 "confusion.png", "version.json"):
        assert store.exists(f"models/{published['version']}/{name}"), name
    for plot in published["plots"]:
        assert store.get_bytes(plot[len(store.uri) + 1:]).startswith(b"\x89PNG")
    card = store.get_bytes(f"models/{published['version']}/model_card.md").decode()
    assert "Data version" in card and "Full-captcha accuracy" in card and "Passes the gate" in card
    [decision] = store.iter_jsonl(HISTORY)
    assert (decision["action"], decision["from"], decision["to"], decision["moved"]) == (
        "gate", None, published["version"], True)
    assert decision["why"] == published["reason"] and decision["who"] == f"publish of run {cfg.run_key}"


def test_onnx_model_reads_like_the_keras_model(trained, tmp_path):
    from tasks.serving.predict import KerasReader, OnnxReader

    cfg, store, results = trained
    folder = f"models/{results['publish']['version']}/"
    for name in ("model.keras", "model.onnx"):
        store.download_file(folder + name, tmp_path / name)
    batch = np.random.default_rng(0).uniform(0, 255, size=(3, 32, 96, 1)).astype(np.float32)
    keras_out = KerasReader(tmp_path / "model.keras")(batch)
    onnx_out = OnnxReader(tmp_path / "model.onnx")(batch)
    assert onnx_out.shape == keras_out.shape
    assert np.abs(onnx_out - keras_out).max() < 1e-4


def test_gate():
    from tasks.publish import gate

    assert gate({"full_accuracy": 0.9}, 0.5) == (True, "it reads 90.0% of test captchas and there is no champion yet")
    assert gate({"full_accuracy": 0.4}, 0.5)[0] is False
    champion = {"version": "v1", "full_accuracy": 0.95}
    promoted, reason = gate({"full_accuracy": 0.9, "champion": champion}, 0.5)
    assert not promoted and "fewer than the champion v1 (95.0%)" in reason
    assert gate({"full_accuracy": 0.95, "champion": champion}, 0.5)[0] is True
    assert gate({"full_accuracy": 0.95, "champion": champion}, 0.5, champion_is_newer=True)[0] is False
    assert gate({"full_accuracy": 0.96, "champion": champion}, 0.5, champion_is_newer=True)[0] is True


class JournalingStore(LocalStore):
    """Records every write, in order, as (key, content), instead of making it."""

    def __init__(self, root):
        super().__init__(root)
        self.journal = []

    def put_bytes(self, key, data):
        self.journal.append((key, bytes(data)))

    def upload_file(self, local_path, key):
        with open(local_path, "rb") as f:
            self.journal.append((key, f.read()))


def test_publish_interrupted_at_any_write_leaves_latest_on_a_complete_model(trained, tmp_path):
    """Every store write is atomic (a temporary name, then a rename), so a publish killed at any moment
    leaves the store as it was plus its first k writes. For every k, latest.json must point at a
    model whose files are all there and load."""
    import shutil

    import onnxruntime

    cfg, store, results = trained
    before = tmp_path / "before"
    shutil.copytree(store.root, before)
    (before / "runs" / "second").mkdir()
    for stage in ("encode_labels", "train", "evaluate"):  # a second run of the same data and model
        shutil.copy(before / "runs" / cfg.run_key / f"{stage}.json", before / "runs" / "second" / f"{stage}.json")
    journal = JournalingStore(before)
    second = publish(make_config(journal, run_key="second"), journal)["version"]
    keys = [key for key, _ in journal.journal]
    assert keys[-4:] == [f"models/{second}/version.json", LATEST, HISTORY, "runs/second/publish.json"]
    for k in range(len(journal.journal) + 1):
        state = tmp_path / f"after-{k}"
        shutil.copytree(before, state)
        for key, data in journal.journal[:k]:
            (state / key).parent.mkdir(parents=True, exist_ok=True)
            (state / key).write_bytes(data)
        latest = json.loads((state / LATEST).read_text())
        folder = state / latest["folder"]
        assert latest["version"] == (second if k > keys.index(LATEST) else results["publish"]["version"]), k
        for name in ("model.keras", "model.onnx", "model.json", "alphabet.json", "metrics.json", "model_card.md"):
            assert (folder / name).is_file(), (k, name)
        onnxruntime.InferenceSession(str(folder / "model.onnx"))
        shutil.rmtree(state)
