"""Immutable versions and compare-and-swap promotion, on file:// and on the S3 test server: a version
once written never changes, `latest` only moves through a decision made against the champion of
the moment, and every decision is in the audit log."""
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from conftest import copy_of_kind, make_config, rigged_run

from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.pipeline.records import RUN_TIMEOUT, mark_active
from tasks.publish import publish
from tasks.registry import HISTORY, LATEST
from tasks.registry.versions import list_versions, read_champion, read_version
from tasks.store import S3Store
from tasks.train import train


@pytest.fixture(params=["file", "s3"])
def published(request, trained, tmp_path):
    """The trained pipeline's store, with its champion, copied to a store of each kind."""
    cfg, local, results = trained
    return cfg, copy_of_kind(request.param, local, tmp_path, request), results


def snapshot(store, prefix: str) -> dict:
    """Every object under `prefix` and the digest of its bytes."""
    return {key: hashlib.sha256(store.get_bytes(key)).hexdigest() for key in store.list(prefix)}


def test_publishing_the_same_model_again_keeps_its_version(published):
    cfg, store, results = published
    version = results["publish"]["version"]
    before, latest = snapshot(store, f"models/{version}/"), store.get_json(LATEST)
    again = publish(cfg, store)
    assert again["version"] == version and again["promoted"] and "already is the champion" in again["reason"]
    assert snapshot(store, f"models/{version}/") == before and store.get_json(LATEST) == latest
    assert version.startswith(f"{cfg.run_key}-") and read_version(store, version)["run_key"] == cfg.run_key


def test_retraining_the_champions_run_never_touches_the_champion(published):
    """Train, evaluate and publish again for the champion's own run, with a floor the new model cannot
    pass: a new version beside the champion's, whose files stay byte for byte, and latest stays."""
    cfg, store, results = published
    champion = results["publish"]["version"]
    before, latest = snapshot(store, f"models/{champion}/"), store.get_json(LATEST)
    strict = make_config(store, min_accuracy=0.99)
    encode_labels(strict, store)
    trained = train(strict, store)
    assert trained["parent"]["version"] == champion  # the champion's setup: fine-tuned from it
    assert evaluate(strict, store)["champion_version"] == champion
    again = publish(strict, store)
    assert not again["promoted"] and "below the min_accuracy floor" in again["reason"]
    assert again["version"] != champion and read_version(store, again["version"])["parent"] == trained["parent"]
    card = store.get_bytes(f"models/{again['version']}/model_card.md").decode()
    assert f"Started from: the champion {champion}" in card
    assert snapshot(store, f"models/{champion}/") == before
    assert store.get_json(LATEST) == latest
    assert [v["version"] for v in list_versions(store)] == [champion, again["version"]]
    last = list(store.iter_jsonl(HISTORY))[-1]
    assert (last["candidate"], last["moved"], last["from"], last["to"]) == (again["version"], False, champion,
                                                                          champion)


def test_racing_publishes_decide_against_the_champion_of_the_moment(published):
    """Three runs evaluated against the same champion publish one after the other. Each one after the
    first finds that latest moved since its evaluation, measures the new champion on its own test
    captchas and decides again: latest ends on the better model and the audit log holds every decision."""
    cfg, store, results = published
    first = rigged_run(store, cfg, "race-a", accuracy=0.5)
    # Its test captchas relabelled as nothing reads them: the first run's model reads 0% of them.
    better = rigged_run(store, cfg, "race-b", accuracy=0.7, truth=lambda row: "@" * 9)
    # Its test captchas relabelled as the trained model reads them: the champion then reads them all.
    worse = rigged_run(store, cfg, "race-c", accuracy=0.9, truth=lambda row: row["predicted"])
    a, b, c = publish(first, store), publish(better, store), publish(worse, store)
    assert a["promoted"] and b["promoted"] and not c["promoted"]
    assert read_champion(store)[0]["version"] == b["version"]
    assert f"the champion {a['version']} 0.0%" in b["reason"]
    assert f"fewer than the champion {b['version']} (100.0%)" in c["reason"]
    decisions = [(d["candidate"], d["from"], d["moved"]) for d in store.iter_jsonl(HISTORY)]
    assert decisions[-3:] == [(a["version"], results["publish"]["version"], True),
                              (b["version"], a["version"], True), (c["version"], b["version"], False)]


def registry(store, *args) -> tuple[int, str]:
    """Run `python -m tasks.registry --store <store> ARGS` in-process: (exit status, what it printed)."""
    import contextlib
    import io

    from tasks.registry.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(["--store", store.uri, *args])
    return status, out.getvalue()


