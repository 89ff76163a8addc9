import json
import shutil

import pytest
from conftest import make_config, night, write_synthetic

from tasks.ingest import IngestError, ingest


def quarantine_of(store, summary):
    return [json.loads(line) for line in store.get_bytes(summary["quarantine"]).decode().splitlines()]


def test_ingest_stores_each_image_once_and_rerun_stores_nothing(store, tiny_folder):
    cfg = make_config(store, source=str(tiny_folder))
    first = ingest(cfg, store)
    assert first["seen"] == 48 and first["stored"] == 48 and first["refused"] == 0
    assert first["new_objects"] == 48 and len(list(store.list("raw/"))) == 48
    manifest = list(store.iter_jsonl(first["manifest"]))
    assert len(manifest) == 48 and all(len(e["sha256"]) == 64 for e in manifest)
    assert store.get_json("runs/20261129T000000/ingest.json") == first
    again = ingest(cfg, store)
    assert again["new_objects"] == 0 and again["data_version"] == first["data_version"]
    assert len(list(store.list("raw/"))) == 48


def test_synthetic_source_is_reproducible(local_store):
    cfg = make_config(local_store)
    first, again = ingest(cfg, local_store), ingest(cfg, local_store)
    assert first["stored"] == 48 and again["new_objects"] == 0


def test_unusable_images_go_to_quarantine_with_reasons(local_store, tiny_folder):
    images = sorted(tiny_folder.iterdir())
    (tiny_folder / "empty1.png").write_bytes(b"")
    (tiny_folder / "text2.png").write_text("not an image")
    (tiny_folder / "trunc3.png").write_bytes(images[0].read_bytes()[:80])
    shutil.copy(images[1], tiny_folder / "dupe_copy.png")  # same image, other label
    shutil.copy(images[2], tiny_folder / f"{images[2].name.split('_')[0]}_again.png")  # true duplicate
    cfg = make_config(local_store, source=str(tiny_folder), max_refused_fraction=0.5)
    summary = ingest(cfg, local_store)
    reasons = {q["name"]: q["reason"] for q in quarantine_of(local_store, summary)}
    assert reasons["empty1.png"] == "empty file"
    assert reasons["text2.png"].startswith("not a readable image")
    assert reasons["trunc3.png"].startswith("corrupt or truncated image")
    assert "labelled both" in reasons["dupe_copy.png"] and "labelled both" in reasons[images[1].name]
    assert summary["seen"] == 53
    assert summary["refused"] == 5 and summary["duplicates"] == 1 and summary["stored"] == 47
    assert summary["seen"] == summary["stored"] + summary["duplicates"] + summary["refused"]


def test_labels_outside_the_given_alphabet_are_refused(local_store, tiny_folder):
    cfg = make_config(local_store, source=str(tiny_folder), alphabet="0123456", max_refused_fraction=0.99)
    summary = ingest(cfg, local_store)
    reasons = [q["reason"] for q in quarantine_of(local_store, summary)]
    assert summary["refused"] == len(reasons) > 0
    assert all("outside the alphabet" in r for r in reasons)


def test_too_many_refused_fails_clearly_and_keeps_the_report(local_store, tiny_folder):
    for i in range(20):
        (tiny_folder / f"bad{i}.png").write_bytes(b"junk")
    cfg = make_config(local_store, source=str(tiny_folder), max_refused_fraction=0.1)
    with pytest.raises(IngestError, match=r"20 of 68 images refused, over the max_refused_fraction of 10%"):
        ingest(cfg, local_store)
    assert len(local_store.get_bytes("quarantine/20261129T000000.jsonl").splitlines()) == 20


def test_nothing_usable_fails_clearly(local_store, tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "x1.png").write_bytes(b"junk")
    with pytest.raises(IngestError, match="no usable image"):
        ingest(make_config(local_store, source=str(tmp_path / "only")), local_store)


def test_labels_longer_than_the_maximum_are_refused(local_store, tmp_path):
    folder = tmp_path / "long"
    from conftest import write_synthetic

    write_synthetic(folder, "synthetic://?count=10&length=3-6&seed=2")
    summary = ingest(make_config(local_store, source=str(folder), max_label_length=4,
                                 max_refused_fraction=0.99), local_store)
    reasons = [q["reason"] for q in quarantine_of(local_store, summary)]
    assert reasons and all("is longer than max_label_length (4)" in r for r in reasons)
    assert all(len(e["label"]) <= 4 for e in local_store.iter_jsonl(summary["manifest"]))


def test_non_utf8_and_very_long_file_names_are_refused_not_fatal(local_store, tiny_folder):
    import os

    data = sorted(tiny_folder.iterdir())[0].read_bytes()
    with open(os.path.join(os.fsencode(tiny_folder), b"\xff\xfe12ab.png"), "wb") as f:
        f.write(data[:-1] + b"\x00")  # another image's bytes, so it is not a duplicate
    (tiny_folder / ("7" * 250 + ".png")).write_bytes(data + b"\x00")
    summary = ingest(make_config(local_store, source=str(tiny_folder), max_refused_fraction=0.5), local_store)
    reasons = {q["name"]: q["reason"] for q in quarantine_of(local_store, summary)}
    assert len(reasons) == 2
    assert "is longer than max_label_length (16)" in reasons["7" * 250 + ".png"]
    [odd_name] = set(reasons) - {"7" * 250 + ".png"}
    assert "has spaces or unprintable characters" in reasons[odd_name]
    assert summary["stored"] == 48


def test_labels_of_another_length_are_refused_where_the_length_is_fixed(local_store, tmp_path):
    from conftest import write_synthetic

    folder = tmp_path / "mixed"
    write_synthetic(folder, "synthetic://?count=12&length=3-5&seed=4")
    summary = ingest(make_config(local_store, source=str(folder), label_length=4, max_refused_fraction=0.99),
                     local_store)
    refused = {q["name"]: q["reason"] for q in quarantine_of(local_store, summary)}
    for name, reason in refused.items():
        label = name.split("_")[0]
        assert len(label) != 4
        assert reason == f"label {label!r} has {len(label)} characters, not the label_length of 4"
    kept = list(local_store.iter_jsonl(summary["manifest"]))
    assert kept and all(len(e["label"]) == 4 for e in kept)
    assert summary["seen"] == 12 == len(kept) + len(refused)


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
