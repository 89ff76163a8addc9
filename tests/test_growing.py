"""The data set grows night after night: new images are added to what is stored, unchanged source
items are not read again, and the shard set is extended rather than rebuilt."""
import shutil

from conftest import make_config, write_synthetic
from tasks.ingest import ingest
from tasks.labels import encode_labels
from tasks.shards import build_shards, read_shard_index


def night(store, source, run_key, **settings):
    cfg = make_config(store, source=str(source), run_key=run_key, **settings)
    return ingest(cfg, store), cfg


def test_each_night_adds_the_new_images_of_the_landing_folder(store, tmp_path):
    landing = tmp_path / "landing"
    first_batch = write_synthetic(landing, "synthetic://?count=30&length=4&seed=21")
    first, _ = night(store, landing, "n1")
    assert first["new_images"] == first["total_images"] == 30
    for path in first_batch:  # the landing folder is emptied once its images are ingested
        path.unlink()
    write_synthetic(landing, "synthetic://?count=10&length=4&seed=22")
    second, _ = night(store, landing, "n2")
    assert second["seen"] == 10 and second["new_images"] == 10 and second["total_images"] == 40
    assert second["data_version"] != first["data_version"]
    manifest = list(store.iter_jsonl(second["manifest"]))
    assert len(manifest) == 40 and [e["sha256"] for e in manifest] == sorted(e["sha256"] for e in manifest)
    assert store.get_json("manifests/current.json")["data_version"] == second["data_version"]
    # the earlier night's manifest is still there, unchanged
    assert len(list(store.iter_jsonl(first["manifest"]))) == 30


def test_unchanged_items_are_not_read_again(local_store, tiny_folder):
    first, _ = night(local_store, tiny_folder, "n1")
    assert first["unchanged"] == 0
    again, _ = night(local_store, tiny_folder, "n2")
    assert again["unchanged"] == again["seen"] == 48 and again["new_images"] == 0
    assert again["data_version"] == first["data_version"]
    # a file rewritten with other content (new size) is read again
    path = sorted(tiny_folder.iterdir())[0]
    other = sorted(tiny_folder.iterdir())[1].read_bytes() + b"\0"
    path.write_bytes(other)
    third, _ = night(local_store, tiny_folder, "n3")
    assert third["unchanged"] == 47 and third["new_images"] == 1


def test_a_stored_image_arriving_under_another_label_is_refused_and_the_stored_one_kept(local_store, tmp_path):
    landing = tmp_path / "landing"
    [image] = write_synthetic(landing, "synthetic://?count=1&length=4&seed=23")
    stored_label = image.name.split("_")[0]
    night(local_store, landing, "n1")
    image.rename(landing / "9999_relabelled.png")
    write_synthetic(landing, "synthetic://?count=1&length=4&seed=26")
    second, _ = night(local_store, landing, "n2", max_refused_fraction=0.5)
    [refused] = list(local_store.iter_jsonl(second["quarantine"]))
    assert refused == {"name": "9999_relabelled.png",
                       "reason": f"the same image is already stored labelled {stored_label!r}; the stored one is kept"}
    assert second["total_images"] == 2 and second["new_images"] == 1
    assert stored_label in [e["label"] for e in local_store.iter_jsonl(second["manifest"])]


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


def test_the_small_files_of_many_nights_are_merged(local_store, tmp_path, monkeypatch):
    import tensorflow as tf

    from tasks import shards

    monkeypatch.setattr(shards, "MAX_SMALL_FILES", 2)
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


def test_the_training_workers_shard_cache_downloads_only_what_it_lacks(s3_bucket, s3_options, tmp_path):
    from tasks.shards import local_shard_files
    from tasks.storage import S3Store

    class CountingStore(S3Store):
        downloads = []

        def download_file(self, key, local_path):
            if key.endswith(".tfrecord"):
                self.downloads.append(key)
            super().download_file(key, local_path)

    store = CountingStore(f"s3://{s3_bucket}/root", s3_options)
    landing, cache = tmp_path / "landing", tmp_path / "cache"
    write_synthetic(landing, "synthetic://?count=40&length=4&seed=60")
    _, cfg = night(store, landing, "n1")
    encode_labels(cfg, store)
    first = read_shard_index(store, build_shards(cfg, store)["cache_key"])
    paths = local_shard_files(store, first, cache)
    assert len(store.downloads) == sum(len(files) for files in first["files"].values())
    assert local_shard_files(store, first, cache) == paths and len(store.downloads) == len(set(store.downloads))
    before = len(store.downloads)
    write_synthetic(landing, "synthetic://?count=4&length=4&seed=61")
    _, cfg = night(store, landing, "n2")
    encode_labels(cfg, store)
    grown = read_shard_index(store, build_shards(cfg, store)["cache_key"])
    local_shard_files(store, grown, cache)
    new_files = {f["key"] for files in grown["files"].values() for f in files} - \
                {f["key"] for files in first["files"].values() for f in files}
    assert set(store.downloads[before:]) == new_files
