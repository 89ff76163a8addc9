"""evaluate: the metrics and predictions it writes."""
import json


def test_evaluate_writes_metrics_and_predictions(trained):
    cfg, store, results = trained
    metrics = store.get_json(results["evaluate"]["metrics"])
    assert metrics["test_images"] == results["encode_labels"]["splits"]["test"]
    assert 0 <= metrics["full_accuracy"] <= metrics["char_accuracy"] + 1e-9 <= 1 + 1e-9
    rows = [json.loads(line) for line in store.get_bytes(results["evaluate"]["predictions"]).decode().splitlines()]
    assert len(rows) == metrics["test_images"] and all(r["true"] for r in rows)
