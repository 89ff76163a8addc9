"""Moving the champion pointer, models/latest.json: by the gate when a run publishes (or when a person
approves what the gate passed), or by hand (promote, rollback). Every move is a compare-and-swap
against the pointer as it was read when the decision was made, and every decision, moved or not, is
appended to the audit log models/history.jsonl (when, which action, from, to, why, who)."""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from tasks.registry.versions import HISTORY, LATEST, read_champion, read_history, read_version, version_prefix
from tasks.store import ObjectStore, PreconditionFailed, append_jsonl

log = logging.getLogger(__name__)
CAS_ATTEMPTS = 10


class DecisionError(RuntimeError):
    """The champion kept changing while a model was being decided on."""


def gate(metrics: dict, min_accuracy: float, champion_is_newer: bool = False) -> tuple[bool, str]:
    """(promote?, why) for a model with these test metrics (champion's included, if any). A tie goes
    to the newer model: an older version published again never takes `latest` back from a champion
    that reads as many."""
    accuracy = metrics["full_accuracy"]
    if accuracy < min_accuracy:
        return False, f"it reads {accuracy:.1%} of test captchas, below the min_accuracy floor of {min_accuracy:.1%}"
    champion = metrics.get("champion")
    if champion and champion_is_newer and accuracy <= champion["full_accuracy"]:
        return False, (f"it reads {accuracy:.1%} of test captchas, no more than the newer champion "
                       f"{champion['version']} ({champion['full_accuracy']:.1%}) on the same test split")
    if champion and accuracy < champion["full_accuracy"]:
        return False, (f"it reads {accuracy:.1%} of test captchas, fewer than the champion {champion['version']} "
                       f"({champion['full_accuracy']:.1%}) on the same test split")
    if champion:
        return True, f"it reads {accuracy:.1%}, the champion {champion['version']} {champion['full_accuracy']:.1%}"
    return True, f"it reads {accuracy:.1%} of test captchas and there is no champion yet"


# What latest.json repeats of a version's metrics, for readers that only need the headline.
HEADLINE_METRICS = ("full_accuracy", "full_accuracy_ci95", "char_accuracy", "char_error_rate", "test_images")


def latest_entry(record: dict, why: str) -> dict:
    """The models/latest.json that makes the version of `record` (its version.json) the champion."""
    prefix = version_prefix(record["version"])
    return {"version": record["version"], "folder": prefix, "model": f"{prefix}model.keras",
            "onnx": f"{prefix}model.onnx", "metrics": {k: record["metrics"][k] for k in HEADLINE_METRICS},
            "run": record["run"], "data_version": record["data_version"], "settings": record["settings"],
            "published_at": time.time(), "why": why}


def decision_entry(action: str, candidate: str | None, before: str | None, moved: bool, why: str, who: str,
                   awaiting: bool = False) -> dict:
    """One decision about `latest`, as the audit log keeps it. `awaiting`: the candidate passed but
    waits for a person's answer."""
    return {"at": datetime.now(timezone.utc).isoformat(timespec="microseconds"), "action": action,
            "candidate": candidate, "from": before, "to": candidate if moved else before, "moved": moved,
            "why": why, "who": who} | ({"awaiting": True} if awaiting else {})


def record_decision(store: ObjectStore, action: str, candidate: str | None, before: str | None, moved: bool,
                    why: str, who: str, awaiting: bool = False) -> dict:
    """Append one decision about `latest` to the audit log; return it."""
    entry = decision_entry(action, candidate, before, moved, why, who, awaiting)
    append_jsonl(store, HISTORY, entry)
    return entry


def move_latest(store: ObjectStore, record: dict, expected_tag: str | None, before: str | None, action: str,
                why: str, who: str) -> dict:
    """Make `record`'s version the champion if models/latest.json is still what was read as
    `expected_tag` (None: still absent), and log the move; PreconditionFailed, with nothing written,
    if it is not. latest.json carries its own move, so that a move whose audit entry could not be
    appended is still found (champion_moves)."""
    move = decision_entry(action, record["version"], before, True, why, who)
    entry = {**latest_entry(record, why), "move": move}
    store.put_if(LATEST, json.dumps(entry, indent=2, sort_keys=True).encode(), expected_tag)
    append_jsonl(store, HISTORY, move)
    return entry


