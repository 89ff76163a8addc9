"""What the test commands cost: each tier's time and the slowest tests, with what they need.

    python3 -m bench.test_times [test] [test-all] [--top 15]

Runs `make test` (the fast tier) and/or `make test-all` (every test) as a user runs them, with this
module loaded into each pytest session as a plug-in (PYTEST_ADDOPTS): it records every test's
setup, call and teardown times from pytest's own reports, and the marks that say what a slow test
needs. Prints, per command: its wall time, the set-up before pytest (creating .venv on a fresh
clone), each pytest session's wall time and test count; then the slowest tests of all sessions.
Needs only the standard library (the make targets create .venv).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = "CAPTCHA_TEST_TIMES"  # the file each pytest session appends its line to
NEEDS = ("e2e", "distributed", "ui", "containers", "long_training")


# The plug-in: pytest calls these hooks in each session started with `-p bench.test_times`.

_phases: dict[str, dict] = {}
_started = time.monotonic()


def pytest_sessionstart(session):
    global _started
    _started = time.monotonic()


def pytest_runtest_logreport(report):
    test = _phases.setdefault(report.nodeid, {"phases": {}, "needs": [], "outcome": "passed"})
    test["phases"][report.when] = round(report.duration, 2)
    test["needs"] = sorted(set(test["needs"]) | {name for name in NEEDS if name in report.keywords})
    if report.outcome != "passed":
        test["outcome"] = report.outcome


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput") or not os.environ.get(RECORD):
        return  # an xdist worker: the controller gets its reports and writes the line
    line = {"markexpr": session.config.option.markexpr, "workers": getattr(session.config.option, "numprocesses", 0),
            "wall_s": round(time.monotonic() - _started, 1), "exit": int(exitstatus), "tests": _phases}
    with open(os.environ[RECORD], "a") as record:
        record.write(json.dumps(line) + "\n")


# The command.

def run_target(target: str) -> dict:
    """`make target` with the plug-in loaded: its wall time, exit status and its pytest sessions."""
    with tempfile.TemporaryDirectory(prefix="test-times-") as tmp:
        record = Path(tmp) / "sessions.jsonl"
        env = {**os.environ, RECORD: str(record),
               "PYTEST_ADDOPTS": f"{os.environ.get('PYTEST_ADDOPTS', '')} -p bench.test_times".strip()}
        started = time.monotonic()
        done = subprocess.run(["make", target], cwd=ROOT, env=env)
        wall = time.monotonic() - started
        sessions = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return {"target": target, "wall_s": round(wall, 1), "exit": done.returncode,
            "set_up_s": round(wall - sum(s["wall_s"] for s in sessions), 1), "sessions": sessions}


def own_time(session: dict) -> float:
    """Seconds the session's tests took, setup, call and teardown, summed over every worker."""
    return sum(sum(test["phases"].values()) for test in session["tests"].values())


def report(runs: list[dict], top: int) -> str:
    """The tiers' times, then the `top` slowest tests of all sessions."""
    lines = ["| command | wall | set-up before pytest | pytest sessions (marks, workers: wall, tests, the tests' "
             "own time summed) | exit |", "| --- | --- | --- | --- | --- |"]
    for run in runs:
        sessions = "; ".join(f"`{s['markexpr'] or 'all'}`, {s['workers'] or 1}: {s['wall_s'] / 60:.1f} min, "
                             f"{len(s['tests'])} tests, {own_time(s) / 60:.1f} min" for s in run["sessions"])
        lines.append(f"| make {run['target']} | {run['wall_s'] / 60:.1f} min | {run['set_up_s']:.0f} s | "
                     f"{sessions} | {run['exit']} |")
    tests = {nodeid: test for run in runs for s in run["sessions"] for nodeid, test in s["tests"].items()}
    slowest = sorted(tests.items(), key=lambda item: -sum(item[1]["phases"].values()))[:top]
    lines += ["", "| seconds | setup / call / teardown | needs | test |", "| --- | --- | --- | --- |"]
    for nodeid, test in slowest:
        phases = test["phases"]
        split = " / ".join(f"{phases.get(when, 0):.1f}" for when in ("setup", "call", "teardown"))
        lines.append(f"| {sum(phases.values()):.1f} | {split} | {', '.join(test['needs']) or '-'} | `{nodeid}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", choices=["test", "test-all"], default=["test"])
    parser.add_argument("--top", type=int, default=15, help="how many of the slowest tests to list")
    args = parser.parse_args()
    runs = [run_target(target) for target in args.targets]
    for run in runs:
        print(json.dumps({k: v for k, v in run.items() if k != "sessions"}), flush=True)
    print(report(runs, args.top), flush=True)
    sys.exit(max(run["exit"] for run in runs))


if __name__ == "__main__":
    main()