@pytest.fixture(params=["file", "s3"])
def versions(request, three_versions, tmp_path, monkeypatch):
    """A copy, on each store kind, of the session's store with three versions: the trained champion,
    then a better run (promoted), then a worse one (kept, not promoted)."""
    _, local, names = three_versions
    store = copy_of_kind(request.param, local, tmp_path, request)
    if isinstance(store, S3Store):  # the command opens the store by URI: same endpoint and keys
        monkeypatch.setenv("AWS_ENDPOINT_URL", store.client.meta.endpoint_url)
    return store, names


def test_list_shows_every_version_newest_first_with_the_champion_and_decisions(versions):
    store, (first, better, worse) = versions
    status, out = registry(store, "list")
    lines = out.splitlines()
    assert status == 0 and [line.split(" | ")[0].strip(" *") for line in lines[1:4]] == [worse, better, first]
    assert lines[2].startswith(f"* {better}") and "promoted (gate)" in lines[2] and "90.0%" in lines[2]
    assert "not promoted (gate): it reads 10.0% of test captchas, fewer than the champion" in lines[1]
    status, out = registry(store, "show", worse)
    assert status == 0, out
    shown = json.loads(out)
    assert shown["record"]["version"] == worse and [d["moved"] for d in shown["decisions"]] == [False]


def test_promote_and_rollback_move_latest_by_hand_and_are_logged(versions):
    store, (first, better, worse) = versions
    status, out = registry(store, "promote", worse, "--why", "reads our new style", "--who", "alice")
    assert status == 0 and read_champion(store)[0]["version"] == worse
    status, out = registry(store, "rollback", "--why", "complaints", "--who", "bob")
    assert status == 0 and read_champion(store)[0]["version"] == better
    moves = [(d["action"], d["from"], d["to"], d["who"], d["why"]) for d in store.iter_jsonl(HISTORY)][-2:]
    assert moves == [("promote", better, worse, "alice", "reads our new style"),
                     ("rollback", worse, better, "bob", "complaints")]
    status, out = registry(store, "promote", "no-such-version", "--why", "x")
    assert status == 2 and "there is no complete version 'no-such-version'" in out
    assert read_champion(store)[0]["version"] == better


def test_gc_keeps_the_newest_the_champion_and_what_a_running_run_uses(versions):
    store, (first, better, worse) = versions
    registry(store, "promote", first, "--why", "the oldest is best after all")
    # Runs that have not finished: one whose task started an hour ago, one whose task started longer
    # ago than the DAG's run timeout (Airflow has ended it), one that never ran through the DAG.
    now = datetime.now(timezone.utc)
    for run, started in (("a-running", now - timedelta(hours=1)), ("failed", now - RUN_TIMEOUT),
                         ("by-hand", None)):
        store.put_json(f"runs/{run}/ingest.json", {"up_to_date": None})
        if started:
            mark_active(store, run, "train", started)
    before = set(store.list())
    status, out = registry(store, "gc", "--keep", "1", "--dry-run")
    assert status == 0 and "would remove" in out and f"models/{better}/" not in out
    assert set(store.list()) == before
    status, out = registry(store, "gc", "--keep", "1")
    assert status == 0
    # The champion, the newest, and the champion before the champion (what one rollback brings back).
    assert [r["version"] for r in list_versions(store)] == [first, better, worse]
    assert store.exists("runs/a-running/ingest.json") and store.exists("runs/later/publish.json")  # its version is kept
    assert not store.exists("runs/failed/ingest.json") and store.exists("runs/by-hand/ingest.json")
    status, out = registry(store, "gc", "--keep", "1", "--unfinished")
    assert status == 0 and not store.exists("runs/by-hand/ingest.json")
    assert store.exists("runs/a-running/ingest.json")
    assert all(store.exists(f"runs/{read_version(store, v)['run_key']}/train.json") for v in (first, worse))
    for version in (first, worse):
        model = store.get_json(f"models/{version}/model.json")
        assert store.exists(f"shards/sets/{model['shards']}.json")
    assert store.exists(LATEST) and store.exists(HISTORY)



def test_keys_read_back_from_latest_are_checked(tmp_path):
    """A latest.json that names a folder outside models/<version>/ is refused, not followed."""
    from tasks.store import LocalStore, StoreError

    store = LocalStore(tmp_path / "store")
    for folder in ("../../etc/", "models/other/", "/abs/"):
        store.put_json(LATEST, {"version": "v1", "folder": folder, "model": "models/v1/model.keras"})
        with pytest.raises(StoreError, match="models/latest.json is damaged"):
            read_champion(store)
    store.put_json(LATEST, {"version": "v1", "folder": "models/v1/", "model": "models/v1/model.keras"})
    assert read_champion(store)[0]["version"] == "v1"


