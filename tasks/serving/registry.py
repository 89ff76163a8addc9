"""The registry of published models in a store: each version under models/<version>/, and
models/latest.json, the pointer to the champion, written last."""
from __future__ import annotations

LATEST = "models/latest.json"


def version_prefix(version: str) -> str:
    """Folder of one published version."""
    return f"models/{version}/"
