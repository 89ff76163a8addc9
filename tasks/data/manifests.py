"""Where the stored data set is described: manifests/<data version>.jsonl, one line per image, and
manifests/current.json, the pointer to the data set now (written after its manifest)."""
from __future__ import annotations

CURRENT = "manifests/current.json"


def manifest_key(data_version: str) -> str:
    """The manifest of one data version."""
    return f"manifests/{data_version}.jsonl"
