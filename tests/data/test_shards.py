"""The training worker's local cache of shard files: it downloads only the files it lacks."""
from conftest import night, write_synthetic

from tasks.build_shards import build_shards
from tasks.data.shards import read_shard_index
from tasks.encode_labels import encode_labels


def test_the_training_workers_shard_cache_downloads_only_what_it_lacks(s3_bucket, s3_options, tmp_path):
    from tasks.data.shards import local_shard_files
    from tasks.store import S3Store

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
