"""train: the model, history and checkpoint it saves; a finished training run again trains from
scratch; an interrupted one resumes where it stopped, within the time left of the run's limit."""
import pytest
from conftest import copy_of_kind, make_config, own_copy

from tasks.train import train

PREFIX = "runs/20261129T000000/"


def test_train_saves_model_history_and_checkpoint(trained):
    cfg, store, results = trained
    for name in ("model.keras", "model.json", "history.json", "checkpoint.keras", "checkpoint.json"):
        assert store.exists(PREFIX + name), name
    history = store.get_json(PREFIX + "history.json")
    assert len(history["loss"]) == 1 and len(history["val_accuracy"]) == 1
    checkpoint = store.get_json(PREFIX + "checkpoint.json")
    assert checkpoint["epoch"] == 1 and checkpoint["complete"] is True and checkpoint["elapsed_seconds"] > 0
    assert results["train"]["epochs"] == 1


def test_each_epoch_s_figures_are_tensorboard_events_in_the_store(trained):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    _, store, _ = trained
    [events] = store.list(PREFIX + "tensorboard/")
    assert events.split("/")[-1].startswith("events.out.tfevents.")
    history = store.get_json(PREFIX + "history.json")
    written = {}
    for record in tf.data.TFRecordDataset(str(store.local_path(events))):
        event = event_pb2.Event.FromString(record.numpy())
        for value in event.summary.value:
            written[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    assert written[("loss", 1)] == pytest.approx(history["loss"][0], rel=1e-5)
    assert written[("val_accuracy", 1)] == pytest.approx(history["val_accuracy"][0], rel=1e-5)


def test_a_finished_training_run_again_trains_from_scratch(trained, tmp_path):
    """Cleared, a finished training trains again instead of resuming; with warm_start off, from scratch
    although the champion has its setup, and it says why."""
    cfg, store, results = trained
    store = own_copy(store, tmp_path)
    again = train(make_config(store, epochs=2, warm_start=False), store, cache_dir=tmp_path)
    assert again["resumed_from_epoch"] == 0 and again["epochs"] == 2
    assert again["parent"] == {"version": None, "why": f"warm_start is off; no base is published in {store.uri}"}
    assert len(store.get_json(PREFIX + "history.json")["loss"]) == 2


class Interrupted(Exception):
    """Stands for the kill of a training process, just after an epoch's checkpoint."""


def interrupting(store, at: int):
    """`store`, changed so that a training on it stops, as if killed, once the checkpoint of epoch `at`
    is stored."""
    class Interrupting(type(store)):
        def put_json(self, key, value):
            super().put_json(key, value)
            if key.endswith("checkpoint.json") and value["epoch"] == at and not value.get("complete"):
                raise Interrupted

    copy = object.__new__(Interrupting)
    copy.__dict__.update(store.__dict__)
    return copy


@pytest.fixture(scope="module")
def interrupted_once(trained, tmp_path_factory):
    """A file store whose training of 4 epochs stopped after epoch 2, made once for the module; the
    model counts as reading from its first epoch (the rig: tiny data reads nothing yet), so the
    schedule has patience and best weights."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tasks.modelling.schedule.READING", 0.0)
        root = tmp_path_factory.mktemp("interrupted")
        store = own_copy(trained[1], root)
        cfg = make_config(store, epochs=4, max_train_minutes=5)
        with pytest.raises(Interrupted):
            train(cfg, interrupting(store, at=2), cache_dir=root / "cache")
    return store


@pytest.fixture(params=["file", "s3"])
def interrupted(request, interrupted_once, tmp_path, monkeypatch):
    """A copy of `interrupted_once` on each store kind, with its config; the resumed training goes on
    on that store (the rig as when it stopped)."""
    monkeypatch.setattr("tasks.modelling.schedule.READING", 0.0)
    store = copy_of_kind(request.param, interrupted_once, tmp_path, request)
    return make_config(store, epochs=4, max_train_minutes=5), store


def test_an_interrupted_training_resumes_with_its_schedule_and_best_weights(interrupted, tmp_path, caplog):
    cfg, store = interrupted
    stopped = store.get_json(PREFIX + "checkpoint.json")
    assert stopped["epoch"] == 2 and not stopped.get("complete") and stopped["schedule"]["reading"]
    assert store.exists(PREFIX + "best.keras")
    with caplog.at_level("INFO"):
        resumed = train(cfg, store, cache_dir=tmp_path)
    assert "resuming from the checkpoint of epoch 2" in caplog.text and "with the best weights so far" in caplog.text
    assert resumed["resumed_from_epoch"] == 2 and resumed["epochs"] == 4
    assert resumed["training_seconds_all_tries"] > stopped["elapsed_seconds"]
    assert store.get_json(PREFIX + "checkpoint.json")["complete"] is True


def test_a_resume_gets_only_the_time_the_run_has_left(interrupted, tmp_path, caplog):
    """The earlier tries spent the whole limit: the resumed try trains no further epoch, and publishes
    the best weights it has."""
    cfg, store = interrupted
    stopped = store.get_json(PREFIX + "checkpoint.json")
    store.put_json(PREFIX + "checkpoint.json", {**stopped, "elapsed_seconds": 60 * cfg.max_train_minutes})
    with caplog.at_level("INFO"):
        resumed = train(cfg, store, cache_dir=tmp_path)
    assert "minutes of training time are spent" in caplog.text
    assert resumed["resumed_from_epoch"] == 2 and resumed["epochs"] == 2
    assert store.exists(PREFIX + "model.keras")
