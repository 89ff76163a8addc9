"""The first task, check_inputs: refuse a run whose settings, source or store cannot work, in
seconds and before any other task, with a message that says what is wrong: the store, the source,
labels already stored that the settings would refuse, and the base model named (if any)."""
from __future__ import annotations

import logging

from tasks.registry.bases import check_base
from tasks.data.labels import check_label
from tasks.data.manifests import CURRENT
from tasks.data.sources import SourceError, open_source
from tasks.pipeline.config import ConfigError, PipelineConfig
from tasks.pipeline.records import write_stage_result
from tasks.store import ObjectStore, StoreError, check_key

log = logging.getLogger(__name__)

# What a wrong setting raises; the DAG turns these into a failure without retries.
INPUT_ERRORS = (ConfigError, SourceError, StoreError)
EXAMPLES = 5


def check_inputs(cfg: PipelineConfig, store: ObjectStore, s3_options: dict | None = None) -> dict:
    """Check that the store can be written and the source exists and can be read now (an s3:// prefix
    must hold objects unless the store already holds a data set: an empty one just means nothing new);
    return what was checked (also stored as runs/<run key>/check_inputs.json)."""
    store.check_access()
    open_source(cfg.source, s3_options).check_reachable(may_be_empty=store.exists(CURRENT))
    check_stored_labels(cfg, store)
    check_base(cfg, store)
    log.info("check_inputs: source %s and store %s are usable", cfg.source, store.uri)
    return write_stage_result(store, cfg.run_key, "check_inputs",
                              {"source": cfg.source, "store": store.uri, "settings": cfg.model_settings()})


def check_store_exists(uri: str) -> None:
    """Refuse a file:// store, other than the default one, whose folder does not exist: opening it
    would create it, and a mistyped path would start a new, empty store and registry."""
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from tasks.pipeline.config import default_store_uri

    if not uri.startswith("file://") or uri.rstrip("/") == default_store_uri().rstrip("/"):
        return
    folder = Path(unquote(urlparse(uri).path))
    if not folder.is_dir():
        raise StoreError(f"store {uri} does not exist: correct the path, or create the folder "
                         f"(mkdir -p {folder}) to start a new store there")


def check_stored_labels(cfg: PipelineConfig, store: ObjectStore) -> None:
    """Refuse settings (alphabet, label_length, max_label_length) that images already in the store's
    data set do not fit: they would fail the run later, after its work. Says how many, which, and
    what to do."""
    if not store.exists(CURRENT):
        return
    manifest = check_key(store.get_json(CURRENT)["manifest"])
    misfits, total = [], 0
    for entry in store.iter_jsonl(manifest):
        total += 1
        problem = check_label(entry["label"], cfg)
        if problem:
            misfits.append(f"{entry['name']} ({problem})")
    if misfits:
        raise ConfigError(
            f"{len(misfits)} of the {total} images already in store {store.uri} do not fit these settings, e.g. "
            f"{'; '.join(misfits[:EXAMPLES])}. Keep the alphabet, label_length and max_label_length the data set "
            "was built with (leave them empty / 0 to read them off the data), or use a new store for the new rules")
