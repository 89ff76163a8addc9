import keras
import numpy as np

from tasks.dropout import ScheduledDropout, start_dropout
from tasks.model import build_model, load_model


def model_with_dropout():
    return keras.Sequential([keras.layers.Input((64,)), ScheduledDropout(0.5, seed=1)])


def test_dropout_is_the_identity_until_started_and_at_inference():
    model = model_with_dropout()
    x = np.ones((32, 64), dtype=np.float32)
    assert np.array_equal(model(x, training=True).numpy(), x)
    assert start_dropout(model) == 1
    out = model(x, training=True).numpy()
    dropped = (out == 0).mean()
    assert 0.4 < dropped < 0.6
    assert np.allclose(out[out != 0], 2.0)  # kept units scaled by 1 / (1 - rate)
    assert np.array_equal(model(x, training=False).numpy(), x)


def test_crnn_dropout_starts_with_the_schedule_and_survives_saving(tmp_path):
    from tasks.schedule import training_schedule

    model = build_model("crnn", 32, 96, 4, 11)
    layers = [layer for layer in model.layers if isinstance(layer, ScheduledDropout)]
    assert [layer.rate for layer in layers] == [0.2, 0.25, 0.25]
    gate = training_schedule(max_minutes=0)[0]
    gate.set_model(model)
    gate.set_params({"epochs": 3, "verbose": 0})
    gate.on_train_begin()
    gate.on_epoch_end(0, {"val_loss": 16.0, "accuracy": 0.0, "val_accuracy": 0.0})
    assert all(float(layer.active.numpy()) == 0.0 for layer in layers)
    gate.on_epoch_end(1, {"val_loss": 9.0, "accuracy": 0.02, "val_accuracy": 0.1})
    assert all(float(layer.active.numpy()) == 1.0 for layer in layers)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert [float(layer.active.numpy()) for layer in loaded.layers if isinstance(layer, ScheduledDropout)] == [1.0] * 3
