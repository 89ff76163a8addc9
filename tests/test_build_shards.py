"""build_shards: real TFRecord shards with every image, reused when nothing changed, another set for other
preprocessing, and extended (not rebuilt) as the data set grows night after night."""
import shutil

from conftest import make_config, night, own_copy, write_synthetic

from tasks.build_shards import build_shards
from tasks.data.shards import read_shard_index
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest


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


def test_shards_are_reused_when_nothing_changed(trained, tmp_path):
    cfg, store, results = trained
    store = own_copy(store, tmp_path)
    before = sorted(store.list("shards/"))
    again = build_shards(cfg, store)
    assert again["reused"] is True and again["cache_key"] == results["build_shards"]["cache_key"]
    assert sorted(store.list("shards/")) == before


def test_other_preprocessing_gets_another_shard_set(trained, tmp_path):
    cfg, store, results = trained
    store = own_copy(store, tmp_path)
    wider = make_config(store, width=128, run_key="wider")
    ingest(wider, store)
    encode_labels(wider, store)
    built = build_shards(wider, store)
    assert built["reused"] is False and built["cache_key"] != results["build_shards"]["cache_key"]


def test_a_grown_data_set_extends_the_shard_set_with_new_files_only(local_store, tmp_path):
    import tensorflow as tf

    landing = tmp_path / "landing"
    write_synthetic(landing, "synthetic://?count=60&length=4&seed=24")
    _, cfg = night(local_store, landing, "n1")
    encode_labels(cfg, local_store)
    full = build_shards(cfg, local_store)
    assert full["extended"] is False and full["images"] == 60
    shutil.rmtree(landing)
    write_synthetic(landing, "synthetic://?count=6&length=4&seed=25")
    _, cfg = night(local_store, landing, "n2")
    encoded = encode_labels(cfg, local_store)
    grown = build_shards(cfg, local_store)
    assert grown["extended"] is True and grown["images"] == 6 and grown["files_reused"] == full["files_written"]
    index = read_shard_index(local_store, grown["cache_key"])
    before = read_shard_index(local_store, full["cache_key"])
    for split in ("train", "val", "test"):
        old_keys = [f["key"] for f in before["files"][split]]
        assert [f["key"] for f in index["files"][split]][:len(old_keys)] == old_keys
        hashes = [tf.train.Example.FromString(r.numpy()).features.feature["sha256"].bytes_list.value[0].decode()
                  for f in index["files"][split] for r in tf.data.TFRecordDataset(str(local_store.root / f["key"]))]
        assert len(hashes) == len(set(hashes)) == encoded["splits"][split] == index["counts"][split]


def test_a_family_whose_files_a_clean_up_removed_is_built_afresh_not_extended(local_store, tmp_path):
    landing = tmp_path / "landing"
    write_synthetic(landing, "synthetic://?count=30&length=4&seed=24")
    _, cfg = night(local_store, landing, "n1")
    encode_labels(cfg, local_store)
    full = build_shards(cfg, local_store)
    gone = read_shard_index(local_store, full["cache_key"])["files"]["train"][0]["key"]
    local_store.delete(gone)  # as gc removes an old set's files
    shutil.rmtree(landing)
    write_synthetic(landing, "synthetic://?count=6&length=4&seed=25")
    _, cfg = night(local_store, landing, "n2")
    encode_labels(cfg, local_store)
    grown = build_shards(cfg, local_store)
    assert grown["extended"] is False and grown["images"] == 36
    index = read_shard_index(local_store, grown["cache_key"])
    assert all(local_store.exists(f["key"]) for files in index["files"].values() for f in files)


def test_the_small_files_of_many_nights_are_merged(local_store, tmp_path, monkeypatch):
    import tensorflow as tf

    import tasks.build_shards

    monkeypatch.setattr(tasks.build_shards, "MAX_SMALL_FILES", 2)
    landing = tmp_path / "landing"
    for night_number in range(4):
        shutil.rmtree(landing, ignore_errors=True)
        write_synthetic(landing, f"synthetic://?count=20&length=4&seed={40 + night_number}")
        _, cfg = night(local_store, landing, f"n{night_number}")
        encoded = encode_labels(cfg, local_store)
        built = build_shards(cfg, local_store)
    index = read_shard_index(local_store, built["cache_key"])
    assert all(len(files) <= 2 for files in index["files"].values()), index["files"]
    hashes = [tf.train.Example.FromString(r.numpy()).features.feature["sha256"].bytes_list.value[0]
              for files in index["files"].values() for f in files
              for r in tf.data.TFRecordDataset(str(local_store.root / f["key"]))]
    assert len(hashes) == len(set(hashes)) == sum(encoded["splits"].values()) == 80
