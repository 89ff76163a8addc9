"""Shared fixtures: tiny captcha data, a local store, a store after every stage has run once, and a real
S3 HTTP endpoint.

The S3 endpoint is moto's server mode on a free local port, started once per test session. Set
CAPTCHA_TEST_S3_ENDPOINT (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION) to run
the same tests against another endpoint, such as MinIO.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest

from tasks.build_shards import build_shards
from tasks.data.synthetic import SyntheticSpec, generate
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.pipeline.config import PipelineConfig
from tasks.publish import publish
from tasks.store import LocalStore, S3Store
from tasks.train import train

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TINY_SPEC = "synthetic://?count=48&length=3-4&alphabet=0123456789&seed=7"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_synthetic(folder: Path, spec: str) -> list[Path]:
    """Write the images of a synthetic spec as files into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in generate(SyntheticSpec.parse(spec), workers=1):
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    """A folder of 48 labelled synthetic captchas."""
    folder = tmp_path / "images"
    write_synthetic(folder, TINY_SPEC)
    return folder


@pytest.fixture
def local_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def make_config(store, source: str = TINY_SPEC, **overrides) -> PipelineConfig:
    """A config for tests: tiny images, one epoch."""
    settings = dict(source=source, store=store.uri, epochs=1, batch_size=8, height=32, width=96,
                    run_key="20261129T000000", min_accuracy=0.0)
    settings.update(overrides)
    return PipelineConfig(**settings)


def night(store, source, run_key, **settings):
    """One night's ingest of `source` (a landing folder) into `store`; returns its summary and config."""
    cfg = make_config(store, source=str(source), run_key=run_key, **settings)
    return ingest(cfg, store), cfg


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A store after every stage has run once on 48 tiny captchas, shared by the whole session: a test
    that writes to the store works on its own copy (own_copy), so every test sees it as built here."""
    root = tmp_path_factory.mktemp("pipeline")
    store = LocalStore(root / "store")
    cfg = make_config(store)
    results = {"ingest": ingest(cfg, store), "encode_labels": encode_labels(cfg, store),
               "build_shards": build_shards(cfg, store), "train": train(cfg, store, cache_dir=root / "cache")}
    results["evaluate"] = evaluate(cfg, store, root / "cache")
    results["publish"] = publish(cfg, store)
    return cfg, store, results


@pytest.fixture(scope="session")
def three_versions(trained, tmp_path_factory):
    """The `trained` store with two more versions, made once for the session: a better one that became
    champion and a worse one the gate turned down. Returns (config, store, [first, better, worse]
    versions); a test works on a copy (own_copy, copy_of_kind)."""
    cfg, first, results = trained
    store = own_copy(first, tmp_path_factory.mktemp("three_versions"))
    better = publish(rigged_run(store, cfg, "later", accuracy=0.9), store)
    worse = publish(rigged_run(store, cfg, "latest-try", accuracy=0.1, champion_accuracy=0.9), store)
    return cfg, store, [results["publish"]["version"], better["version"], worse["version"]]


def own_copy(store: LocalStore, tmp_path: Path) -> LocalStore:
    """A LocalStore on a copy of `store` in `tmp_path`, for a test that writes to the shared `trained` store."""
    shutil.copytree(store.root, tmp_path / "store")
    return LocalStore(tmp_path / "store")


def copy_of_kind(kind: str, store: LocalStore, tmp_path: Path, request):
    """A copy of `store` on a store of `kind`: "file" (in tmp_path) or "s3" (a new bucket on the S3
    test server), for tests that prove a promise on both."""
    if kind == "file":
        return own_copy(store, tmp_path)
    copy = S3Store(f"s3://{request.getfixturevalue('s3_bucket')}/root", request.getfixturevalue("s3_options"))
    for key in store.list():
        copy.upload_file(store.local_path(key), key)
    return copy


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of a real S3 HTTP endpoint: moto's server, or CAPTCHA_TEST_S3_ENDPOINT."""
    external = os.environ.get("CAPTCHA_TEST_S3_ENDPOINT")
    if external:
        yield external
        return
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_options(s3_endpoint) -> dict:
    return {"endpoint_url": s3_endpoint, "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}


@pytest.fixture
def s3_bucket(s3_options) -> str:
    """A new, empty bucket on the S3 endpoint."""
    from tasks.store.s3 import make_s3_client

    name = f"test-{uuid.uuid4().hex[:12]}"
    make_s3_client(s3_options).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    """The same tests against both backends."""
    if request.param == "file":
        return LocalStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/root", request.getfixturevalue("s3_options"))


# `make test` spreads whole test modules over its xdist workers (`--dist loadfile`), so a module's fixtures
# are made once; modules that share a session fixture no other module uses go to one worker together, so
# that fixture is made once too.
SHARED_WORKER = {"tests/registry/test_overview.py": "three_versions", "tests/registry/test_registry.py": "three_versions"}


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the modules of SHARED_WORKER as one unit each."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return SHARED_WORKER.get(module, module)

    return SharedFixtureScheduling(config, log)


# A test slower than this is named at the end of every run (a report, not a failure: these machines are
# noisy), so a slow test is seen the day it arrives; README "Tests".
SLOW_TEST_SECONDS = 20


def pytest_terminal_summary(terminalreporter):
    """Name every test whose setup, call and teardown together took more than SLOW_TEST_SECONDS, from
    pytest's own durations, slowest first, with each phase's share (a long setup is a fixture's cost)."""
    phases: dict[str, dict[str, float]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                phases.setdefault(report.nodeid, {})[report.when] = report.duration
    slow = sorted(((sum(times.values()), nodeid, times) for nodeid, times in phases.items()
                   if sum(times.values()) > SLOW_TEST_SECONDS), reverse=True)
    terminalreporter.section(f"tests that took more than {SLOW_TEST_SECONDS} s")
    for total, nodeid, times in slow:
        split = ", ".join(f"{when} {seconds:.1f}" for when, seconds in times.items() if seconds >= 0.05)
        terminalreporter.write_line(f"{total:7.1f} s  {nodeid}  ({split})")
    if not slow:
        terminalreporter.write_line("none")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def rigged_run(store, cfg, run_key: str, accuracy: float, truth=None, champion_accuracy: float = 0.0):
    """A run of the trained model whose evaluation says it reads `accuracy` of its test captchas, and
    the champion of now `champion_accuracy`; `truth(row)`, if given, replaces the true text of each
    of its test captchas (what a champion measured again on them is scored against)."""
    source, target = f"runs/{cfg.run_key}/", f"runs/{run_key}/"
    for stage in ("encode_labels", "train"):
        store.put_json(f"{target}{stage}.json", store.get_json(f"{source}{stage}.json"))
    evaluated = store.get_json(f"{source}evaluate.json")
    rows = [json.loads(line) for line in store.get_bytes(evaluated["predictions"]).decode().splitlines()]
    rows = [{**row, "true": truth(row)} for row in rows] if truth else rows
    from tasks.registry.versions import read_champion

    champion = read_champion(store)[0]
    metrics = {**store.get_json(evaluated["metrics"]), "full_accuracy": accuracy,
               "champion": {"version": champion["version"], "full_accuracy": champion_accuracy}}
    store.put_bytes(f"{target}predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    store.put_json(f"{target}metrics.json", metrics)
    store.put_json(f"{target}evaluate.json", {**evaluated, "metrics": f"{target}metrics.json",
                                              "predictions": f"{target}predictions.jsonl"})
    return make_config(store, run_key=run_key)