def champion_moves(store: ObjectStore) -> list[dict]:
    """Every move of `latest`, in the order they were made: the audit log's, and the move latest.json
    carries where the log lacks it (its append failed after the move), which is appended to the log
    now. Racing decisions may append their moves out of order; each is stamped before its
    compare-and-swap, so the stamps give the order. A move whose own append is still on its way
    looks lost and may be appended twice: each move counts once."""
    moves = [d for d in read_history(store) if d["moved"]]
    own = (read_champion(store)[0] or {}).get("move")
    if own and own not in moves:
        log.warning("the audit log lacks the last move of %s (%s to %s); appending it", LATEST, own["from"], own["to"])
        append_jsonl(store, HISTORY, own)
        moves.append(own)
    unique = {json.dumps(move, sort_keys=True): move for move in moves}
    return sorted(unique.values(), key=lambda move: datetime.fromisoformat(move["at"]))


def champion_line(moves: list[dict]) -> list[str]:
    """The champions in the order they took over, a rollback taking its champion off the end: the
    last is the champion, the one before it what a rollback brings back."""
    line: list[str] = []
    for move in moves:
        if move["action"] == "rollback" and len(line) >= 2 and line[-2] == move["to"]:
            line.pop()
        else:
            line.append(move["to"])
    return line


def rollback_target(store: ObjectStore) -> str | None:
    """The version a rollback makes the champion: the champion before the current one, or None."""
    champion = (read_champion(store)[0] or {}).get("version")
    line = champion_line(champion_moves(store))
    return line[-2] if len(line) >= 2 and line[-1] == champion else None


def rolled_back(store: ObjectStore, version: str) -> dict | None:
    """The rollback that took `latest` away from `version`, unless a later move made it the champion
    again; None where there was none."""
    for move in reversed(champion_moves(store)):
        if move["to"] == version:
            return None
        if move["action"] == "rollback" and move["from"] == version:
            return move
    return None


def score_version(store: ObjectStore, folder: str, rows: list[dict], workdir: Path) -> dict:
    """Metrics of the published model in `folder` on the test captchas `rows` (sha256, ext, true),
    read from the raw images with the model's own preprocessing, as `predict` reads them."""
    from tasks.reporting.metrics import score
    from tasks.serving.predict import download_model, open_reader, read_images

    files = download_model(store, folder, workdir)
    reader = open_reader(files)
    items = ((row, store.get_bytes(f"raw/{row['sha256']}.{row['ext']}")) for row in rows)
    return score([(row["true"], text or "") for row, text, _ in read_images(reader, files.meta, items)])


def evaluated_rows(store: ObjectStore, evaluated: dict) -> list[dict]:
    """The test captchas evaluate read (sha256, ext, true, predicted), from its stage result."""
    return [json.loads(line) for line in store.get_bytes(evaluated["predictions"]).decode().splitlines()]


def decide(store: ObjectStore, record: dict, metrics: dict, rows: list[dict], workdir: Path, min_accuracy: float,
           action: str, who: str, hold: bool = False, because: str = "") -> tuple[str, str, dict | None]:
    """Gate the version of `record` against the champion as it is now (measured on the same test
    captchas `rows`), and move `latest` to it by compare-and-swap if it passes, deciding again whenever
    another decision moved `latest` in between. With `hold`, a version that passes is only recorded as
    waiting for a person's approval. `because` starts the reason logged. (verdict: "promoted",
    "refused" or "held"; why; the champion's figures on these captchas, None when there is none)."""
    measured = metrics.get("champion")
    undone = rolled_back(store, record["version"]) if action == "gate" else None
    if undone:
        why = (f"{because}version {record['version']} was rolled back on {undone['at']} by {undone['who']} "
               f"({undone['why']}): only a person makes it the champion again (`registry promote`)")
        record_decision(store, action, record["version"], undone["to"], False, why, who)
        return "refused", why, measured
    for _ in range(CAS_ATTEMPTS):
        champion, tag = read_champion(store)
        before = champion["version"] if champion else None
        if before == record["version"]:
            return "promoted", f"version {before} already is the champion", measured
        if champion and (measured or {}).get("version") != before:
            log.info("the champion is now %s, not the one evaluate measured; measuring it on the same test "
                     "captchas", before)
            measured = {"version": before, **score_version(store, champion["folder"], rows, workdir / before)}
        measured = measured if champion else None
        newer = bool(champion) and (read_version(store, before) or {}).get("created_at", 0) > record["created_at"]
        passes, reason = gate({**metrics, "champion": measured}, min_accuracy, newer)
        reason = because + reason
        if not passes or hold:
            why = f"{reason}; waiting for a person's approval" if passes else reason
            record_decision(store, action, record["version"], before, False, why, who, awaiting=passes)
            return ("held" if passes else "refused"), why, measured
        try:
            move_latest(store, record, tag, before, action, reason, who)
            return "promoted", reason, measured
        except PreconditionFailed:
            log.info("another decision moved %s meanwhile; deciding again", LATEST)
    raise DecisionError(f"{store.url(LATEST)} changed {CAS_ATTEMPTS} times while version {record['version']} "
                        "was being decided on; clear the task to try again")
