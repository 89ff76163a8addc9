"""What `gc` removes from a store: versions beyond the newest N (never the champion, nor the N
champions before it, which as many rollbacks bring back), the finished runs that no kept version
came from (beyond the newest N runs, by when they ran), the shard sets no kept run or version uses,
and a shard family's pointer to files it removes. A run that has not finished (no publish result,
and not skipped for want of news) may be running, and is kept with its shard set, unless its tasks
last started longer ago than the DAG's run timeout (then Airflow has ended it: it failed), or it
never ran through the DAG and `--unfinished` says to take those too. Raw images and manifests are
the data set: never removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from tasks.data.shards import shard_index_key
from tasks.pipeline.records import RUN_TIMEOUT, last_active
from tasks.registry.promotion import champion_line, champion_moves
from tasks.registry.versions import RECORD, list_versions, read_champion, version_prefix
from tasks.store import MissingObjectError, ObjectStore


@dataclass
class Plan:
    """What a clean-up removes (by version, run and shard set) and the objects that go with them."""

    versions: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    shard_sets: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def _run_keys(store: ObjectStore) -> list[str]:
    """Every run's key, oldest first: by when a task of it last started, else by the date its key
    names (a run alone, as `airflow tasks test` makes it), else first (a manual run's key is its id)."""
    def started(run_key: str) -> datetime:
        when = last_active(store, run_key)
        if when is None:
            try:
                when = datetime.strptime(run_key[:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
            except ValueError:
                when = datetime.min.replace(tzinfo=timezone.utc)
        return when

    return sorted({key.split("/")[1] for key in store.list("runs/") if key.count("/") >= 2},
                  key=lambda run_key: (started(run_key), run_key))


def _finished(store: ObjectStore, run_key: str) -> bool:
    if store.exists(f"runs/{run_key}/publish.json"):
        return True
    try:
        return bool(store.get_json(f"runs/{run_key}/ingest.json").get("up_to_date"))
    except MissingObjectError:
        return False


def _may_be_running(store: ObjectStore, run_key: str, now: datetime, unstamped_ended: bool) -> bool:
    if _finished(store, run_key):
        return False
    started = last_active(store, run_key)
    return not unstamped_ended if started is None else now - started < RUN_TIMEOUT


def _shard_set_of_run(store: ObjectStore, run_key: str) -> str | None:
    try:
        return store.get_json(f"runs/{run_key}/build_shards.json")["cache_key"]
    except MissingObjectError:
        return None


def plan_cleanup(store: ObjectStore, keep: int, now: datetime | None = None, unfinished: bool = False) -> Plan:
    """The clean-up that keeps the newest `keep` versions and runs, the champion, what they use, and
    every run that may be running at `now` (default: now). `unfinished`: runs that never ran through
    the DAG (no task start recorded, as from the plain functions) count as ended too."""
    now = now or datetime.now(timezone.utc)
    if keep < 1:
        raise ValueError("keep at least 1 version")
    champion = (read_champion(store)[0] or {}).get("version")
    records = list_versions(store)
    # The champion and the `keep` champions before it (what as many rollbacks bring back) stay.
    line = champion_line(champion_moves(store)) if champion else []
    kept_versions = {r["version"] for r in records[-keep:]} | set(line[-keep - 1:]) | {champion} - {None}
    plan = Plan(versions=[r["version"] for r in records if r["version"] not in kept_versions])
    runs = _run_keys(store)
    kept_runs = set(runs[-keep:]) | {r["run_key"] for r in records if r["version"] in kept_versions}
    plan.runs = [run for run in runs if run not in kept_runs and not _may_be_running(store, run, now, unfinished)]
    used_sets = {_shard_set_of_run(store, run) for run in runs if run not in plan.runs}
    used_sets |= {store.get_json(f"{version_prefix(r['version'])}model.json").get("shards") for r in records
                  if r["version"] in kept_versions}
    sets = [key.rsplit("/", 1)[1].removesuffix(".json") for key in store.list("shards/sets/")]
    plan.shard_sets = [s for s in sets if s not in used_sets]
    kept_files = {f["key"] for s in sets if s not in plan.shard_sets for f in _set_files(store, s)}
    for version in plan.versions:  # its record first: from then on no reader takes it for complete
        prefix = version_prefix(version)
        plan.keys += [f"{prefix}{RECORD}"] + [k for k in store.list(prefix) if k != f"{prefix}{RECORD}"]
    for run in plan.runs:
        plan.keys += list(store.list(f"runs/{run}/"))
    for cache_key in plan.shard_sets:
        plan.keys.append(shard_index_key(cache_key))
        plan.keys += sorted({f["key"] for f in _set_files(store, cache_key)} - kept_files)
    plan.keys += _stale_family_pointers(store, set(plan.keys))
    return plan


def _stale_family_pointers(store: ObjectStore, removed: set[str]) -> list[str]:
    """The shards/<family>/latest.json pointers that name a file the clean-up removes: a later
    build_shards would extend a set whose files are gone (without its pointer it builds afresh)."""
    pointers = [key for key in store.list("shards/") if key.count("/") == 2 and key.endswith("/latest.json")
                and not key.startswith("shards/sets/")]
    return [key for key in pointers
            if any(f["key"] in removed for files in store.get_json(key)["files"].values() for f in files)]


def _set_files(store: ObjectStore, cache_key: str) -> list[dict]:
    return [f for files in store.get_json(shard_index_key(cache_key))["files"].values() for f in files]


def apply_cleanup(store: ObjectStore, plan: Plan) -> int:
    """Remove what `plan` lists; return how many objects went."""
    for key in plan.keys:
        store.delete(key)
    return len(plan.keys)
