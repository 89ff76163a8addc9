"""Where each stage leaves its summary for the next one: `runs/<run key>/<stage>.json`.

Stages find their inputs here rather than in XCom, so one task run alone (`airflow tasks test`) finds
what its upstream tasks wrote for the same date.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from tasks.store import MissingObjectError, ObjectStore

# A DAG run ends, finished or failed, within this time (the DAG's dagrun_timeout): a run whose tasks
# last started longer ago than this is not running, whatever it left behind. It exceeds the task time
# limits and the longest wait for approval together (the longest training the form accepts is a week,
# the longest wait three days).
RUN_TIMEOUT = timedelta(days=12)
ACTIVITY = "active.json"
FAILURE = "failure.json"  # the task that failed for good and why, for the run's Model page


class UpstreamMissing(RuntimeError):
    """A stage ran before the stage it depends on had run for the same run key."""


def run_prefix(run_key: str) -> str:
    """Folder of one run's files."""
    return f"runs/{run_key}/"


def write_stage_result(store: ObjectStore, run_key: str, stage: str, result: dict) -> dict:
    """Record a stage's summary and return it."""
    store.put_json(f"{run_prefix(run_key)}{stage}.json", result)
    return result


def mark_active(store: ObjectStore, run_key: str, task: str, now: datetime | None = None) -> None:
    """Record that a task of this run starts now, so that a clean-up knows the run may be going."""
    now = now or datetime.now(timezone.utc)
    store.put_json(f"{run_prefix(run_key)}{ACTIVITY}", {"task": task, "at": now.isoformat()})


def last_active(store: ObjectStore, run_key: str) -> datetime | None:
    """When a task of this run last started through the DAG, or None if none ever did."""
    try:
        return datetime.fromisoformat(store.get_json(f"{run_prefix(run_key)}{ACTIVITY}")["at"])
    except MissingObjectError:
        return None


def record_failure(store: ObjectStore, run_key: str, task: str, message: str, now: datetime | None = None) -> None:
    """Record that a task of this run failed for good (retries spent), with the reason."""
    now = now or datetime.now(timezone.utc)
    store.put_json(f"{run_prefix(run_key)}{FAILURE}", {"task": task, "message": message[:4000], "at": now.isoformat()})


def read_stage_result(store: ObjectStore, run_key: str, stage: str) -> dict:
    """The summary an upstream stage wrote for this run key; a clear error if it has not run."""
    key = f"{run_prefix(run_key)}{stage}.json"
    try:
        return store.get_json(key)
    except MissingObjectError:
        raise UpstreamMissing(f"stage {stage!r} has not run for run {run_key!r} ({store.url(key)} is missing); "
                              f"run {stage} for the same date first") from None


def run_key_for(logical_date, run_id: str) -> str:
    """The run key of a DAG run: its logical date (`20261129T020000`, with its microseconds where it
    has any: `20261129T020000.000123`, so two runs triggered within one second do not share a folder),
    or its run id when it has none.

    `airflow tasks test captcha_training <task> 2026-11-29` and a run for the same date share a key,
    so a task run alone finds its upstream results.
    """
    if logical_date is not None:
        second = logical_date.strftime("%Y%m%dT%H%M%S")
        return f"{second}.{logical_date.microsecond:06d}" if logical_date.microsecond else second
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.")
    return cleaned[:128] or "run"
