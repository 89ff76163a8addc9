"""A store backend and a source kind registered from the test suite alone: the stages run on them
unchanged, chosen by URI scheme."""
import hashlib
import threading
from pathlib import Path
from typing import Iterator

import pytest
from conftest import make_config, write_synthetic

from tasks.build_shards import build_shards
from tasks.check_inputs import check_inputs
from tasks.data.shards import local_shard_files, read_shard_index
from tasks.data.sources import SourceError, SourceItem, SourceKind, label_from_name, open_source, register_source
from tasks.data.sources.base import SOURCES
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest
from tasks.pipeline.config import ConfigError, PipelineConfig
from tasks.store import MissingObjectError, ObjectStore, PreconditionFailed, StoreError, open_store, register_store
from tasks.store.base import STORES, atomic_copy_to, check_key


class MemoryStore(ObjectStore):
    """`memory://name`: objects in this process's memory; every store of one name shares its objects."""

    scheme = "memory"
    buckets: dict[str, dict[str, bytes]] = {}
    lock = threading.Lock()

    def __init__(self, name: str):
        self.objects = self.buckets.setdefault(name, {})
        self.uri = f"memory://{name}"

    @classmethod
    def from_uri(cls, uri, options=None):
        name = uri.removeprefix("memory://").strip("/")
        if not name:
            raise StoreError(f"store URI {uri!r} names no memory store")
        return cls(name)

    def put_bytes(self, key, data):
        self.objects[check_key(key)] = bytes(data)

    def get_bytes(self, key):
        try:
            return self.objects[check_key(key)]
        except KeyError:
            raise MissingObjectError(f"{self.url(key)} does not exist") from None

    def exists(self, key):
        return check_key(key) in self.objects

    def list(self, prefix=""):
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def upload_file(self, local_path, key):
        self.put_bytes(key, Path(local_path).read_bytes())

    def download_file(self, key, local_path):
        data = self.get_bytes(key)
        atomic_copy_to(Path(local_path), lambda tmp: Path(tmp).write_bytes(data))

    def delete(self, key):
        self.objects.pop(check_key(key), None)

    def get_tagged(self, key):
        data = self.get_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def put_if(self, key, data, tag):
        with self.lock:
            current = self.get_tagged(key)[1] if self.exists(key) else None
            if current != tag:
                raise PreconditionFailed(f"{self.url(key)} changed since it was read")
            self.put_bytes(key, data)
        return hashlib.sha256(data).hexdigest()

    def check_access(self):
        pass


class ListedSource(SourceKind):
    """`listed://name`: the image files a test listed under that name."""

    scheme = "listed"
    listings: dict[str, list[Path]] = {}

    def check(self):
        if self.uri.removeprefix("listed://") not in self.listings:
            raise SourceError(f"source {self.uri!r}: nothing is listed under that name")

    def items(self) -> Iterator[SourceItem]:
        for path in self.listings[self.uri.removeprefix("listed://")]:
            yield SourceItem(path.name, label_from_name(path.name), read=path.read_bytes)


@pytest.fixture
def memory_scheme():
    register_store(MemoryStore)
    register_source(ListedSource)
    yield
    STORES.unregister("memory")
    SOURCES.unregister("listed")
    MemoryStore.buckets.clear()
    ListedSource.listings.clear()


def test_unknown_schemes_are_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(StoreError, match=r"use file://\.\.\. or s3://\.\.\."):
        open_store("memory://x")
    with pytest.raises(ConfigError, match="must be a file:// or s3:// URI"):
        PipelineConfig(run_key="k", store="memory://x")
    with pytest.raises(SourceError, match="unknown scheme 'listed'"):
        open_source("listed://x")


def test_stages_run_on_a_registered_store_and_source(memory_scheme, tmp_path):
    ListedSource.listings["night1"] = write_synthetic(tmp_path / "images", "synthetic://?count=30&length=4&seed=11")
    store = open_store("memory://nightly")
    assert isinstance(store, MemoryStore)
    cfg = make_config(store, source="listed://night1")

    checked = check_inputs(cfg, store)
    assert checked["store"] == "memory://nightly"
    ingested = ingest(cfg, store)
    assert ingested["stored"] == ingested["new_images"] == 30
    assert len(list(store.list("raw/"))) == 30
    encoded = encode_labels(cfg, store)
    built = build_shards(cfg, store)
    index = read_shard_index(store, built["cache_key"])
    assert sum(index["counts"].values()) == 30 == sum(encoded["splits"].values())

    # A store without local files: readers get the shard files through a local cache.
    files = local_shard_files(store, index, tmp_path / "cache")
    assert all(Path(path).is_relative_to(tmp_path / "cache") for paths in files.values() for path in paths)
    assert sum(len(paths) for paths in files.values()) == sum(len(f) for f in index["files"].values())

    # Another store object of the same URI sees the same data set: a second night adds only what is new.
    ListedSource.listings["night2"] = ListedSource.listings["night1"] + write_synthetic(
        tmp_path / "more", "synthetic://?count=10&length=4&seed=12")
    again = ingest(make_config(open_store("memory://nightly"), source="listed://night2", run_key="night2"), store)
    assert again["new_images"] == 10 and again["total_images"] == 40


def test_a_registered_source_kind_checks_its_uri_before_any_work(memory_scheme):
    store = open_store("memory://checks")
    with pytest.raises(SourceError, match="nothing is listed under that name"):
        check_inputs(make_config(store, source="listed://nowhere"), store)
    assert not store.exists("runs/20261129T000000/check_inputs.json")
