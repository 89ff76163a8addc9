"""Ingest's working catalog: the data set's version follows content and labels; conflicts are held apart."""
from tasks.data.catalog import Catalog


def entry(sha: str, label: str, name: str) -> dict:
    return {"sha256": sha, "label": label, "name": name, "ext": "png", "width": 10, "height": 8}


def test_found_images_join_the_stored_set_and_change_its_version(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    catalog.load("stored", [entry("a" * 64, "12", "a.png")])
    before = catalog.data_version()
    catalog.add_found(entry("b" * 64, "34", "b.png"))
    catalog.add_name("b" * 64, "another-b.png")
    assert catalog.found_entry("b" * 64) == ("34", ["b.png", "another-b.png"])
    assert catalog.add_found_to_stored() == 1 and catalog.stored_count() == 2
    assert catalog.data_version() != before
    assert [e["sha256"] for e in catalog.stored_entries()] == ["a" * 64, "b" * 64]
    catalog.close()


def test_the_version_depends_on_labels_not_on_names(tmp_path):
    versions = []
    for label, name in (("12", "x.png"), ("12", "y.png"), ("13", "x.png")):
        catalog = Catalog(tmp_path / f"{label}-{name}.sqlite")
        catalog.load("stored", [entry("a" * 64, label, name)])
        versions.append(catalog.data_version())
        catalog.close()
    assert versions[0] == versions[1] != versions[2]


def test_a_conflict_removes_the_found_image_and_returns_its_names(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    catalog.add_found(entry("c" * 64, "12", "c.png"))
    assert catalog.conflict("c" * 64) == ("12", ["c.png"])
    assert catalog.found_entry("c" * 64) is None and catalog.is_conflicted("c" * 64)
    catalog.close()


def test_the_ledger_answers_only_for_unchanged_items_of_stored_images(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    catalog.load("stored", [entry("a" * 64, "12", "a.png")])
    catalog.load("ledger", [{**entry("a" * 64, "12", "a.png"), "fingerprint": "10:1"},
                            {**entry("d" * 64, "45", "d.png"), "fingerprint": "10:2"}])
    assert catalog.ledger_entry("a.png", "10:1", "12")["sha256"] == "a" * 64
    assert catalog.ledger_entry("a.png", "10:9", "12") is None  # changed since
    assert catalog.ledger_entry("a.png", "10:1", "13") is None  # relabelled
    assert catalog.ledger_entry("d.png", "10:2", "45") is None  # not in the data set
    catalog.close()
