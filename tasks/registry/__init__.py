"""The registry of published models in a store: immutable versions under models/<version>/, the
champion pointer models/latest.json moved only by compare-and-swap, and the audit log of every
decision about it (models/history.jsonl). `python -m tasks.registry` lists, shows, promotes, rolls
back and cleans up."""
from tasks.registry.versions import HISTORY, LATEST, RECORD, version_prefix

__all__ = ["HISTORY", "LATEST", "RECORD", "version_prefix"]
