"""The working catalog of one ingest: the stored data set, what the source held when last read, and
what this run finds, kept in a temporary SQLite file so memory stays flat however many images there
are. Only ingest uses it; what lasts is written to the store as JSON lines.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

ENTRY_FIELDS = ("sha256", "label", "name", "ext", "width", "height")
LEDGER_FIELDS = ("name", "fingerprint", "sha256", "label", "ext", "width", "height")


class Catalog:
    """Tables: `stored` (the data set: one row per image), `ledger` (the source's items as last read,
    by name), `found` (this run's usable images of the source, by content) and `conflicted` (content
    this run found under two labels)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None)
        # A 2 MB page cache keeps memory flat as the data set grows: docs/decisions.md#ingest-page-cache.
        self.db.executescript("""
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2000;
            CREATE TABLE stored (sha256 TEXT PRIMARY KEY, label TEXT, name TEXT, ext TEXT, width INT, height INT);
            CREATE TABLE found (sha256 TEXT PRIMARY KEY, label TEXT, name TEXT, ext TEXT, width INT, height INT,
                                names TEXT);
            CREATE TABLE conflicted (sha256 TEXT PRIMARY KEY);
            CREATE TABLE ledger (name TEXT PRIMARY KEY, fingerprint TEXT, sha256 TEXT, label TEXT, ext TEXT,
                                 width INT, height INT);
        """)
        self.db.execute("BEGIN")

    def close(self) -> None:
        self.db.execute("COMMIT")
        self.db.close()

    def load(self, table: str, rows: Iterable[dict]) -> None:
        """Bulk-insert rows (dicts with the table's columns) into `stored` or `ledger`."""
        columns = ENTRY_FIELDS if table == "stored" else LEDGER_FIELDS
        sql = f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        self.db.executemany(sql, (tuple(row[c] for c in columns) for row in rows))

    def ledger_entry(self, name: str, fingerprint: str | None, label: str | None) -> dict | None:
        """What this source item was when last read, if its fingerprint and label are unchanged and its
        image is in the data set."""
        if not fingerprint or not _is_utf8(name) or not _is_utf8(label or ""):
            return None  # such a name is refused anyway (its label is unprintable)
        row = self.db.execute(
            f"SELECT {', '.join('l.' + c for c in LEDGER_FIELDS)} FROM ledger l JOIN stored s USING (sha256) "
            "WHERE l.name = ? AND l.fingerprint = ? AND l.label = ?", (name, fingerprint, label)).fetchone()
        return dict(zip(LEDGER_FIELDS, row)) if row else None

    def stored_label(self, sha256: str) -> str | None:
        row = self.db.execute("SELECT label FROM stored WHERE sha256 = ?", (sha256,)).fetchone()
        return row[0] if row else None

    def is_conflicted(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM conflicted WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def found_entry(self, sha256: str) -> tuple[str, list[str]] | None:
        """(label, names) of content already found in this run."""
        row = self.db.execute("SELECT label, names FROM found WHERE sha256 = ?", (sha256,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def add_found(self, entry: dict) -> None:
        self.db.execute("INSERT INTO found VALUES (?, ?, ?, ?, ?, ?, ?)",
                        tuple(entry[c] for c in ENTRY_FIELDS) + (json.dumps([entry["name"]]),))

    def add_name(self, sha256: str, name: str) -> None:
        """Another name for content already found, with the same label; the entry keeps the least name,
        so the manifest does not depend on listing order."""
        label, names = self.found_entry(sha256)
        self.db.execute("UPDATE found SET names = ?, name = min(name, ?) WHERE sha256 = ?",
                        (json.dumps(names + [name]), name, sha256))

    def conflict(self, sha256: str) -> tuple[str, list[str]]:
        """Mark content as found under two labels; return (its first label, the names it was found under)."""
        label, names = self.found_entry(sha256)
        self.db.execute("DELETE FROM found WHERE sha256 = ?", (sha256,))
        self.db.execute("INSERT INTO conflicted VALUES (?)", (sha256,))
        return label, names

    def found_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM found").fetchone()[0]

    def add_found_to_stored(self) -> int:
        """Add this run's new images to the data set; return how many were new."""
        before = self.stored_count()
        self.db.execute(f"INSERT OR IGNORE INTO stored SELECT {', '.join(ENTRY_FIELDS)} FROM found")
        return self.stored_count() - before

    def stored_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM stored").fetchone()[0]

    def stored_entries(self) -> Iterator[dict]:
        """The data set, sorted by content hash."""
        for row in self.db.execute(f"SELECT {', '.join(ENTRY_FIELDS)} FROM stored ORDER BY sha256"):
            yield dict(zip(ENTRY_FIELDS, row))

    def data_version(self) -> str:
        """A short hash of the data set's content: the images (by hash) and their labels."""
        digest = hashlib.sha256()
        for sha, label in self.db.execute("SELECT sha256, label FROM stored ORDER BY sha256"):
            digest.update(f"{sha}\t{label}\n".encode())
        return digest.hexdigest()[:16]


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
