"""The whole DAG through the Airflow CLI, as a user runs it: `airflow dags test` with a file:// and an
s3:// store, and `airflow tasks test` for each task in DAG order."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.store import LocalStore, S3Store

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
STAGES = ["check_inputs", "ingest", "encode_labels", "build_shards", "train", "evaluate", "publish"]
TINY = {"source": "synthetic://?count=40&length=4&seed=3", "epochs": 1, "batch_size": 8, "height": 32, "width": 96,
        "min_accuracy": 0.0}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """Environment of a fresh project-local Airflow: SQLite, LocalExecutor, this repository's DAG."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db", "TF_CPP_MIN_LOG_LEVEL": "2",
           "CAPTCHA_CACHE_DIR": str(home / "cache")}
    airflow(env, "db", "migrate")
    return env


def airflow(env: dict, *args: str) -> str:
    result = subprocess.run([AIRFLOW, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{output[-6000:]}"
    return output


def check_published(store, run_key: str) -> dict:
    """The run's model is the champion: a complete version named by its run key and model digest."""
    latest = store.get_json("models/latest.json")
    assert latest["version"].startswith(f"{run_key}-") and latest["folder"] == f"models/{latest['version']}/"
    for name in ("model.keras", "model.json", "metrics.json", "history.png", "test_gallery.png", "version.json"):
        assert store.exists(f"{latest['folder']}{name}"), name
    published = store.get_json(f"runs/{run_key}/publish.json")
    assert published["model_uri"] == store.url(f"{latest['folder']}model.keras")
    return latest


@pytest.fixture(scope="module")
def first_night(airflow_env, tmp_path_factory):
    """A store after one whole DAG run (`airflow dags test`, file:// store), made once for the module:
    (its store, the run's output). A test that writes to it works on its own copy."""
    store = LocalStore(tmp_path_factory.mktemp("first_night") / "store")
    output = airflow(airflow_env, "dags", "test", "captcha_training", "2026-11-29T02:00:00",
                     "-c", json.dumps({**TINY, "store": store.uri}))
    return store, output


def copy_of(store: LocalStore, tmp_path: Path) -> LocalStore:
    shutil.copytree(store.root, tmp_path / "store")
    return LocalStore(tmp_path / "store")


def test_dag_end_to_end_on_a_local_store(airflow_env, first_night):
    store, output = first_night
    assert "state=success" in output
    check_published(store, "20261129T020000")
    report = subprocess.run([sys.executable, "-m", "tasks.reporting.run_report", "--store", store.uri, "--run-key",
                             "20261129T020000"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert f"{store.uri}/{store.get_json('models/latest.json')['folder']}model.keras" in report.stdout
    images = sorted((store.root / "raw").iterdir())[:3]
    predicted = subprocess.run([sys.executable, "-m", "tasks.serving.predict", "--model", store.uri, *map(str, images)],
                               capture_output=True, text=True, check=True, cwd=ROOT, env=airflow_env)
    lines = predicted.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in images]


def test_a_base_made_by_its_dag_is_where_a_run_on_a_new_style_starts(airflow_env, tmp_path):
    from tasks.registry.bases import read_base
    from tasks.registry.versions import read_version

    store = LocalStore(tmp_path / "store")
    output = airflow(airflow_env, "dags", "test", "captcha_base_model", "2026-11-28T01:00:00", "-c",
                     json.dumps({"store": store.uri, "images": 100, "epochs": 1, "max_train_minutes": 0}))
    assert "state=success" in output
    base = read_base(store, "latest")
    assert "style=mixed" in base["source"] and not store.exists("data/current.json")
    output = airflow(airflow_env, "dags", "test", "captcha_training", "2026-11-28T02:00:00",
                     "-c", json.dumps({**TINY, "store": store.uri}))  # base=auto
    assert "state=success" in output and f"from the base {base['version']}" in output
    assert read_version(store, store.get_json("models/latest.json")["version"])["parent"]["base"] == base["version"]


def test_dag_end_to_end_on_s3_with_an_airflow_connection(airflow_env, s3_bucket, s3_endpoint):
    secret = "captcha-test-secret-5f1e9a"  # the test S3 server accepts any key; this one must never show
    connection = {"conn_type": "aws", "login": "captcha-test-key-id", "password": secret,
                  "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    env = {**airflow_env, "AIRFLOW_CONN_CAPTCHA_S3": json.dumps(connection)}
    uri = f"s3://{s3_bucket}/pipeline"
    output = airflow(env, "dags", "test", "captcha_training", "2026-11-29T03:00:00", "-c",
                     json.dumps({**TINY, "store": uri}))
    store = S3Store(uri, {"endpoint_url": s3_endpoint, "region_name": "us-east-1"})
    check_published(store, "20261129T030000")
    assert len(list(store.list("raw/"))) == 40
    # The credentials reach boto3 only: not the logs, XCom, metrics, model card, plots or any object.
    assert secret not in output
    for key in store.list():
        assert secret.encode() not in store.get_bytes(key), key


def test_each_task_alone_in_dag_order_finds_its_upstream_output(airflow_env, tmp_path):
    store = LocalStore(tmp_path / "store")
    params = json.dumps({**TINY, "store": store.uri})
    for stage in STAGES:
        airflow(airflow_env, "tasks", "test", "captcha_training", stage, "2026-11-30", "-t", params)
        assert store.exists(f"runs/20261130T000000/{stage}.json"), stage
    champion = check_published(store, "20261130T000000")
    files = {key: store.get_bytes(key) for key in store.list(champion["folder"])}

    # Cleared train..publish on the champion's own run, with a floor the new model cannot pass: it
    # trains again (not resuming; fine-tuning from the champion, its own first model), publishes a new
    # version and leaves the champion's alone.
    strict = json.dumps({**TINY, "store": store.uri, "min_accuracy": 0.99})
    output = airflow(airflow_env, "tasks", "test", "captcha_training", "train", "2026-11-30", "-t", strict)
    assert "training again, not resuming it" in output and "fine-tuning from the champion" in output
    assert store.get_json("runs/20261130T000000/train.json")["resumed_from_epoch"] == 0
    for stage in ("evaluate", "publish"):
        airflow(airflow_env, "tasks", "test", "captcha_training", stage, "2026-11-30", "-t", strict)
    republished = store.get_json("runs/20261130T000000/publish.json")
    assert not republished["promoted"] and republished["version"] != champion["version"]
    assert {key: store.get_bytes(key) for key in store.list(champion["folder"])} == files
    assert store.get_json("models/latest.json") == champion


def test_nightly_rerun_with_nothing_new_ends_after_ingest_unless_forced(airflow_env, first_night, tmp_path):
    store = copy_of(first_night[0], tmp_path)
    conf = {**TINY, "store": store.uri}
    first = store.get_json("models/latest.json")  # the first night's model (test_dag_end_to_end_on_a_local_store)

    output = airflow(airflow_env, "dags", "test", "captcha_training", "2026-12-02T02:00:00", "-c", json.dumps(conf))
    ingested = store.get_json("runs/20261202T020000/ingest.json")
    assert ingested["new_objects"] == 0 and "nothing new" in ingested["up_to_date"]
    assert "nothing new: the published model 20261129T020000" in output
    assert not store.exists("runs/20261202T020000/encode_labels.json")
    assert not store.exists("runs/20261202T020000/train.json")
    assert store.get_json("models/latest.json") == first
    report = subprocess.run([sys.executable, "-m", "tasks.reporting.run_report", "--store", store.uri, "--run-key",
                             "20261202T020000"], capture_output=True, text=True, cwd=ROOT)
    assert report.returncode == 0 and "nothing new" in report.stdout
    assert f"{store.uri}/{first['folder']}model.keras" in report.stdout

    airflow(airflow_env, "dags", "test", "captcha_training", "2026-12-03T02:00:00",
            "-c", json.dumps({**conf, "force": True}))
    assert store.exists("runs/20261203T020000/train.json")
    forced = store.get_json("runs/20261203T020000/publish.json")["version"]
    assert forced.startswith("20261203T020000-") and store.exists(f"models/{forced}/version.json")


def test_a_training_task_killed_mid_run_resumes_from_its_checkpoint(airflow_env, tmp_path):
    """SIGKILLed after its schedule has best weights, train resumes with them and goes on with the same
    schedule, and both tries together spend no more than the time limit. (The per-position head reads
    digits at once, so its schedule starts at epoch 1.)"""
    import signal
    import time

    store = LocalStore(tmp_path / "store")
    params = json.dumps({**TINY, "source": "synthetic://?count=40&length=4&seed=3&alphabet=0123456789",
                         "arch": "cnn", "store": store.uri, "epochs": 400, "max_train_minutes": 0.5})
    for stage in STAGES[:STAGES.index("train")]:
        airflow(airflow_env, "tasks", "test", "captcha_training", stage, "2026-12-04", "-t", params)
    checkpoint = "runs/20261204T000000/checkpoint.json"
    worker = subprocess.Popen([AIRFLOW, "tasks", "test", "captcha_training", "train", "2026-12-04", "-t", params],
                              env=airflow_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (store.exists(checkpoint) and store.get_json(checkpoint)["epoch"] >= 2
                   and store.get_json(checkpoint)["schedule"]["callbacks"][1]["best"] is not None):
            assert worker.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the whole task process tree, with no chance to clean up
        worker.wait()
    killed = store.get_json(checkpoint)
    killed_at, best_at_kill = killed["epoch"], killed["schedule"]["callbacks"][1]["best_epoch"] + 1
    assert not store.exists("runs/20261204T000000/train.json")
    output = airflow(airflow_env, "tasks", "test", "captcha_training", "train", "2026-12-04", "-t", params)
    assert f"resuming from the checkpoint of epoch {killed_at}" in output
    assert f"with the best weights so far, of epoch {best_at_kill}" in output
    assert store.get_json("runs/20261204T000000/active.json")["task"] == "train"  # gc keeps a running run
    trained = store.get_json("runs/20261204T000000/train.json")
    assert trained["resumed_from_epoch"] == killed_at and trained["epochs"] > killed_at
    # The schedule went on from where it was killed: its best epoch is the best of both tries.
    history = store.get_json("runs/20261204T000000/history.json")
    reading = next(e for e, accuracy in enumerate(map(max, history["accuracy"], history["val_accuracy"]))
                   if accuracy >= 0.05)
    assert trained["best_epoch"] == 1 + min(range(reading, len(history["val_loss"])),
                                            key=history["val_loss"].__getitem__)
    # Both tries together stay within the 30-second limit, but for the epoch that passes it.
    epochs = store.get_json("runs/20261204T000000/history.json")["epoch_seconds"]
    assert trained["training_seconds_all_tries"] <= 30 + max(epochs) + 1
    assert trained["epochs"] < 400


def test_a_source_that_does_not_exist_stops_the_run_at_check_inputs(airflow_env, tmp_path):
    store = LocalStore(tmp_path / "store")
    missing = tmp_path / "no-such-folder"
    result = subprocess.run([AIRFLOW, "dags", "test", "captcha_training", "2026-12-05T02:00:00", "-c",
                             json.dumps({**TINY, "store": store.uri, "source": str(missing)})],
                            env=airflow_env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert f"source '{missing}' does not exist" in output
    assert "state=failed" in output
    assert list(store.list()) == []  # no task did any work


def test_a_night_with_new_images_adds_them_and_extends_the_shards(airflow_env, tmp_path):
    from conftest import write_synthetic

    store = LocalStore(tmp_path / "store")
    landing = tmp_path / "landing"
    write_synthetic(landing, "synthetic://?count=40&length=4&seed=3")
    conf = json.dumps({**TINY, "store": store.uri, "source": str(landing)})
    airflow(airflow_env, "dags", "test", "captcha_training", "2026-12-06T02:00:00", "-c", conf)
    write_synthetic(landing, "synthetic://?count=4&length=4&seed=50")  # 10% more arrive
    output = airflow(airflow_env, "dags", "test", "captcha_training", "2026-12-07T02:00:00", "-c", conf)
    assert "state=success" in output
    ingested = store.get_json("runs/20261207T020000/ingest.json")
    assert ingested["new_images"] == 4 and ingested["total_images"] == 44 and ingested["unchanged"] == 40
    built = store.get_json("runs/20261207T020000/build_shards.json")
    assert built["extended"] is True and built["images"] == 4 and built["files_reused"] > 0
    assert store.get_json("runs/20261207T020000/train.json")["epochs"] == 1


def test_racing_publishes_through_airflow_leave_latest_on_the_better_model(airflow_env, first_night, tmp_path):
    """Two runs evaluated against the same champion publish through Airflow one after the other: the
    second finds latest moved, measures the first's model on its own test captchas and wins only by
    reading more; the audit log holds both decisions."""
    from conftest import make_config, rigged_run

    store = copy_of(first_night[0], tmp_path)
    conf = {**TINY, "store": store.uri}
    champion = store.get_json("models/latest.json")  # the first night's model
    base = make_config(store, run_key="20261129T020000")
    rigged_run(store, base, "20261210T000000", accuracy=0.5)
    rigged_run(store, base, "20261211T000000", accuracy=0.7, truth=lambda row: "@" * 9)  # nothing reads these
    for date in ("2026-12-10", "2026-12-11"):
        airflow(airflow_env, "tasks", "test", "captcha_training", "publish", date, "-t", json.dumps(conf))
    first, second = (store.get_json(f"runs/{key}/publish.json") for key in ("20261210T000000", "20261211T000000"))
    assert first["promoted"] and second["promoted"]
    assert store.get_json("models/latest.json")["version"] == second["version"]
    decisions = [(d["candidate"], d["from"], d["moved"]) for d in store.iter_jsonl("models/history.jsonl")]
    assert decisions[-2:] == [(first["version"], champion["version"], True),
                              (second["version"], first["version"], True)]
    assert f"the champion {first['version']} 0.0%" in second["reason"]
