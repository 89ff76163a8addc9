"""The registry's life in random orders (Hypothesis' rule-based state machine), on file:// and on the
S3 test server: publishes (and their clear-and-rerun), promote, rollback, approval answers, a lost
audit-log entry, gc, shard sets built and a base published, checked after every step against what
must always hold:

- `latest` names a complete version, and the audit log explains it (its last champion is `latest`);
- a complete version's files never change;
- a rollback brings back the champion before the current one, and the gate never undoes it;
- gc never removes the champion, the versions `--keep` rollbacks need, a running run, nor a file
  that a shard family's pointer or the base pointer names.

Versions are published through the registry's own decision (tasks.registry.promotion.decide) with
accuracies the test chooses. EXAMPLES sequences of up to STEPS steps run per store, the same ones
every time (derandomized); with a fix reverted they find the flip-flopping rollback, the move lost
from the audit log and gc's stale shard-family pointer. Racing publishes have tests of their own
(test_registry.py, test_concurrency.py): threads would make a sequence impossible to replay.
"""
import hashlib
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tasks.pipeline.records import mark_active
from tasks.registry import promotion
from tasks.registry.__main__ import main as registry
from tasks.registry.bases import LATEST_BASE, base_prefix
from tasks.registry.cleanup import apply_cleanup, plan_cleanup
from tasks.registry.promotion import champion_line, champion_moves, decide, record_decision
from tasks.registry.versions import RECORD, read_champion, read_version, version_prefix
from tasks.store import LocalStore, S3Store

pytestmark = pytest.mark.stateful  # in `make test-all`, not the fast tier
EXAMPLES = {"file": 60, "s3": 25}  # S3 requests make a step about 40 times slower
STEPS = 14
ACCURACIES = st.sampled_from([0.3, 0.6, 0.8, 0.9, 0.95])


def publish_version(store, run_key: str, accuracy: float, created_at: float) -> dict:
    """A version as publish writes it: its files first, version.json last; returns its record."""
    version = f"{run_key}-{hashlib.sha256(run_key.encode()).hexdigest()[:12]}"
    prefix = version_prefix(version)
    store.put_json(f"runs/{run_key}/publish.json", {"version": version})
    store.put_json(f"runs/{run_key}/build_shards.json", {"cache_key": f"set-{run_key}"})
    store.put_json(f"{prefix}model.json", {"shards": f"set-{run_key}"})
    store.put_bytes(f"{prefix}model.keras", f"weights of {run_key}".encode())
    metrics = {"full_accuracy": accuracy, "full_accuracy_ci95": [accuracy, accuracy], "char_accuracy": accuracy,
               "char_error_rate": 1 - accuracy, "test_images": 100}
    record = {"version": version, "run_key": run_key, "run": run_key, "created_at": created_at,
              "data_version": "d", "settings": "s", "metrics": metrics}
    store.put_json(f"{prefix}{RECORD}", record)
    return record


