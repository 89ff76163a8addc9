"""Print where a run's published model and plots are.

    python -m tasks.reporting.run_report --store URI --run-key KEY
"""
from __future__ import annotations

import argparse
import sys

from tasks.pipeline.records import UpstreamMissing, read_stage_result
from tasks.store import open_store


def describe(published: dict) -> str:
    """A few lines telling a user where to find the model, its plots and its accuracy."""
    lines = [
        f"model version : {published['version']}",
        f"model         : {published['model_uri']}",
        f"ONNX model    : {published['onnx_uri']}",
        f"model card    : {published['model_card']}",
        f"latest pointer: {published['latest']} "
        f"({'moved to this model' if published['promoted'] else 'unchanged'}: {published['reason']})",
        f"accuracy      : {published['full_accuracy']:.1%} of test captchas fully right, "
        f"{published['char_accuracy']:.1%} of characters",
    ]
    lines += [f"plot          : {plot}" for plot in published["plots"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.reporting.run_report",
                                     description="Where a run's model and plots are")
    parser.add_argument("--store", required=True, help="object-store root URI")
    parser.add_argument("--run-key", required=True, help="the run's key (its logical date, e.g. 20261129T020000)")
    args = parser.parse_args(argv)
    store = open_store(args.store)
    try:
        published = read_stage_result(store, args.run_key, "publish")
    except UpstreamMissing as error:
        return _report_unpublished(store, args.run_key, error)
    print(describe(published))
    return 0


def _report_unpublished(store, run_key: str, error: Exception) -> int:
    """A run that ended early on purpose (nothing new) points at the model in use; any other is an error."""
    from tasks.registry import LATEST

    try:
        reason = read_stage_result(store, run_key, "ingest").get("up_to_date")
    except UpstreamMissing:
        reason = None
    if not reason:
        print(f"error: the run did not publish a model: {error}", file=sys.stderr)
        return 1
    latest = store.get_json(LATEST)
    print(f"{reason}\nmodel in use  : {store.url(latest['model'])}\n"
          f"accuracy      : {latest['metrics']['full_accuracy']:.1%} of test captchas fully right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
