"""encode_labels: the alphabet, label lengths and split it fixes for a run, and the ids it writes."""
import json


def test_encode_labels_fixes_alphabet_lengths_and_split(trained):
    cfg, store, results = trained
    encoded = results["encode_labels"]
    assert set(encoded["alphabet"]) <= set("0123456789") and encoded["num_classes"] == len(encoded["alphabet"]) + 1
    assert encoded["label_lengths"] == [3, 4] and encoded["max_length"] == 4
    assert sum(encoded["splits"].values()) == 48 and min(encoded["splits"].values()) > 0
    rows = [json.loads(line) for line in store.get_bytes(encoded["encoded"]).decode().splitlines()]
    assert all(len(r["ids"]) == len(r["label"]) and 0 not in r["ids"] for r in rows)


def test_a_width_close_to_the_champions_is_the_champions(trained, tmp_path):
    """With the width chosen from the images, a champion's width a few columns off is kept (so the
    night can start warm) and says so; one far off, or warm_start off, leaves the images' choice."""
    import dataclasses

    from conftest import own_copy

    from tasks.encode_labels import encode_labels
    from tasks.registry.versions import read_champion

    cfg, store, _ = trained
    store = own_copy(store, tmp_path)
    night = dataclasses.replace(cfg, run_key="20261201T020000", width=0)
    store.put_json(f"runs/{night.run_key}/ingest.json", store.get_json(f"runs/{cfg.run_key}/ingest.json"))
    chosen = encode_labels(dataclasses.replace(night, warm_start=False), store)["width"]
    champion, _ = read_champion(store)
    meta_key = f"{champion['folder']}model.json"
    meta = store.get_json(meta_key)
    for width, kept in ((chosen + 8, True), (2 * chosen, False)):
        store.put_json(meta_key, {**meta, "height": cfg.height, "width": width})
        encoded = encode_labels(night, store)
        assert encoded["width"] == (width if kept else chosen)
        assert (f"the champion {champion['version']}'s width" in encoded["input_size"]) is kept
        assert encode_labels(dataclasses.replace(night, warm_start=False), store)["width"] == chosen
