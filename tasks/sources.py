"""Where labelled images come from: a folder, a .zip/.tar.gz archive, an s3:// prefix or synthetic://.

A source yields SourceItems: a display name, the label it carries, a way to read its bytes and, where
the source can tell cheaply, a fingerprint (size and modification time, or the S3 ETag) that changes
whenever the content may have changed, so ingest need not read an item it has seen before. What
cannot even be read (a link out of the folder, an archive entry that climbs out or is too large) is
yielded with a `problem`, so ingest can report it instead of dropping it silently.
"""
from __future__ import annotations

import csv
import io
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlparse

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


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in PurePosixPath(relative).parts)


class _Labeller:
    """Labels from a labels.csv when the source has one, else from file names."""

    def __init__(self, csv_labels: dict[str, str] | None):
        self.csv_labels = csv_labels

    def __call__(self, relative: str) -> str | None:
        if self.csv_labels is None:
            return label_from_name(relative)
        return self.csv_labels.get(relative, self.csv_labels.get(PurePosixPath(relative).name))


def iter_folder(root: Path) -> Iterator[SourceItem]:
    """Every image file under `root`, recursively; hidden files skipped, links never followed out."""
    root = root.resolve()
    labels_path = root / LABELS_FILE
    label_of = _Labeller(parse_labels_csv(_read_file(labels_path), str(labels_path))
                         if labels_path.is_file() else None)
    for entry in _scan(root):
        path = Path(entry.path)
        relative = path.relative_to(root).as_posix()
        if not _is_image_name(entry.name):
            continue
        if entry.is_symlink() and not path.resolve().is_relative_to(root):
            yield SourceItem(relative, None, problem="symbolic link leads outside the source folder")
            continue
        try:
            stat = entry.stat()
        except OSError as error:
            yield SourceItem(relative, None, problem=f"unreadable file ({error.strerror})")
            continue
        yield SourceItem(relative, label_of(relative), read=lambda p=path: _read_file(p),
                         fingerprint=f"{stat.st_size}:{stat.st_mtime_ns}")


def _scan(root: Path) -> Iterator[os.DirEntry]:
    """Non-hidden, non-folder entries under `root`, one directory listing at a time (a folder of millions
    of files is never listed into memory at once); folder links are not followed."""
    folders = [root]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                else:
                    yield entry


