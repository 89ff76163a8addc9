"""approve: with `approval` on, a model that passes the gate waits; Approve moves `latest` (gated again
against the champion of the moment), Reject or no answer keeps the champion, and every answer is in
the audit log with who, when and why (a move of `latest` on both store kinds)."""
import dataclasses

import pytest
from conftest import copy_of_kind, own_copy, rigged_run

from tasks.approve import approval_request, approve
from tasks.publish import publish
from tasks.registry import overview
from tasks.registry.__main__ import version_table
from tasks.registry.versions import list_versions, read_champion, read_history

TAB = "/dags/captcha_training/runs/manual__1/plugin/captcha-model"


@pytest.fixture(scope="module")
def held_once(trained, tmp_path_factory):
    """A file store whose champion is the session's first version, and a better model of a run with
    approval on that publish held back, made once for the module."""
    cfg, local, results = trained
    store = own_copy(local, tmp_path_factory.mktemp("held"))
    cfg = dataclasses.replace(rigged_run(store, cfg, "20261204T020000", accuracy=0.9, champion_accuracy=0.5),
                              approval=True)
    return store, cfg, publish(cfg, store), results["publish"]["version"]


@pytest.fixture
def held(request, held_once, tmp_path):
    """A copy of `held_once` on a file store, or on the kind given as the test's param."""
    local, cfg, published, champion = held_once
    store = copy_of_kind(getattr(request, "param", "file"), local, tmp_path, request)
    return store, dataclasses.replace(cfg, store=store.uri), published, champion


def test_a_model_that_passes_waits_and_the_question_shows_both_models(held):
    store, cfg, published, champion = held
    assert published["awaiting_approval"] and not published["promoted"]
    assert read_champion(store)[0]["version"] == champion
    assert published["champion"]["version"] == champion and published["champion"]["full_accuracy"] == 0.5
    [decision] = [d for d in read_history(store) if d["candidate"] == published["version"]]
    assert (decision["action"], decision["moved"], decision["awaiting"]) == ("gate", False, True)
    assert "waiting for a person's approval" in decision["why"]

    question = approval_request(cfg, store, TAB)
    assert published["version"] in question["subject"]
    body = question["body"]
    assert "| Full captchas read | 90.0% | 50.0% |" in body and champion in body
    assert f"[Model tab]({TAB})" in body and question["timeout_hours"] == cfg.approval_hours
    # The model pages say so too.
    [row] = [row for row in overview.version_rows(store) if row["version"] == published["version"]]
    assert row["awaiting"] and row["promoted"] is False
    assert overview.run_progress(store, cfg.run_key)["approval"] == "awaiting"
    table = version_table(list_versions(store), champion, read_history(store))
    assert f"{published['version']} |" in table and "awaiting approval (gate)" in table


@pytest.mark.parametrize("held", ["file", "s3"], indirect=True)
def test_approve_moves_latest_and_logs_who_and_why(held):
    store, cfg, published, champion = held
    result = approve(cfg, store, approved=True, who="alice", comment="reads the new style")
    assert result["promoted"] and result["decision"] == "approved"
    assert read_champion(store)[0]["version"] == published["version"]
    last = read_history(store)[-1]
    assert (last["action"], last["who"], last["from"], last["to"], last["moved"]) == (
        "approval", "alice", champion, published["version"], True)
    assert last["why"].startswith("approved by alice: reads the new style; it reads 90.0%") and last["at"]
    [row] = [row for row in overview.version_rows(store) if row["version"] == published["version"]]
    assert row["promoted"] and row["champion"] and not row["awaiting"]
    assert overview.run_progress(store, cfg.run_key)["approval"]["decision"] == "approved"


@pytest.mark.parametrize("who, decision", [("bob", "rejected"), (None, "timed out")])
def test_reject_or_no_answer_keeps_the_champion(held, who, decision):
    store, cfg, published, champion = held
    result = approve(cfg, store, approved=False, who=who, comment="too few test captchas")
    assert not result["promoted"] and result["decision"] == decision and result["champion"] == champion
    assert read_champion(store)[0]["version"] == champion
    last = read_history(store)[-1]
    assert (last["action"], last["candidate"], last["moved"], last["to"]) == (
        "approval", published["version"], False, champion)
    assert last["who"] == (who or "timeout")
    assert ("rejected by bob: too few test captchas" if who else "no answer within 24 hours") in last["why"]


def test_approve_gates_again_against_the_champion_of_the_moment(held, trained):
    store, _, _, _ = held
    # Held with its test captchas' true text what the (shared) model reads: any champion of that model,
    # measured again on them, reads them all, more than the 90% this candidate claims.
    cfg = dataclasses.replace(rigged_run(store, trained[0], "20261207T020000", accuracy=0.9, champion_accuracy=0.5,
                                         truth=lambda row: row["predicted"]), approval=True)
    assert publish(cfg, store)["awaiting_approval"]
    better = publish(rigged_run(store, trained[0], "20261205T020000", accuracy=0.95, champion_accuracy=0.5), store)
    assert better["promoted"]
    result = approve(cfg, store, approved=True, who="alice")
    assert not result["promoted"] and result["decision"] == "approved, but refused by the gate"
    assert read_champion(store)[0]["version"] == better["version"]


def test_nothing_is_asked_without_approval_or_when_the_gate_refused(held, trained):
    store, cfg, _, _ = held
    assert approval_request(dataclasses.replace(cfg, approval=False), store, TAB) is None
    worse = dataclasses.replace(rigged_run(store, trained[0], "20261206T020000", accuracy=0.1, champion_accuracy=0.5),
                                approval=True)
    assert not publish(worse, store)["awaiting_approval"]
    assert approval_request(worse, store, TAB) is None


def test_a_cleared_approve_of_an_approved_model_asks_nothing_and_logs_nothing(held):
    store, cfg, published, champion = held
    approve(cfg, store, approved=True, who="alice")
    decisions = len(read_history(store))
    assert approval_request(cfg, store, "http://ui/model-tab") is None
    again = approve(cfg, store, approved=False, who="bob")  # a stale answer, from before the clear
    assert again["promoted"] and read_champion(store)[0]["version"] == published["version"]
    assert len(read_history(store)) == decisions
    [row] = [row for row in overview.version_rows(store) if row["version"] == published["version"]]
    assert row["promoted"] and row["champion"]
