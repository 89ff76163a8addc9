"""Stage 5, evaluate: how well the trained model reads the test split.

Writes runs/<run key>/metrics.json and runs/<run key>/predictions.jsonl (one line per test image:
sha256, true and predicted text), which publish turns into plots.
"""
from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from tasks.pipeline.records import read_stage_result, run_prefix, write_stage_result
from tasks.registry.promotion import score_version
from tasks.registry.versions import read_champion
from tasks.reporting.metrics import confusion, score
from tasks.store import ObjectStore

log = logging.getLogger(__name__)


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
        # The champion reads the same test captchas, from the raw images with its own preprocessing.
        champion = read_champion(store)[0]
        metrics = {**score(pairs), "confusion": confusion(pairs), "champion": champion and {
            "version": champion["version"], **score_version(store, champion["folder"], rows, Path(tmp) / "champion")}}
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
