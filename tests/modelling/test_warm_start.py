"""Warm starts: a run whose setup is the champion's fine-tunes from its weights, anything else starts
from scratch and says why; every version names its parent (lineage)."""
import dataclasses

import pytest
from conftest import own_copy

from tasks.modelling.warm_start import transfer_weights, warm_start_parent
from tasks.publish import publish
from tasks.registry.versions import read_champion, read_version
from tasks.store import LocalStore
from tasks.train import train


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


def test_a_night_fine_tunes_from_the_champion_and_its_version_names_it(champion_store, tmp_path):
    cfg, store, champion, _ = champion_store
    night = dataclasses.replace(cfg, run_key="20261130T020000")
    for stage in ("encode_labels", "build_shards"):  # the same data: only training differs
        store.put_json(f"runs/{night.run_key}/{stage}.json", store.get_json(f"runs/{cfg.run_key}/{stage}.json"))
    trained = train(night, store, cache_dir=tmp_path / "cache")
    assert trained["parent"]["version"] == champion["version"]
    from tasks.evaluate import evaluate

    evaluate(night, store, tmp_path / "cache")
    published = publish(night, store)
    assert read_version(store, published["version"])["parent"] == trained["parent"]
    card = store.get_bytes(f"models/{published['version']}/model_card.md").decode()
    assert f"Started from: the champion {champion['version']}" in card


def test_warm_start_off_trains_from_scratch_and_says_why(champion_store, tmp_path):
    cfg, store, _, _ = champion_store
    night = dataclasses.replace(cfg, run_key="20261130T030000", warm_start=False)
    for stage in ("encode_labels", "build_shards"):
        store.put_json(f"runs/{night.run_key}/{stage}.json", store.get_json(f"runs/{cfg.run_key}/{stage}.json"))
    assert train(night, store, cache_dir=tmp_path / "cache")["parent"] == {"version": None,
                                                                          "why": "warm_start is off"}


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
