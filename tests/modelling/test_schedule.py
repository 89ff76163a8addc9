import keras
import pytest

from tasks.modelling.schedule import after_first_reading, training_schedule


@pytest.fixture
def model():
    model = keras.Sequential([keras.layers.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def run_epochs(callback, model, logs_per_epoch):
    callback.set_model(model)
    callback.set_params({"epochs": len(logs_per_epoch), "verbose": 0})
    callback.on_train_begin()
    stopped_at = None
    for epoch, logs in enumerate(logs_per_epoch):
        callback.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            stopped_at = epoch
            break
    callback.on_train_end()
    return stopped_at


def learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_schedule_waits_while_the_model_reads_nothing(model):
    schedule = training_schedule(max_minutes=0)[0]
    # 40 flat epochs on the CTC plateau: no halving, no early stop
    plateau = [{"loss": 16.6, "val_loss": 16.6 + 0.01 * (e % 3), "accuracy": 0.0, "val_accuracy": 0.0}
               for e in range(40)]
    assert run_epochs(schedule, model, plateau) is None
    assert learning_rate(model) == pytest.approx(1e-3)


def test_schedule_counts_patience_from_the_first_reading(model):
    schedule = training_schedule(max_minutes=0)[0]
    before = [{"val_loss": 16.0, "accuracy": 0.0, "val_accuracy": 0.0}] * 10
    # reads from epoch 11, then the validation loss never improves on its first value
    after = [{"val_loss": 2.0, "accuracy": 0.04, "val_accuracy": 0.1}] + \
            [{"val_loss": 3.0, "accuracy": 0.5, "val_accuracy": 0.5}] * 30
    stopped_at = run_epochs(schedule, model, before + after)
    assert stopped_at == 10 + 20  # patience 20 counted from epoch 11
    assert learning_rate(model) < 1e-3


def test_gate_opens_at_the_first_reading_and_stays_open(model):
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    gate = after_first_reading([Record()], threshold=0.05)
    run_epochs(gate, model, [{"accuracy": 0.0}, {"val_accuracy": 0.01}, {"accuracy": 0.06}, {"accuracy": 0.0}])
    assert seen == [2, 3]


def test_a_resumed_schedule_goes_on_where_it_stopped(model):
    """Patience counters, best values, best weights and 'reads already' survive a stop and a resume."""
    import json

    improving = [{"val_loss": 3.0 - e, "accuracy": 0.5, "val_accuracy": 0.5} for e in range(3)]
    flat = [{"val_loss": 2.5, "accuracy": 0.5, "val_accuracy": 0.5}] * 4
    first = training_schedule(max_minutes=0)[0]
    run_epochs(first, model, improving + flat)
    assert first.improved(2) and not first.improved(6)
    saved, best = json.loads(json.dumps(first.state())), first.best_weights()  # as checkpoint.json keeps it

    resumed = training_schedule(max_minutes=0, resume=saved, best_weights=best)[0]
    resumed.set_model(model)
    resumed.set_params({"epochs": 20, "verbose": 0})
    resumed.on_train_begin()
    plateau, stopping, _ = resumed.inner
    assert resumed.reading and (plateau.wait, stopping.wait, stopping.best, stopping.best_epoch) == (4, 4, 1.0, 2)
    assert all((a == b).all() for a, b in zip(stopping.best_weights, best))
    resumed.on_epoch_end(7, dict(flat[0]))  # the fifth epoch without a better loss, counted across the stop
    assert learning_rate(model) == pytest.approx(5e-4)


def test_a_start_from_a_base_keeps_the_epoch_that_reads_the_most_validation_captchas(model):
    schedule = training_schedule(max_minutes=0, start="from a base")[0]
    # The loss is lowest at epoch 2; epoch 5 reads more, and epoch 6 reads as many with a lower loss.
    epochs = [{"val_loss": 0.20, "val_accuracy": 0.90}, {"val_loss": 0.14, "val_accuracy": 0.92},
              {"val_loss": 0.17, "val_accuracy": 0.93}, {"val_loss": 0.16, "val_accuracy": 0.93},
              {"val_loss": 0.16, "val_accuracy": 0.97}, {"val_loss": 0.15, "val_accuracy": 0.97}]
    epochs += [{"val_loss": 0.13, "val_accuracy": 0.95}] * 30
    logs = [{"accuracy": 0.9, "loss": 1.0 / (i + 1), **e} for i, e in enumerate(epochs)]  # the training loss falls
    stopped_at = run_epochs(schedule, model, logs)
    assert stopped_at == 5 + 30  # patience 30 counted from the best epoch, the 6th (index 5)
    assert [c.best_epoch for c in schedule.inner if hasattr(c, "best_weights")] == [5]


def test_from_a_base_the_learning_rate_follows_the_training_loss(model):
    """A small validation split read whole does not halve the learning rate while the training
    captchas are still being learnt; 5 epochs without a lower training loss do."""
    schedule = training_schedule(max_minutes=0, start="from a base")[0]
    read_whole = {"accuracy": 0.9, "val_accuracy": 1.0, "val_loss": 0.01}
    falling = [{**read_whole, "loss": 1.0 - 0.05 * i} for i in range(12)]
    run_epochs(schedule, model, falling)
    assert learning_rate(model) == pytest.approx(1e-3)
    run_epochs(schedule, model, falling + [{**read_whole, "loss": 0.5}] * 6)
    assert learning_rate(model) == pytest.approx(5e-4)


def test_training_ends_once_everything_has_been_read_for_a_few_epochs_in_a_row(model):
    """Every training-probe and validation captcha read 3 epochs in a row ends training (the val loss
    still falls, so nothing else would stop it), keeping the best epoch; an epoch that misses one
    captcha starts the count again; 0 never ends it."""
    falling = [{"loss": 1.0, "val_loss": 1.0 - 0.01 * e} for e in range(30)]
    read = [0.5, 0.9, 1.0, 1.0, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0]
    logs = [{**falling[e], "accuracy": 1.0, "val_accuracy": v} for e, v in enumerate(read)]
    logs[6]["accuracy"] = 0.998  # one training-probe captcha misread: not everything is read
    schedule = training_schedule(max_minutes=0, all_read_epochs=3)[0]
    assert run_epochs(schedule, model, logs) == 9
    assert [c.best_epoch for c in schedule.inner if hasattr(c, "best_weights")] == [9]
    never = training_schedule(max_minutes=0, all_read_epochs=0)[0]
    model.stop_training = False
    assert run_epochs(never, model, [{**falling[e], "accuracy": 1.0, "val_accuracy": 1.0} for e in range(30)]) is None


def test_the_count_of_epochs_with_everything_read_survives_a_resume(model):
    import json

    everything = {"loss": 1.0, "accuracy": 1.0, "val_accuracy": 1.0}
    first = training_schedule(max_minutes=0, all_read_epochs=4)[0]
    assert run_epochs(first, model, [{**everything, "val_loss": 1.0 - 0.1 * e} for e in range(3)]) is None
    saved = json.loads(json.dumps(first.state()))
    resumed = training_schedule(max_minutes=0, resume=saved, best_weights=first.best_weights(), all_read_epochs=4)[0]
    resumed.set_model(model)
    resumed.set_params({"epochs": 20, "verbose": 0})
    resumed.on_train_begin()
    resumed.on_epoch_end(3, {**everything, "val_loss": 0.5})
    assert model.stop_training
