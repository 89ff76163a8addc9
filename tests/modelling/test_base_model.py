"""A base model made here from synthetic captchas: published as a base, and a run on another alphabet
starts from it with a head of its own."""
import dataclasses

import numpy as np
import pytest
from conftest import make_config, own_copy

from tasks.build_shards import build_shards
from tasks.check_inputs import check_inputs
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.pipeline.config import ConfigError
from tasks.publish import publish
from tasks.registry.bases import (BASE_ALPHABET, WORK, BaseModelError, base_config, check_base, list_bases,
                                  publish_base, read_base, resolve_base)
from tasks.registry.versions import read_version
from tasks.store import LocalStore, open_store
from tasks.train import train

TINY = dict(epochs=1, batch_size=8, height=32, width=128)


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    """A store holding one base, pretrained for an epoch on 64 synthetic captchas of mixed styles, as
    the captcha_base_model DAG makes it."""
    store = LocalStore(tmp_path_factory.mktemp("bases") / "store")
    cfg = base_config("20261201T000000", store.uri, images=64, minutes=0, **TINY)
    work = open_store(cfg.store)
    for stage in (ingest, encode_labels, build_shards, train, evaluate):
        stage(cfg, work)
    return store, publish_base(cfg, store, work)


def test_a_base_is_published_as_a_base_and_named_latest(base_store):
    store, record = base_store
    assert record["alphabet"] == "".join(sorted(record["alphabet"])) and set(record["alphabet"]) <= set(BASE_ALPHABET)
    assert "style=mixed" in record["source"] and record["epochs"] == 1 and record["test_images"] > 0
    assert read_base(store, "latest") == record == read_base(store, record["version"])
    assert [r["version"] for r in list_bases(store)] == [record["version"]]
    assert store.exists(record["model"]) and store.get_json(record["metadata"])["arch"] == "crnn"
    assert not store.exists("data/current.json")  # the synthetic images never joined the store's data set
    assert not list(store.list(WORK))  # and the work store is cleared


def test_the_registry_lists_the_bases(base_store, capsys):
    from tasks.registry.__main__ import main

    store, record = base_store
    assert main(["--store", store.uri, "bases"]) == 0
    listed = capsys.readouterr().out
    assert f"* {record['version']} |" in listed and f"{len(record['alphabet'])} characters" in listed


