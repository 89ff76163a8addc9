"""Where labelled images come from: one source kind per URI scheme, found through one registry.

Built in: `file` (a folder or a .zip/.tar.gz archive, by path or file:// URI), `s3` (an
s3://bucket/prefix) and `synthetic` (generated captchas). Another kind is one SourceKind subclass
with a `scheme`, registered with `register_source` (or the entry-point group
`captcha_training.sources`).
"""
from tasks.data.sources.base import (
    IMAGE_SUFFIXES,
    LABELS_FILE,
    MAX_FILE_BYTES,
    SourceError,
    SourceItem,
    SourceKind,
    check_source,
    iter_source,
    label_from_name,
    open_source,
    parse_labels_csv,
    register_source,
)
from tasks.data.sources.files import FileSource
from tasks.data.sources.s3 import S3Source
from tasks.data.sources.synthetic import SyntheticSource

for _kind in (FileSource, S3Source, SyntheticSource):
    register_source(_kind)

__all__ = ["IMAGE_SUFFIXES", "LABELS_FILE", "MAX_FILE_BYTES", "SourceError", "SourceItem", "SourceKind", "check_source",
           "iter_source", "label_from_name", "open_source", "parse_labels_csv", "register_source", "FileSource",
           "S3Source", "SyntheticSource"]
