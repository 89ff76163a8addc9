"""An architecture registered from the test suite alone trains, evaluates, publishes (ONNX included)
and reads captchas through the unchanged pipeline."""
import numpy as np
import pytest
from conftest import make_config

from tasks.build_shards import build_shards
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.modelling.architectures import Architecture, architecture_names, get_architecture, register_architecture
from tasks.modelling.architectures.base import ARCHITECTURES
from tasks.pipeline.config import ConfigError
from tasks.publish import publish
from tasks.store import LocalStore
from tasks.train import train


def positions_loss(y_true, y_pred):
    """Cross-entropy of each position's softmax against its id (0 where the label is shorter)."""
    import keras

    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, y_pred), axis=-1)


class TinyPositions(Architecture):
    """A very small per-position head trained on the ids themselves (the default targets), with a loss
    of its own that saved models need to load, and a callback of its own."""

    name = "tiny-positions"
    description = "a test's tiny per-position head"

    def __init__(self):
        self.epochs_seen = []

    def build(self, height, width, max_length, num_classes, train_images):
        import keras
        from keras import layers

        model = keras.Sequential([
            layers.Input((height, width, 1), name="image"),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(4, 3, strides=2, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(max_length * num_classes),
            layers.Reshape([max_length, num_classes]),
            layers.Softmax(dtype="float32"),
        ], name="tiny_positions")
        model.compile(optimizer="adam", loss=positions_loss)
        return model

    def decode(self, output):
        return [[int(i) for i in row if i] for row in np.asarray(output).argmax(-1)]

    def callbacks(self, data):
        import keras

        seen = self.epochs_seen

        class Journal(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                seen.append(epoch)

        return [Journal()]

    def custom_objects(self):
        return {"positions_loss": positions_loss}


@pytest.fixture
def tiny_architecture():
    architecture = register_architecture(TinyPositions())
    yield architecture
    ARCHITECTURES.unregister(architecture.name)


def test_an_unregistered_architecture_is_refused_by_name(tmp_path):
    assert "tiny-positions" not in architecture_names()
    with pytest.raises(ConfigError, match="arch 'tiny-positions' is unknown"):
        make_config(LocalStore(tmp_path / "store"), arch="tiny-positions")
    with pytest.raises(ValueError, match="register it"):
        get_architecture("tiny-positions")


def test_a_registered_architecture_runs_through_the_whole_pipeline(tiny_architecture, tmp_path, capsys):
    from tasks.serving.predict import main as predict

    store = LocalStore(tmp_path / "store")
    cfg = make_config(store, arch="tiny-positions", epochs=2, source="synthetic://?count=40&length=4&seed=5")
    for stage in (ingest, encode_labels, build_shards):
        stage(cfg, store)
    trained = train(cfg, store, cache_dir=tmp_path / "cache")
    assert trained["epochs"] == 2 and tiny_architecture.epochs_seen == [0, 1]
    assert store.get_json(trained["metadata"])["arch"] == "tiny-positions"
    # Had that try been killed after its last epoch, the next would resume from the checkpoint: loading
    # it needs the architecture's loss.
    checkpoint = store.get_json(f"runs/{cfg.run_key}/checkpoint.json")
    store.put_json(f"runs/{cfg.run_key}/checkpoint.json", {**checkpoint, "complete": False})
    resumed = train(make_config(store, arch="tiny-positions", epochs=3, source=cfg.source), store,
                    cache_dir=tmp_path / "cache")
    assert resumed["resumed_from_epoch"] == 2 and tiny_architecture.epochs_seen == [0, 1, 2]

    evaluated = evaluate(cfg, store, tmp_path / "cache")
    rows = list(store.iter_jsonl(evaluated["predictions"]))
    assert len(rows) == evaluated["test_images"] > 0
    assert all(len(row["predicted"]) <= 4 for row in rows)

    published = publish(cfg, store)
    assert published["promoted"] is True
    version = f"models/{published['version']}/"
    assert store.exists(f"{version}model.onnx") and store.exists(f"{version}saved_model/saved_model.pb")

    images = sorted((store.root / "raw").iterdir())[:4]
    assert predict(["--model", store.uri, *map(str, images)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in images]
    alphabet = store.get_json(f"{version}model.json")["alphabet"]
    assert all(set(line.split("\t")[1]) <= set(alphabet) for line in lines)

    # The ONNX export reads like the Keras model it came from, through the architecture's decoding.
    from tasks.data.images import preprocess_bytes
    from tasks.modelling.saving import load_model
    from tasks.serving.predict import OnnxReader

    meta = store.get_json(f"{version}model.json")
    batch = np.stack([preprocess_bytes(p.read_bytes(), meta["height"], meta["width"], meta["preprocessing"])
                      for p in images])[..., None]
    batch = batch.astype(np.float32)
    store.download_file(f"{version}model.keras", tmp_path / "model.keras")
    keras_output = np.asarray(load_model(tmp_path / "model.keras").predict_on_batch(batch))
    onnx_output = OnnxReader(store.root / version / "model.onnx")(batch)
    assert np.allclose(keras_output, onnx_output, atol=1e-5)
    assert tiny_architecture.decode(onnx_output) == tiny_architecture.decode(keras_output)
