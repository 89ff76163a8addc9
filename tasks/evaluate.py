"""Stage 5, evaluate: how well the trained model reads the test split.

Writes runs/<run key>/metrics.json and runs/<run key>/predictions.jsonl (one line per test image:
sha256, true and predicted text), which publish turns into plots.
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

from tasks.pipeline.records import read_stage_result, run_prefix, write_stage_result
from tasks.store import ObjectStore

log = logging.getLogger(__name__)


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


def score_champion(store: ObjectStore, rows: list[dict], workdir: Path) -> dict | None:
    """Metrics of the published champion (models/latest.json) on the same test images, or None if
    nothing is published yet. The champion reads the raw images with its own preprocessing."""
    from tasks.serving.predict import download_model, open_reader, read_images
    from tasks.serving.registry import LATEST

    if not store.exists(LATEST):
        return None
    latest = store.get_json(LATEST)
    files = download_model(store, latest["folder"], workdir)
    reader = open_reader(files)
    items = ((row, store.get_bytes(f"raw/{row['sha256']}.{row['ext']}")) for row in rows)
    pairs = [(row["true"], text or "") for row, text, _ in read_images(reader, files.meta, items)]
    return {"version": latest["version"], **score(pairs)}


def evaluate(cfg, store: ObjectStore, cache_dir: Path | None = None) -> dict:
    """Score this run's model, and the published champion, on the test split; return the metrics."""
    from tasks.modelling.runtime import import_tensorflow

    import_tensorflow()
    from tasks.data.input_pipeline import make_dataset
    from tasks.data.labels import Alphabet
    from tasks.data.shards import default_cache_dir, local_shard_files, read_shard_index
    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.saving import load_model

    trained = read_stage_result(store, cfg.run_key, "train")
    encoded = read_stage_result(store, cfg.run_key, "encode_labels")
    meta = store.get_json(trained["metadata"])
    index = read_shard_index(store, meta["shards"])
    files = local_shard_files(store, index, cache_dir or default_cache_dir())
    alphabet = Alphabet(meta["alphabet"])
    architecture = get_architecture(meta["arch"])
    ext_of = {r["sha256"]: r["ext"] for r in store.iter_jsonl(encoded["encoded"]) if r["split"] == "test"}
    test_ds = make_dataset(files["test"], height=meta["height"], width=meta["width"],
                           max_length=meta["max_length"], num_classes=meta["num_classes"],
                           batch_size=cfg.batch_size, training=False, cache=False, with_sha256=True,
                           count=index["counts"]["test"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
        local = Path(tmp) / "model.keras"
        store.download_file(trained["model"], local)
        model = load_model(local)
        for images, ids, hashes in test_ds:
            predicted = architecture.decode(model.predict_on_batch(images))
            for sha, t, p in zip(hashes.numpy(), ids.numpy(), predicted):
                sha = sha.decode()
                rows.append({"sha256": sha, "ext": ext_of[sha], "true": alphabet.decode(t),
                             "predicted": alphabet.decode(p)})
        pairs = [(r["true"], r["predicted"]) for r in rows]
        metrics = {**score(pairs), "confusion": confusion(pairs),
                   "champion": score_champion(store, rows, Path(tmp) / "champion")}
    prefix = run_prefix(cfg.run_key)
    store.put_bytes(f"{prefix}predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    store.put_json(f"{prefix}metrics.json", metrics)
    log.info("evaluate: %d of %d test captchas read fully right (%.1f%%, 95%% CI %.1f-%.1f%%), "
             "character accuracy %.1f%%, character error rate %.2f%%", metrics["correct"], metrics["test_images"],
             100 * metrics["full_accuracy"], 100 * metrics["full_accuracy_ci95"][0],
             100 * metrics["full_accuracy_ci95"][1], 100 * metrics["char_accuracy"], 100 * metrics["char_error_rate"])
    if metrics["champion"]:
        log.info("evaluate: the published champion %s reads %.1f%% of the same test captchas",
                 metrics["champion"]["version"], 100 * metrics["champion"]["full_accuracy"])
    summary = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()
               if k not in ("confusion", "champion")}
    champion = metrics["champion"]
    return write_stage_result(store, cfg.run_key, "evaluate", {
        "metrics": f"{prefix}metrics.json", "predictions": f"{prefix}predictions.jsonl", **summary,
        "champion_version": champion["version"] if champion else None,
        "champion_full_accuracy": round(champion["full_accuracy"], 4) if champion else None,
    })
