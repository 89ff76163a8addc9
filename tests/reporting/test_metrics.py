"""The reading metrics: confusion counts, scores and their confidence interval."""
import numpy as np

from tasks.reporting.metrics import confusion, edit_distance, score, wilson_interval


def test_confusion_aligns_texts():
    counts = confusion([("abc", "abc"), ("abc", "abd"), ("abc", "ac"), ("ab", "abx")])
    assert counts["c"] == {"c": 2, "d": 1}
    assert counts["b"] == {"b": 3, "": 1}
    assert counts[""] == {"x": 1}


def test_scores():
    assert edit_distance("abcd", "abd") == 1 and edit_distance("", "ab") == 2
    metrics = score([("abcd", "abcd"), ("abcd", "abce"), ("ab", "abc")])
    assert metrics["correct"] == 1 and np.isclose(metrics["full_accuracy"], 1 / 3)
    assert np.isclose(metrics["char_accuracy"], (4 + 3 + 2) / (4 + 4 + 3))
    assert np.isclose(metrics["char_error_rate"], 2 / 10)
    low, high = wilson_interval(208, 208)
    assert 0.98 < low < 1 and high == 1.0