def test_make_base_takes_a_folder_as_the_store(base_store):
    """`make base STORE=some/folder` runs the DAG on file://<the folder> and lists the bases there."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    store, record = base_store
    root = Path(__file__).resolve().parents[2]
    made = subprocess.run(["make", "-s", "-o", "airflow-db", "-o", "venv", "base", "AIRFLOW=echo airflow",
                           f"PY={sys.executable}", f"STORE={os.path.relpath(store.root, root)}"],
                          cwd=root, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    dag_line = next(line for line in made.stdout.splitlines() if line.startswith("airflow dags test"))
    assert dag_line.split()[3] == "captcha_base_model"
    assert json.loads(dag_line.split(" -c ", 1)[1])["store"] == store.uri
    assert f"* {record['version']} |" in made.stdout


def test_a_run_on_another_alphabet_starts_from_the_base_with_a_head_of_its_own(base_store, tmp_path):
    store = own_copy(base_store[0], tmp_path)
    version = base_store[1]["version"]
    cfg = make_config(store, **TINY)  # the default base=auto; the tiny captchas' alphabet: digits only
    ingest(cfg, store)
    encode_labels(cfg, store)
    build_shards(cfg, store)
    trained = train(cfg, store, cache_dir=tmp_path / "cache")
    parent = trained["parent"]
    assert parent["version"] is None and parent["base"] == version
    assert f"the latest base, {version}" in parent["why"]
    assert "layers copied" in parent["why"] and "logits (rows by character)" in parent["why"]
    assert trained["final"]["loss"] > 0  # it trained
    evaluate(cfg, store, tmp_path / "cache")
    published = publish(cfg, store)
    assert read_version(store, published["version"])["parent"] == parent
    card = store.get_bytes(f"models/{published['version']}/model_card.md").decode()
    assert f"Started from: the base {version}" in card


def test_the_head_takes_the_base_rows_of_the_characters_both_alphabets_hold():
    from tasks.modelling.runtime import import_tensorflow

    import_tensorflow()
    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.warm_start import transfer_weights

    crnn = get_architecture("crnn")
    source, model = crnn.build(32, 96, 4, 11, 64), crnn.build(32, 96, 4, 5, 64)
    built = model.get_layer("logits").get_weights()
    copied, kept = transfer_weights(model, source, alphabets=("0123456789", "1ab9"))
    assert kept == ["logits (rows by character, both cases of each letter, new rows for 'ab')"]
    assert copied == len([layer for layer in source.layers if layer.weights]) - 1 - 3  # not the head, nor 3 switches
    kernel, bias = model.get_layer("logits").get_weights()
    theirs = source.get_layer("logits").get_weights()
    for mine, their in ((0, 0), (1, 2), (4, 10)):  # blank, "1", "9"
        assert np.array_equal(kernel[:, mine], theirs[0][:, their]) and bias[mine] == theirs[1][their]
    for new in (2, 3):  # "a", "b": as built
        assert np.array_equal(kernel[:, new], built[0][:, new])


def test_a_base_that_cannot_be_used_is_refused_before_any_work(base_store, tmp_path):
    store, record = base_store
    with pytest.raises(BaseModelError, match=f"base 'nightly-1' is not in store .*published bases: {record['version']}"
                                             r" \(or latest\)"):
        check_inputs(make_config(store, base="nightly-1"), store)
    with pytest.raises(BaseModelError, match=r"no base is published there yet: make one with the "
                                             r"captcha_base_model DAG \(`make base`\)"):
        check_base(make_config(LocalStore(tmp_path / "empty"), base="latest"), LocalStore(tmp_path / "empty"))
    with pytest.raises(BaseModelError, match="trained with arch 'crnn', this run's is 'cnn'.*base=none"):
        check_base(make_config(store, base="latest", arch="cnn"), store)
    assert check_base(dataclasses.replace(make_config(store), base=""), store) is None
    with pytest.raises(ConfigError, match="base '../x' must be auto, none"):
        make_config(store, base="../x")


def test_auto_takes_the_latest_base_that_fits_and_otherwise_none(base_store, tmp_path):
    store, record = base_store
    assert resolve_base(make_config(store), store) == (record, f"the latest base, {record['version']}")
    assert resolve_base(make_config(store, preprocessing="text"), store)[0] == record  # the same ink
    assert resolve_base(make_config(store, base="none"), store) == (None, "no base asked for (base=none)")
    base, why = resolve_base(make_config(store, arch="cnn"), store)
    assert base is None and "trained with arch 'crnn'" in why
    assert resolve_base(make_config(store, preprocessing="grey"), store)[0] is None
    empty = LocalStore(tmp_path / "empty")
    assert resolve_base(make_config(empty), empty) == (None, f"no base is published in {empty.uri}")


def test_a_one_case_alphabet_starts_each_letter_from_both_cases_of_the_base():
    from tasks.modelling.runtime import import_tensorflow

    import_tensorflow()
    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.warm_start import one_case, transfer_weights

    assert one_case("0a7b") and one_case("AB9") and not one_case("aB") and not one_case("0123")
    crnn = get_architecture("crnn")
    source, model = crnn.build(32, 96, 4, 6, 64), crnn.build(32, 96, 4, 4, 64)
    _, kept = transfer_weights(model, source, alphabets=("abAB9", "b9z"))
    assert kept == ["logits (rows by character, both cases of each letter, new rows for 'z')"]
    kernel, bias = model.get_layer("logits").get_weights()
    theirs, their_bias = source.get_layer("logits").get_weights()
    assert np.allclose(kernel[:, 1], (theirs[:, 2] + theirs[:, 4]) / 2)  # "b" from "b" and "B"
    assert np.allclose(kernel[:, 2], theirs[:, 5]) and np.isclose(bias[2], their_bias[5])  # "9"


def test_a_head_of_as_many_characters_is_mapped_by_character_not_by_position():
    from tasks.modelling.runtime import import_tensorflow

    import_tensorflow()
    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.warm_start import transfer_weights

    crnn = get_architecture("crnn")
    source, model = crnn.build(32, 96, 4, 4, 64), crnn.build(32, 96, 4, 4, 64)
    transfer_weights(model, source, alphabets=("abc", "cab"))
    kernel, theirs = model.get_layer("logits").get_weights()[0], source.get_layer("logits").get_weights()[0]
    for mine, their in ((0, 0), (1, 3), (2, 1), (3, 2)):  # blank, "c", "a", "b"
        assert np.array_equal(kernel[:, mine], theirs[:, their])