def test_an_older_version_published_again_does_not_take_latest_back_on_a_tie(published):
    """The first run's publish cleared and run again after a newer model (the same weights) became the
    champion: the newer one reads as many of the first run's test captchas, so latest stays."""
    cfg, store, results = published
    newer = publish(rigged_run(store, cfg, "newer", accuracy=0.9), store)
    assert newer["promoted"]
    again = publish(cfg, store)
    assert again["version"] == results["publish"]["version"] and not again["promoted"]
    assert f"no more than the newer champion {newer['version']}" in again["reason"]
    assert read_champion(store)[0]["version"] == newer["version"]


def test_rollback_goes_back_one_champion_at_a_time_and_what_it_undid_stays_undone(versions):
    store, (first, better, worse) = versions
    registry(store, "promote", worse, "--why", "try the newest")  # champions: first, better, worse
    assert registry(store, "rollback", "--why", "complaints") == (0, f"latest is now {better}\n")
    # gc keeps the newest version, the champion and the one a rollback would bring back.
    assert registry(store, "gc", "--keep", "1")[0] == 0
    assert {r["version"] for r in list_versions(store)} == {first, better, worse}
    assert registry(store, "rollback", "--why", "complaints again") == (0, f"latest is now {first}\n")
    status, out = registry(store, "rollback", "--why", "once more")
    assert status == 2 and f"{first} was the first champion" in out
    # The rolled-back run's publish cleared and run again: the gate does not bring it back.
    again = publish(make_config(store, run_key="later"), store)
    assert not again["promoted"] and read_champion(store)[0]["version"] == first
    assert "was rolled back on" in again["reason"] and "only a person makes it the champion again" in again["reason"]
    assert registry(store, "promote", better, "--why", "fixed after all")[0] == 0  # a person can


def test_a_move_whose_audit_entry_was_lost_is_still_rolled_back(versions, monkeypatch):
    import tasks.registry.promotion as promotion

    store, (first, better, worse) = versions
    appended = promotion.append_jsonl

    def fails(*args):
        raise OSError("the audit log cannot be written")

    monkeypatch.setattr(promotion, "append_jsonl", fails)
    with pytest.raises(OSError):
        registry(store, "promote", worse, "--why", "try the newest")
    assert read_champion(store)[0]["version"] == worse  # moved; its entry lost
    monkeypatch.setattr(promotion, "append_jsonl", appended)
    assert registry(store, "rollback", "--why", "complaints") == (0, f"latest is now {better}\n")
    moves = [(d["action"], d["from"], d["to"]) for d in store.iter_jsonl(HISTORY) if d["moved"]][-2:]
    assert moves == [("promote", better, worse), ("rollback", worse, better)]


def test_the_store_may_follow_the_command(versions):
    store, (first, better, worse) = versions
    from tasks.registry.__main__ import main

    assert main(["list", "--store", store.uri]) == 0


def test_gc_counts_runs_newest_by_when_they_ran_and_drops_pointers_to_files_it_removes(tmp_path):
    from tasks.registry.cleanup import plan_cleanup
    from tasks.store import LocalStore

    store = LocalStore(tmp_path / "store")
    now = datetime.now(timezone.utc)
    for run, started in (("manual__nov", now - timedelta(days=30)), ("20261201T000000", now - timedelta(days=3))):
        store.put_json(f"runs/{run}/publish.json", {"version": None})
        store.put_json(f"runs/{run}/build_shards.json", {"cache_key": f"set-{run[:6]}"})
        mark_active(store, run, "publish", started)
        files = {"train": [{"key": f"shards/fam/{run[:6]}.tfrecord", "records": 1}], "val": [], "test": []}
        store.put_json(f"shards/sets/set-{run[:6]}.json", {"files": files})
        store.put_bytes(files["train"][0]["key"], b"records")
    store.put_json("shards/fam/latest.json", {"cache_key": "set-manual", "files": {
        "train": [{"key": "shards/fam/manual.tfrecord", "records": 1}], "val": [], "test": []}})
    plan = plan_cleanup(store, keep=1, now=now)
    assert plan.runs == ["manual__nov"] and plan.shard_sets == ["set-manual"]
    assert "shards/fam/latest.json" in plan.keys and "shards/fam/202612.tfrecord" not in plan.keys
