"""The `file` source kind: a folder (read recursively) or a .zip/.tar/.tar.gz archive, by path or file:// URI."""
from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator
from urllib.parse import urlparse

from tasks.data.sources.base import (
    LABELS_FILE,
    MAX_FILE_BYTES,
    Labeller,
    SourceError,
    SourceItem,
    SourceKind,
    is_hidden,
    is_image_name,
    parse_labels_csv,
)


class FileSource(SourceKind):
    """A local folder or archive."""

    scheme = "file"

    @property
    def path(self) -> Path:
        parsed = urlparse(self.uri)
        return Path(parsed.path if parsed.scheme == "file" else self.uri).expanduser()

    def check(self) -> None:
        path = self.path
        if not path.exists():
            raise SourceError(f"source {self.uri!r} does not exist")
        if path.is_file() and not _archive_kind(path):
            raise SourceError(f"source {self.uri!r} is a file but not a .zip, .tar, .tar.gz or .tgz archive")

    def items(self) -> Iterator[SourceItem]:
        path = self.path
        kind = _archive_kind(path) if path.is_file() else None
        if kind == "zip":
            return iter_zip(path)
        if kind == "tar":
            return iter_tar(path)
        return iter_folder(path)


def iter_folder(root: Path) -> Iterator[SourceItem]:
    """Every image file under `root`, recursively; hidden files skipped, links never followed out."""
    root = root.resolve()
    labels_path = root / LABELS_FILE
    if labels_path.is_symlink() and not labels_path.resolve().is_relative_to(root):
        # The same rule as for images: a link never reads what lies outside the source folder.
        raise SourceError(f"{labels_path} is a symbolic link that leads outside the source folder; "
                          "put the labels file itself there")
    label_of = Labeller(parse_labels_csv(_read_file(labels_path), str(labels_path))
                         if labels_path.is_file() else None)
    for entry in _scan(root):
        path = Path(entry.path)
        relative = path.relative_to(root).as_posix()
        if not is_image_name(entry.name):
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
        label_of = Labeller(parse_labels_csv(archive.read(csv_entry), f"{path}!{csv_entry.filename}")
                             if csv_entry else None)
        for entry in sorted(entries, key=lambda e: e.filename):
            name = entry.filename
            if is_hidden(name) or not is_image_name(name):
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
        label_of = Labeller(csv_labels)
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = member.name
                if member.isdir() or is_hidden(name) or not is_image_name(name):
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


def _archive_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    return None
