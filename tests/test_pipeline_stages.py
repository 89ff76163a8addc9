"""The stages after ingest, run in order on tiny data (one epoch), each checked on what it wrote."""
import json

import numpy as np
import pytest

from conftest import make_config
from tasks.evaluate import edit_distance, evaluate, score, wilson_interval
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
    results["evaluate"] = evaluate(cfg, store, root / "cache")
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
    for split, files in index["files"].items():
        for key in (f["key"] for f in files):
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


def test_dropout_guards_small_training_sets_only(trained, tmp_path):
    from tasks.model import DROPOUT_BELOW_IMAGES, build_model, load_model, wants_dropout

    cfg, store, results = trained
    store.download_file("runs/20261129T000000/model.keras", tmp_path / "model.keras")
    trained_layers = [type(layer).__name__ for layer in load_model(tmp_path / "model.keras").layers]
    assert trained_layers.count("Dropout") == 3  # 48 captchas: a small set
    assert wants_dropout(DROPOUT_BELOW_IMAGES - 1) and not wants_dropout(DROPOUT_BELOW_IMAGES)
    plain = build_model("crnn", 32, 96, 6, 11, dropout=False)
    assert [type(layer).__name__ for layer in plain.layers] == [n for n in trained_layers if n != "Dropout"]
    assert plain.count_params() == build_model("crnn", 32, 96, 6, 11).count_params()


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
    assert published["promoted"] is True and "no champion yet" in published["reason"]
    latest = store.get_json(LATEST)
    assert latest["version"] == published["version"] and latest["folder"] == f"models/{published['version']}/"
    for name in ("model.keras", "model.onnx", "saved_model/saved_model.pb", "model.json", "alphabet.json",
                 "metrics.json", "model_card.md", "history.png", "test_gallery.png", "misread_gallery.png",
                 "confusion.png"):
        assert store.exists(f"models/{published['version']}/{name}"), name
    for plot in published["plots"]:
        assert store.get_bytes(plot[len(store.uri) + 1:]).startswith(b"\x89PNG")
    card = store.get_bytes(f"models/{published['version']}/model_card.md").decode()
    assert "Data version" in card and "Full-captcha accuracy" in card and "Promoted to latest" in card


def test_onnx_model_reads_like_the_keras_model(trained, tmp_path):
    from tasks.predict import KerasReader, OnnxReader

    cfg, store, results = trained
    folder = f"models/{results['publish']['version']}/"
    for name in ("model.keras", "model.onnx"):
        store.download_file(folder + name, tmp_path / name)
    batch = np.random.default_rng(0).uniform(0, 255, size=(3, 32, 96, 1)).astype(np.float32)
    keras_out = KerasReader(tmp_path / "model.keras")(batch)
    onnx_out = OnnxReader(tmp_path / "model.onnx")(batch)
    assert onnx_out.shape == keras_out.shape
    assert np.abs(onnx_out - keras_out).max() < 1e-4


def test_a_worse_model_is_kept_but_not_promoted(trained):
    cfg, store, results = trained
    champion = store.get_json(LATEST)
    later = make_config(store, run_key="20261201T000000", min_accuracy=0.99)
    for stage in (ingest, encode_labels, build_shards):
        stage(later, store)
    train(later, store)
    evaluated = evaluate(later, store)
    assert evaluated["champion_version"] == champion["version"]
    published = publish(later, store)
    assert published["promoted"] is False and "below the min_accuracy floor of 99.0%" in published["reason"]
    assert store.exists("models/20261201T000000/model.onnx")
    assert store.get_json(LATEST) == champion


def test_a_stage_without_its_upstream_says_what_to_run(local_store):
    with pytest.raises(UpstreamMissing, match="stage 'ingest' has not run for run '20261129T000000'"):
        encode_labels(make_config(local_store), local_store)


def test_gate():
    from tasks.publish import gate

    assert gate({"full_accuracy": 0.9}, 0.5) == (True, "it reads 90.0% of test captchas and there is no champion yet")
    assert gate({"full_accuracy": 0.4}, 0.5)[0] is False
    champion = {"version": "v1", "full_accuracy": 0.95}
    promoted, reason = gate({"full_accuracy": 0.9, "champion": champion}, 0.5)
    assert not promoted and "fewer than the champion v1 (95.0%)" in reason
    assert gate({"full_accuracy": 0.95, "champion": champion}, 0.5)[0] is True


def test_confusion_aligns_texts():
    from tasks.evaluate import confusion

    counts = confusion([("abc", "abc"), ("abc", "abd"), ("abc", "ac"), ("ab", "abx")])
    assert counts["c"] == {"c": 2, "d": 1}
    assert counts["b"] == {"b": 3, "": 1}
    assert counts[""] == {"x": 1}