class RegistryLife(RuleBasedStateMachine):
    """One store's life; `open_store()` gives a new, empty store for each sequence."""

    open_store = None

    def __init__(self):
        super().__init__()
        self.store = type(self).open_store()
        self.accuracy: dict[str, float] = {}
        self.records: dict[str, dict] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.line: list[str] = []  # the champions as this test sees them take over and be rolled back
        self.undone: set[str] = set()
        self.removed: set[str] = set()
        self.runs = 0

    def champion(self) -> str | None:
        return (read_champion(self.store)[0] or {}).get("version")

    def decide(self, record: dict, action: str = "gate") -> str:
        before = self.champion()
        measured = {"version": before, "full_accuracy": self.accuracy[before]} if before else None
        verdict, _, _ = decide(self.store, record, {**record["metrics"], "champion": measured}, [], Path("."),
                               0.5, action, "test")
        self.moved(before)
        return verdict

    def moved(self, before: str | None) -> None:
        after = self.champion()
        if after != before:
            self.line.append(after)

    @rule(accuracy=ACCURACIES)
    def publish(self, accuracy):
        self.runs += 1
        record = publish_version(self.store, f"2026120{self.runs % 10}T0000{self.runs:02d}", accuracy, self.runs)
        self.accuracy[record["version"]], self.records[record["version"]] = accuracy, record
        prefix = version_prefix(record["version"])
        self.files[record["version"]] = {key: self.store.get_bytes(key) for key in self.store.list(prefix)}
        self.decide(record)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def rerun_publish(self, data):
        version = data.draw(st.sampled_from(sorted(self.records)))
        if read_version(self.store, version) is not None:
            self.decide(self.records[version])

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def promote(self, data):
        version = data.draw(st.sampled_from(sorted(self.records)))
        before = self.champion()
        status = registry(["--store", self.store.uri, "promote", version, "--why", "by hand"])
        assert status == (2 if version == before or read_version(self.store, version) is None else 0)
        self.undone.discard(version)
        self.moved(before)

    @rule()
    def rollback(self):
        before = self.champion()
        expected = self.line[-2] if len(self.line) >= 2 else None
        if expected in self.removed:  # more rollbacks than gc's --keep: refused, nothing moves
            expected = None
        status = registry(["--store", self.store.uri, "rollback", "--why", "complaints"])
        assert (status == 0) == (expected is not None), (status, self.line)
        if expected:
            assert self.champion() == expected, f"rollback gave {self.champion()}, not {expected}"
            self.line.pop()
            self.undone.add(before)
            self.undone.discard(expected)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), approved=st.booleans())
    def answer_approval(self, data, approved):
        version = data.draw(st.sampled_from(sorted(self.records)))
        if read_version(self.store, version) is None:
            return
        if approved:
            self.decide(self.records[version], action="approval")
            self.undone.discard(version)
        else:
            record_decision(self.store, "approval", version, self.champion(), False, "rejected", "test")

    @rule()
    def audit_log_fails_once(self):
        """The next move's audit entry is lost (a failed append after the move)."""
        original = promotion.append_jsonl

        def fails_once(store, key, entry):
            promotion.append_jsonl = original
            raise OSError("audit log unavailable")

        promotion.append_jsonl = fails_once
        try:
            self.publish(0.99)
        except OSError:
            self.moved(self.line[-1] if self.line else None)
        finally:
            promotion.append_jsonl = original

    @rule(finished=st.booleans())
    def build_shards(self, finished):
        """A shard set of a new run, extending its family: its files, its index and the family pointer;
        the run goes on running, or has finished (then gc may take it)."""
        self.runs += 1
        run = f"shards{self.runs:03d}"
        files = {"train": [{"key": f"shards/fam/{run}.tfrecord", "records": 1}], "val": [], "test": []}
        self.store.put_bytes(files["train"][0]["key"], b"records")
        self.store.put_json(f"shards/sets/set-{run}.json", {"files": files})
        self.store.put_json("shards/fam/latest.json", {"cache_key": f"set-{run}", "files": files})
        self.store.put_json(f"runs/{run}/build_shards.json", {"cache_key": f"set-{run}"})
        mark_active(self.store, run, "build_shards")
        if finished:
            self.store.put_json(f"runs/{run}/publish.json", {"version": None})

    @rule()
    def publish_base(self):
        self.runs += 1
        version = f"base{self.runs:03d}"
        self.store.put_bytes(f"{base_prefix(version)}model.keras", b"base weights")
        self.store.put_json(f"{base_prefix(version)}base.json", {"version": version})
        self.store.put_json(LATEST_BASE, {"version": version})

    @rule(keep=st.integers(1, 3))
    def gc(self, keep):
        needed = set(self.line[-keep - 1:])  # the champion and what `keep` rollbacks bring back
        apply_cleanup(self.store, plan_cleanup(self.store, keep, unfinished=True))
        for version in needed:
            assert read_version(self.store, version) is not None, f"gc removed {version}, which is still needed"
        for version in [v for v in self.files if read_version(self.store, v) is None]:
            del self.files[version]
            self.removed.add(version)

    @invariant()
    def latest_is_complete_and_explained(self):
        champion = self.champion()
        if champion is None:
            return
        assert read_version(self.store, champion) is not None, f"latest names {champion}, which is incomplete"
        assert champion_line(champion_moves(self.store))[-1] == champion, "the audit log does not explain latest"
        assert champion == self.line[-1]

    @invariant()
    def versions_never_change(self):
        for version, files in self.files.items():
            assert {key: self.store.get_bytes(key) for key in self.store.list(version_prefix(version))} == files

    @invariant()
    def rolled_back_versions_stay_out_unless_brought_back(self):
        assert self.champion() not in self.undone, "the gate made a rolled-back version the champion again"

    @invariant()
    def pointers_name_files_that_exist(self):
        if self.store.exists("shards/fam/latest.json"):
            pointer = self.store.get_json("shards/fam/latest.json")
            for files in pointer["files"].values():
                assert all(self.store.exists(f["key"]) for f in files), "a family pointer names removed files"
        if self.store.exists(LATEST_BASE):
            version = self.store.get_json(LATEST_BASE)["version"]
            assert self.store.exists(f"{base_prefix(version)}model.keras")


def run_life(open_store, examples: int) -> None:
    machine = type("Life", (RegistryLife,), {"open_store": staticmethod(open_store)})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=STEPS, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck)))


def test_the_registry_survives_any_order_of_operations_on_a_file_store(tmp_path):
    run_life(lambda: LocalStore(tmp_path / uuid.uuid4().hex), EXAMPLES["file"])


def test_the_registry_survives_any_order_of_operations_on_s3(s3_bucket, s3_options, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_options["endpoint_url"])  # the command opens the store by URI
    run_life(lambda: S3Store(f"s3://{s3_bucket}/{uuid.uuid4().hex}", s3_options), EXAMPLES["s3"])
