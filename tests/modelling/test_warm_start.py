"""Warm starts: a run whose setup is the champion's fine-tunes from its weights, anything else starts
from scratch and says why. (A run fine-tuned from the champion, whose version names it as its parent:
tests/registry/test_registry.py::test_retraining_the_champions_run_never_touches_the_champion; warm
starts off: tests/test_train.py::test_a_finished_training_run_again_trains_from_scratch.)"""

import pytest
from conftest import own_copy

from tasks.modelling.warm_start import transfer_weights, warm_start_parent
from tasks.registry.versions import read_champion
from tasks.store import LocalStore


@pytest.fixture
def champion_store(trained, tmp_path):
    cfg, local, results = trained
    store = own_copy(local, tmp_path)
    champion, _ = read_champion(store)
    return cfg, store, champion, store.get_json(f"{champion['folder']}model.json")


def test_the_champion_is_the_parent_only_when_its_setup_is_the_same(champion_store, tmp_path):
    _, store, champion, meta = champion_store
    parent, why = warm_start_parent(store, meta, enabled=True)
    assert parent["version"] == champion["version"] and "same setup" in why
    assert warm_start_parent(store, meta, enabled=False) == (None, "warm_start is off")
    assert warm_start_parent(LocalStore(tmp_path / "empty"), meta, enabled=True) == (None, "there is no champion yet")
    for key, other in (("alphabet", meta["alphabet"] + "X"), ("width", meta["width"] + 8), ("arch", "cnn")):
        parent, why = warm_start_parent(store, {**meta, key: other}, enabled=True)
        assert parent is None and f"{key} {meta[key]!r} (this run: {other!r})" in why


def test_weights_move_layer_by_layer_and_a_new_alphabet_gets_a_new_head():
    from tasks.modelling.runtime import import_tensorflow

    import_tensorflow()
    from tasks.modelling.architectures import get_architecture

    crnn = get_architecture("crnn")
    source = crnn.build(32, 96, 4, 11, 64)
    same, wider = crnn.build(32, 96, 4, 11, 64), crnn.build(32, 96, 4, 37, 64)
    from tasks.modelling.dropout import SwitchedDropout

    # Dropout's switches are this run's own choice (its data size): never copied.
    layers = len([layer for layer in source.layers if layer.weights and not isinstance(layer, SwitchedDropout)])
    assert transfer_weights(same, source, all_or_nothing=True) == (layers, [])
    copied, kept = transfer_weights(wider, source)
    assert (copied, kept) == (layers - 1, ["logits"])
    assert transfer_weights(crnn.build(32, 96, 4, 37, 64), source, all_or_nothing=True) == (0, ["logits"])
