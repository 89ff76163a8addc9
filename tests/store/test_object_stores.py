import pytest

from tasks.store import (
    LocalStore, MissingObjectError, PreconditionFailed, S3Store, StoreError, append_jsonl, check_key, open_store,
    update_json,
)


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


def test_conditional_writes_refuse_a_changed_or_new_object(store):
    first = store.put_if("models/latest.json", b'{"version": "a"}', None)  # only if absent
    with pytest.raises(PreconditionFailed):
        store.put_if("models/latest.json", b'{"version": "b"}', None)
    second = store.put_if("models/latest.json", b'{"version": "c"}', first)
    with pytest.raises(PreconditionFailed):  # read as `first`, changed since
        store.put_if("models/latest.json", b'{"version": "d"}', first)
    assert store.get_tagged("models/latest.json") == (b'{"version": "c"}', second)


def test_update_json_decides_again_on_what_the_winner_stored(store):
    calls = []

    def add(name):
        def change(current):
            calls.append(name)
            if name == "first":  # another writer gets in between the read and the write
                store.put_json("manifests/current.json", {"images": ["other"]})
            return {"images": [*(current or {"images": []})["images"], name]}
        return change

    store.put_json("manifests/current.json", {"images": []})
    assert update_json(store, "manifests/current.json", add("first")) == {"images": ["other", "first"]}
    assert calls == ["first", "first"]
    assert store.get_json("manifests/current.json") == {"images": ["other", "first"]}
    assert update_json(store, "manifests/current.json", lambda current: None) == {"images": ["other", "first"]}


def test_concurrent_appends_all_land(tmp_path):
    """Processes appending to one audit log at once on a file:// store: no line is lost."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(_append_lines, [(str(tmp_path / "s"), worker) for worker in range(4)])
    lines = LocalStore(tmp_path / "s").get_bytes("models/history.jsonl").decode().splitlines()
    assert sorted(lines) == sorted(f'{{"line": {i}, "worker": {w}}}' for w in range(4) for i in range(25))


def _append_lines(root: str, worker: int) -> None:
    store = LocalStore(root)
    for i in range(25):
        append_jsonl(store, "models/history.jsonl", {"worker": worker, "line": i})


def test_a_local_store_that_cannot_be_created_or_written_says_so(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot be created"):
        LocalStore(blocker / "store")
    with pytest.raises(StoreError, match="cannot be used|cannot be created"):
        open_store((blocker / "store").as_uri())
    store = LocalStore(tmp_path / "store")
    store.put_bytes("models/x.json", b"{}")
    with pytest.raises(StoreError, match="writing 'models/x.json/inner' failed"):
        store.put_bytes("models/x.json/inner", b"{}")  # a file where a folder would have to be
    assert store.get_bytes("models/x.json") == b"{}"  # what was stored stays