def test_scores():
    assert edit_distance("abcd", "abd") == 1 and edit_distance("", "ab") == 2
    metrics = score([("abcd", "abcd"), ("abcd", "abce"), ("ab", "abc")])
    assert metrics["correct"] == 1 and np.isclose(metrics["full_accuracy"], 1 / 3)
    assert np.isclose(metrics["char_accuracy"], (4 + 3 + 2) / (4 + 4 + 3))
    assert np.isclose(metrics["char_error_rate"], 2 / 10)
    low, high = wilson_interval(208, 208)
    assert 0.98 < low < 1 and high == 1.0


def test_predict_reads_with_onnx_without_importing_tensorflow(trained, tmp_path):
    import subprocess
    import sys

    cfg, store, results = trained
    images = sorted((store.root / "raw").iterdir())[:3]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    code = ("import sys; from tasks.predict import main; status = main(sys.argv[1:]); "
            "print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, "--model", store.uri, *map(str, images), str(bad)],
                          capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and lines[-1] == "tensorflow imported: False"
    assert [line.split("\t")[0] for line in lines[:-1]] == [str(p) for p in images]
    assert all(set(line.split("\t")[1]) <= set(results["encode_labels"]["alphabet"]) for line in lines[:-1])
    assert f"error: {bad}: not a readable image" in done.stderr


def test_predict_says_when_there_is_no_model(tmp_path, capsys):
    from tasks.predict import main

    (tmp_path / "a.png").write_bytes(b"x")
    assert main(["--model", str(tmp_path / "nowhere"), str(tmp_path)]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["--model", str(tmp_path), str(tmp_path)]) == 2
    assert "neither a store with models/latest.json" in capsys.readouterr().err


@pytest.mark.parametrize("spec, alphabet", [
    ("synthetic://?count=40&length=3-6&alphabet=ABCDEFGHJKLMNPQRSTUVWXYZ&width=250&height=80&mode=grey", None),
    ("synthetic://?count=40&length=5&alphabet=abcdefXYZ234&width=120&height=40&mode=rgba", None),
    ("synthetic://?count=40&length=4&alphabet=0123456789&format=jpeg", "0123456789"),
])
def test_other_captcha_styles_train_and_evaluate(tmp_path, spec, alphabet):
    """Other sizes, grey / RGBA / JPEG, mixed case, labels of several lengths, through every stage."""
    from tasks.synthetic import SyntheticSpec

    store = LocalStore(tmp_path / "store")
    cfg = make_config(store, source=spec, alphabet=alphabet or "")
    ingested = ingest(cfg, store)
    assert ingested["stored"] == 40 and ingested["refused"] == 0
    encoded = encode_labels(cfg, store)
    wanted = SyntheticSpec.parse(spec)
    assert set(encoded["alphabet"]) <= set(wanted.alphabet)
    assert encoded["max_length"] <= wanted.max_length and min(encoded["label_lengths"]) >= wanted.min_length
    built = build_shards(cfg, store)
    index = read_shard_index(store, built["cache_key"])
    import tensorflow as tf

    record = next(iter(tf.data.TFRecordDataset(str(store.root / index["files"]["train"][0]["key"]))))
    pixels = np.frombuffer(tf.train.Example.FromString(record.numpy()).features.feature["image"]
                           .bytes_list.value[0], dtype=np.uint8).reshape(32, 96)
    assert pixels[0, 0] > 200  # background (transparent or padded) is light
    train(cfg, store, cache_dir=tmp_path / "cache")
    assert evaluate(cfg, store, tmp_path / "cache")["test_images"] == encoded["splits"]["test"]


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
    assert publish(cfg, store)["promoted"] is True
    assert store.exists(f"models/{cfg.run_key}/model.onnx")


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
    publish(make_config(journal, run_key="second"), journal)
    keys = [key for key, _ in journal.journal]
    assert keys[-2:] == [LATEST, "runs/second/publish.json"]
    for k in range(len(journal.journal) + 1):
        state = tmp_path / f"after-{k}"
        shutil.copytree(before, state)
        for key, data in journal.journal[:k]:
            (state / key).parent.mkdir(parents=True, exist_ok=True)
            (state / key).write_bytes(data)
        latest = json.loads((state / LATEST).read_text())
        folder = state / latest["folder"]
        assert latest["version"] == ("second" if k > keys.index(LATEST) else cfg.run_key), k
        for name in ("model.keras", "model.onnx", "model.json", "alphabet.json", "metrics.json", "model_card.md"):
            assert (folder / name).is_file(), (k, name)
        onnxruntime.InferenceSession(str(folder / "model.onnx"))
        shutil.rmtree(state)


def test_a_model_with_code_in_it_is_refused_by_safe_mode(tmp_path):
    import keras

    from tasks.model import load_model

    inputs = keras.Input((4,))
    hostile = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    hostile.save(tmp_path / "hostile.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(tmp_path / "hostile.keras")
