"""Stage 7, approve (with the `approval` param only): a person decides whether the model that publish
held back becomes `latest`.

`approval_request` is the question shown in Airflow's Required Actions: the candidate's and the
champion's figures on the same test captchas, and a link to the run's Model tab. `approve` carries
out the answer: Approve gates the version again against the champion of that moment and moves
`latest` by compare-and-swap; Reject, or no answer in time, leaves the champion in place. Every
answer goes to the registry's audit log with who gave it, when and why.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from tasks.pipeline.records import read_stage_result, write_stage_result
from tasks.registry.promotion import decide, evaluated_rows, record_decision
from tasks.registry.versions import read_champion, read_version
from tasks.store import ObjectStore

log = logging.getLogger(__name__)


def _figures(metrics: dict | None) -> list[str]:
    """Full-captcha accuracy, its 95% interval and character accuracy, as the question shows them."""
    metrics = metrics or {}
    low, high = metrics.get("full_accuracy_ci95") or (None, None)
    percent = [f"{metrics[key]:.1%}" if metrics.get(key) is not None else "-"
               for key in ("full_accuracy", "char_accuracy")]
    return [percent[0], f"{low:.1%} to {high:.1%}" if low is not None else "-", percent[1]]


def approval_request(cfg, store: ObjectStore, model_tab: str) -> dict | None:
    """What to ask the approver about this run's model ({subject, body (Markdown), timeout_hours}), or
    None when there is nothing to ask: approval is off, publish already decided (the gate refused
    the model, or it was already the champion), or the model has become the champion since."""
    if not cfg.approval:
        return None
    published = read_stage_result(store, cfg.run_key, "publish")
    version = published.get("version")
    if not published.get("awaiting_approval") or (read_champion(store)[0] or {}).get("version") == version:
        return None  # a cleared approve whose version was approved since has nothing left to ask
    record = read_version(store, version) or {}
    champion = published.get("champion")
    table = ["| | candidate | champion |", "|---|---|---|",
             f"| Version | {version} | {champion['version'] if champion else 'none yet'} |"]
    table += [f"| {label} | {mine} | {theirs} |" for label, mine, theirs in
              zip(("Full captchas read", "95% interval", "Characters read"),
                  _figures(record.get("metrics")), _figures(champion))]
    table += [f"| Test captchas | {record.get('metrics', {}).get('test_images', '-')} | same |",
              f"| Data version | {record.get('data_version', '-')} | |",
              f"| Architecture | {record.get('arch', '-')} ({record.get('input', '-')}) | |",
              f"| Training | {record.get('training_seconds', 0) / 60:.1f} min, {record.get('epochs', '-')} epochs | |"]
    body = "\n".join([
        f"The model of run `{cfg.run_key}` passes the gate: {published['reason'].split(';')[0]}.",
        "", *table, "",
        f"Its plots, galleries and model card: [Model tab]({model_tab}).", "",
        f"**Approve** makes it `latest`; **Reject** keeps the champion. Without an answer within "
        f"{cfg.approval_hours:g} hours the champion stays."])
    return {"subject": f"Make {version} the captcha model?", "body": body, "timeout_hours": cfg.approval_hours}


def approve(cfg, store: ObjectStore, approved: bool, who: str | None, comment: str | None = None) -> dict:
    """Carry out the approver's answer for this run's held version: approved (gated again against the
    champion of the moment, then `latest` moves), rejected, or no answer in time (`who` None). The
    decision goes to the audit log; return (and record) what happened."""
    published = read_stage_result(store, cfg.run_key, "publish")
    version = published["version"]
    champion, _ = read_champion(store)
    before = champion["version"] if champion else None
    note = f": {comment.strip()}" if comment and comment.strip() else ""
    if before == version:
        verdict, why = "approved", f"version {version} already is the champion; nothing to decide"
    elif who is None:
        verdict, why = "timed out", f"no answer within {cfg.approval_hours:g} hours; the champion stays"
        record_decision(store, "approval", version, before, False, why, "timeout")
    elif not approved:
        verdict, why = "rejected", f"rejected by {who}{note}"
        record_decision(store, "approval", version, before, False, why, who)
    else:
        evaluated = read_stage_result(store, cfg.run_key, "evaluate")
        metrics, rows = store.get_json(evaluated["metrics"]), evaluated_rows(store, evaluated)
        with tempfile.TemporaryDirectory(prefix="approve-") as tmp:
            outcome, why, _ = decide(store, read_version(store, version), metrics, rows, Path(tmp),
                                     cfg.min_accuracy, "approval", who, because=f"approved by {who}{note}; ")
        verdict = "approved" if outcome == "promoted" else "approved, but refused by the gate"
    promoted = verdict == "approved"
    log.info("approve: version %s %s (%s)", version, "becomes latest" if promoted else "does not become latest", why)
    return write_stage_result(store, cfg.run_key, "approve", {
        "version": version, "decision": verdict, "promoted": promoted, "why": why, "who": who,
        "champion": version if promoted else before})
