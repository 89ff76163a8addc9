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
