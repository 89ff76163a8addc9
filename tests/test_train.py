"""train: the model, history and checkpoint it saves, and a run resumed from its checkpoint."""
from conftest import make_config, own_copy

from tasks.train import train


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
    store = own_copy(store, tmp_path)
    more = make_config(store, epochs=2)
    resumed = train(more, store, cache_dir=tmp_path)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 2
    assert len(store.get_json("runs/20261129T000000/history.json")["loss"]) == 2
