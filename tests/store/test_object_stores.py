import pytest

from tasks.store import LocalStore, MissingObjectError, S3Store, StoreError, check_key, open_store


def test_put_get_list_delete(store, tmp_path):
    store.put_bytes("raw/aa.png", b"one")
    store.put_json("runs/r1/ingest.json", {"seen": 3})
    store.put_bytes("raw/ab.png", b"two")
    assert store.get_bytes("raw/aa.png") == b"one"
    assert store.get_json("runs/r1/ingest.json") == {"seen": 3}
    assert list(store.list("raw/")) == ["raw/aa.png", "raw/ab.png"]
    assert list(store.list("raw/aa")) == ["raw/aa.png"]
    assert store.exists("raw/ab.png") and not store.exists("raw/zz.png")
    store.put_bytes("raw/aa.png", b"replaced")
    assert store.get_bytes("raw/aa.png") == b"replaced"
    store.delete("raw/aa.png")
    assert list(store.list("raw/")) == ["raw/ab.png"]


def test_files_round_trip(store, tmp_path):
    local = tmp_path / "in.bin"
    local.write_bytes(b"x" * 100_000)
    store.upload_file(local, "shards/k/train-0.tfrecord")
    store.download_file("shards/k/train-0.tfrecord", tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == b"x" * 100_000


def test_missing_object_names_the_uri(store):
    with pytest.raises(MissingObjectError, match="models/latest.json does not exist"):
        store.get_bytes("models/latest.json")
    with pytest.raises(MissingObjectError):
        store.download_file("models/none.keras", "/tmp/never-written")


@pytest.mark.parametrize("key", ["", "../x", "a/../b", "/abs", "a//b", "a/.hidden", "sp ace", "a\\b"])
def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(StoreError, match="invalid object key"):
        store.put_bytes(key, b"x")
    assert list(store.list()) == []


def test_local_writes_leave_no_temporary_files(tmp_path):
    store = LocalStore(tmp_path / "s")
    for i in range(5):
        store.put_bytes("a/b.json", str(i).encode())
    assert sorted(p.name for p in (tmp_path / "s" / "a").iterdir()) == ["b.json"]


def test_open_store_by_uri(tmp_path, s3_bucket, s3_options):
    assert isinstance(open_store(tmp_path.as_uri()), LocalStore)
    assert isinstance(open_store(f"s3://{s3_bucket}/p", s3_options), S3Store)
    for bad in ("ftp://host/x", "relative/path", "file://host/x", "s3:///nobucket"):
        with pytest.raises(StoreError):
            open_store(bad)


def test_check_key_accepts_store_layout_names():
    for key in ("raw/" + "a" * 64 + ".png", "models/latest.json", "shards/abc/train-00000-of-00001.tfrecord"):
        assert check_key(key) == key
