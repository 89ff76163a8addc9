"""What every source kind shares: the items it yields, its errors, the way labels are read, and the
registry that picks a source kind by URI scheme.

A source yields SourceItems: a display name, the label it carries, a way to read its bytes and, where
the source can tell cheaply, a fingerprint (size and modification time, or the S3 ETag) that changes
whenever the content may have changed, so ingest need not read an item it has seen before. What
cannot even be read (a link out of the folder, an archive entry that climbs out or is too large) is
yielded with a `problem`, so ingest can report it instead of dropping it silently.
"""
from __future__ import annotations

import csv
import io
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlparse

from tasks.pipeline.plugins import Registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
LABELS_FILE = "labels.csv"
MAX_FILE_BYTES = 20 * 1024 * 1024
_LABEL_FROM_STEM = re.compile(r"^([^_-]+)[_-].*$")


class SourceError(ValueError):
    """The source as a whole cannot be read; the message says why."""


@dataclass(frozen=True)
class SourceItem:
    name: str
    label: str | None
    read: Callable[[], bytes] | None = None
    problem: str | None = None
    fingerprint: str | None = None


def label_from_name(name: str) -> str:
    """The label a file name carries: its stem, or the part of the stem before a `_` or `-` suffix."""
    stem = PurePosixPath(name).name
    stem = stem[: stem.rfind(".")] if "." in stem else stem
    match = _LABEL_FROM_STEM.match(stem)
    return match.group(1) if match else stem


def parse_labels_csv(data: bytes, origin: str) -> dict[str, str]:
    """Map file name -> label from a labels.csv (`filename,label`, with or without that header)."""
    try:
        text = data.decode("utf-8-sig")
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise SourceError(f"{origin} is not a readable UTF-8 CSV file ({error})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["filename", "label"], ["file", "label"]):
        rows = rows[1:]
    labels = {}
    for number, row in enumerate(rows, start=1):
        if len(row) != 2 or not row[0].strip():
            raise SourceError(f"{origin}, row {number}: expected two columns `filename,label`, got {row!r}")
        labels[row[0].strip()] = row[1].strip()
    return labels


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_hidden(relative: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in PurePosixPath(relative).parts)


class Labeller:
    """Labels from a labels.csv when the source has one, else from file names."""

    def __init__(self, csv_labels: dict[str, str] | None):
        self.csv_labels = csv_labels

    def __call__(self, relative: str) -> str | None:
        if self.csv_labels is None:
            return label_from_name(relative)
        return self.csv_labels.get(relative, self.csv_labels.get(PurePosixPath(relative).name))


class SourceKind(ABC):
    """One kind of source, for the URIs of its `scheme`. Constructing it checks the URI cheaply (no
    network, no reading of images) and raises SourceError saying what is wrong."""

    scheme: str = ""

    def __init__(self, uri: str, options: dict | None = None):
        self.uri = uri
        self.options = options or {}
        self.check()

    @abstractmethod
    def check(self) -> None:
        """Raise SourceError if the URI cannot be a source of this kind."""

    def check_reachable(self, may_be_empty: bool) -> None:
        """Raise SourceError if the source cannot be read now; `may_be_empty` when an empty source only
        means that nothing is new (the store already holds a data set). Local kinds need nothing more
        than `check`."""

    @abstractmethod
    def items(self) -> Iterator[SourceItem]:
        """Every labelled image item of the source, streamed."""


SOURCES: Registry[type[SourceKind]] = Registry("source kind", "captcha_training.sources")


def register_source(kind: type[SourceKind], replace: bool = False) -> type[SourceKind]:
    """Make sources of `kind.scheme` read with `kind`."""
    if not kind.scheme:
        raise ValueError(f"source kind {kind.__name__} names no scheme")
    return SOURCES.register(kind.scheme, kind, replace=replace)


def open_source(uri: str, options: dict | None = None) -> SourceKind:
    """The source `uri` names (a path without a scheme is a `file` source), checked."""
    if not isinstance(uri, str) or not uri.strip():
        raise SourceError("source is empty; give a folder, an archive, or a URI such as s3:// or synthetic://")
    scheme = urlparse(uri).scheme or "file"
    kind = SOURCES.get(scheme)
    if kind is None:
        known = ", ".join(f"{s}://" for s in SOURCES.names() if s != "file")
        raise SourceError(f"source {uri!r}: unknown scheme {scheme!r}; use a folder, an archive, {known}")
    return kind(uri, options)


def check_source(uri: str) -> None:
    """Raise SourceError if `uri` cannot be a source, before any work starts."""
    open_source(uri)


def iter_source(uri: str, options: dict | None = None) -> Iterator[SourceItem]:
    """The items of any source URI or path."""
    return open_source(uri, options).items()
