"""Reading metrics of (true, read) texts: full-captcha accuracy with its confidence interval,
character accuracy, character error rate, and the per-character confusion."""
from __future__ import annotations

import math


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a proportion (Wilson score), sound near 0% and 100%."""
    if total == 0:
        return 0.0, 0.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def confusion(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """Per-character confusion {true: {read: count}} of aligned texts; "" stands for a character
    missed (as read) or added (as true)."""
    from difflib import SequenceMatcher

    counts: dict[str, dict[str, int]] = {}

    def add(true: str, read: str) -> None:
        counts.setdefault(true, {}).setdefault(read, 0)
        counts[true][read] += 1

    for true, read in pairs:
        for op, i1, i2, j1, j2 in SequenceMatcher(None, true, read, autojunk=False).get_opcodes():
            if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
                for a, b in zip(true[i1:i2], read[j1:j2]):
                    add(a, b)
            else:
                for a in true[i1:i2]:
                    add(a, "")
                for b in read[j1:j2]:
                    add("", b)
    return counts


def score(pairs: list[tuple[str, str]]) -> dict:
    """Metrics of (true, predicted) texts: full-captcha accuracy with its 95% interval, character
    accuracy (same character at the same position, over the longer text), character error rate."""
    total = len(pairs)
    full = sum(t == p for t, p in pairs)
    positions = sum(max(len(t), len(p)) for t, p in pairs)
    matches = sum(sum(a == b for a, b in zip(t, p)) for t, p in pairs)
    errors = sum(edit_distance(t, p) for t, p in pairs)
    low, high = wilson_interval(full, total)
    return {
        "test_images": total, "full_accuracy": full / total if total else 0.0,
        "full_accuracy_ci95": [round(low, 4), round(high, 4)], "correct": full,
        "char_accuracy": matches / positions if positions else 0.0,
        "char_error_rate": errors / max(1, sum(len(t) for t, _ in pairs)),
    }
