"""The first task, check_inputs: refuse a run whose settings, source or store cannot work, in
seconds and before any other task, with a message that says what is wrong."""
from __future__ import annotations

import logging

from tasks.data.manifests import CURRENT
from tasks.data.sources import SourceError, open_source
from tasks.pipeline.config import ConfigError, PipelineConfig
from tasks.pipeline.records import write_stage_result
from tasks.store import ObjectStore, StoreError

log = logging.getLogger(__name__)

# What a wrong setting raises; the DAG turns these into a failure without retries.
INPUT_ERRORS = (ConfigError, SourceError, StoreError)


def check_inputs(cfg: PipelineConfig, store: ObjectStore, s3_options: dict | None = None) -> dict:
    """Check that the store can be written and the source exists and can be read now (an s3:// prefix
    must hold objects unless the store already holds a data set: an empty one just means nothing new);
    return what was checked (also stored as runs/<run key>/check_inputs.json)."""
    store.check_access()
    open_source(cfg.source, s3_options).check_reachable(may_be_empty=store.exists(CURRENT))
    log.info("check_inputs: source %s and store %s are usable", cfg.source, store.uri)
    return write_stage_result(store, cfg.run_key, "check_inputs",
                              {"source": cfg.source, "store": store.uri, "settings": cfg.model_settings()})