def _read_file(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SourceError(f"{path.name} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit")
    return path.read_bytes()


def _archive_problem(name: str, size: int) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or "\\.." in name:
        return "archive entry climbs out of the extraction folder"
    if size > MAX_FILE_BYTES:
        return f"archive entry is {size} bytes unpacked, over the {MAX_FILE_BYTES}-byte limit"
    return None


def iter_zip(path: Path) -> Iterator[SourceItem]:
    """Every image entry of a .zip archive, read in memory one at a time; nothing is extracted to disk."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise SourceError(f"{path} is not a readable zip archive ({error})") from None
    with archive:
        entries = [e for e in archive.infolist() if not e.is_dir()]
        csv_entry = next((e for e in entries if PurePosixPath(e.filename).name == LABELS_FILE
                          and _archive_problem(e.filename, e.file_size) is None), None)
        label_of = _Labeller(parse_labels_csv(archive.read(csv_entry), f"{path}!{csv_entry.filename}")
                             if csv_entry else None)
        for entry in sorted(entries, key=lambda e: e.filename):
            name = entry.filename
            if _is_hidden(name) or not _is_image_name(name):
                continue
            problem = _archive_problem(name, entry.file_size)
            if problem:
                yield SourceItem(name, None, problem=problem)
                continue
            try:
                data = _read_zip_entry(archive, entry)
            except (SourceError, zipfile.BadZipFile, OSError, EOFError) as error:
                yield SourceItem(name, None, problem=f"unreadable archive entry ({error})")
                continue
            yield SourceItem(name, label_of(name), read=lambda d=data: d)


def _read_zip_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    with archive.open(entry) as f:
        data = f.read(MAX_FILE_BYTES + 1)  # the header's size can lie
    if len(data) > MAX_FILE_BYTES:
        raise SourceError(f"archive entry {entry.filename} unpacks to over {MAX_FILE_BYTES} bytes")
    return data


def iter_tar(path: Path) -> Iterator[SourceItem]:
    """Every image member of a .tar/.tar.gz archive, streamed; links and special members refused."""
    try:
        with tarfile.open(path, "r:*") as archive:
            csv_member = next((m for m in archive if m.isfile() and PurePosixPath(m.name).name == LABELS_FILE
                               and _archive_problem(m.name, m.size) is None), None)
            csv_labels = (parse_labels_csv(archive.extractfile(csv_member).read(), f"{path}!{csv_member.name}")
                          if csv_member else None)
        label_of = _Labeller(csv_labels)
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = member.name
                if member.isdir() or _is_hidden(name) or not _is_image_name(name):
                    continue
                problem = _archive_problem(name, member.size) or (
                    None if member.isfile() else "archive entry is a link or special file")
                if problem:
                    yield SourceItem(name, None, problem=problem)
                    continue
                data = archive.extractfile(member).read()
                yield SourceItem(name, label_of(name), read=lambda d=data: d)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise SourceError(f"{path} is not a readable tar archive ({error})") from None


def iter_s3(uri: str, s3_options: dict | None) -> Iterator[SourceItem]:
    """Every image object under an s3:// prefix."""
    from tasks.storage import make_s3_client

    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise SourceError(f"source {uri!r} names no bucket; write s3://bucket/prefix")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    client = make_s3_client(s3_options or {})
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    csv_key = prefix + LABELS_FILE
    try:
        csv_data = client.get_object(Bucket=bucket, Key=csv_key)["Body"].read()
    except client.exceptions.NoSuchKey:
        csv_data = None
    label_of = _Labeller(parse_labels_csv(csv_data, f"s3://{bucket}/{csv_key}") if csv_data is not None else None)

    def read(key: str, size: int) -> bytes:
        if size > MAX_FILE_BYTES:
            raise SourceError(f"s3://{bucket}/{key} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit")
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    for page in pages:  # keys come sorted, a page at a time: millions of objects are never all in memory
        for obj in page.get("Contents", []):
            key, relative = obj["Key"], obj["Key"][len(prefix):]
            if _is_hidden(relative) or not _is_image_name(relative):
                continue
            yield SourceItem(relative, label_of(relative), read=lambda k=key, n=obj["Size"]: read(k, n),
                             fingerprint=f"{obj['Size']}:{obj.get('ETag', '').strip(chr(34))}")


def iter_synthetic(uri: str) -> Iterator[SourceItem]:
    """The images of a synthetic:// spec."""
    from tasks.synthetic import SyntheticSpec, SyntheticSpecError, generate

    try:
        spec = SyntheticSpec.parse(uri)
    except SyntheticSpecError as error:
        raise SourceError(str(error)) from None
    for name, data in generate(spec):
        yield SourceItem(name, label_from_name(name), read=lambda d=data: d)


def check_source(uri: str) -> None:
    """Raise SourceError if `uri` cannot be a source, before any work starts."""
    scheme = urlparse(uri).scheme
    if scheme == "synthetic":
        from tasks.synthetic import SyntheticSpec, SyntheticSpecError

        try:
            SyntheticSpec.parse(uri)
        except SyntheticSpecError as error:
            raise SourceError(str(error)) from None
    elif scheme == "s3":
        if not urlparse(uri).netloc:
            raise SourceError(f"source {uri!r} names no bucket; write s3://bucket/prefix")
    elif scheme in ("", "file"):
        path = _local_path(uri)
        if not path.exists():
            raise SourceError(f"source {uri!r} does not exist")
        if path.is_file() and not _archive_kind(path):
            raise SourceError(f"source {uri!r} is a file but not a .zip, .tar, .tar.gz or .tgz archive")
    else:
        raise SourceError(f"source {uri!r}: unknown scheme {scheme!r}; use a folder, an archive, s3:// or "
                          "synthetic://")


def _local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(parsed.path if parsed.scheme == "file" else uri).expanduser()


def _archive_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    return None


def iter_source(uri: str, s3_options: dict | None = None) -> Iterator[SourceItem]:
    """The items of any source URI or path."""
    check_source(uri)
    scheme = urlparse(uri).scheme
    if scheme == "synthetic":
        return iter_synthetic(uri)
    if scheme == "s3":
        return iter_s3(uri, s3_options)
    path = _local_path(uri)
    kind = _archive_kind(path) if path.is_file() else None
    if kind == "zip":
        return iter_zip(path)
    if kind == "tar":
        return iter_tar(path)
    return iter_folder(path)
