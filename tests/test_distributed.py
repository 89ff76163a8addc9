"""The DAG on Airflow's CeleryExecutor, for real: PostgreSQL and Redis on this machine, an S3 store on
the test S3 server, and api-server, scheduler, dag-processor and two Celery workers (the default
queue and `gpu`) each started as a separate process. Asserts from the metadata database that train
ran on the gpu worker and every other task on the default one.

Skipped with a message when PostgreSQL or Redis cannot be reached, except under CI (CI=true), where
it must run. Everything it starts is stopped, and its database dropped, also on failure.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, os.environ.get("CAPTCHA_TEST_PG_USER", "postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
STAGES = ["check_inputs", "ingest", "encode_labels", "build_shards", "train", "evaluate", "publish"]

pytestmark = pytest.mark.distributed


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def services():
    missing = [f"{name} at {host}:{port}" for name, host, port in
               (("PostgreSQL", PG_HOST, PG_PORT), ("Redis", REDIS_HOST, REDIS_PORT)) if not reachable(host, port)]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the distributed test must run under CI, but cannot reach {', '.join(missing)}")
        pytest.skip(f"distributed test needs {', '.join(missing)}")


@pytest.fixture
def database(services):
    """A new PostgreSQL database, dropped afterwards."""
    import psycopg2

    name = f"captcha_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        cursor = admin.cursor()
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture
def redis_db(services):
    """A Redis database number of its own, emptied before and after."""
    import redis

    number = int(os.environ.get("CAPTCHA_TEST_REDIS_DB", "11"))
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
    client.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        client.flushdb()


class Cluster:
    """Airflow processes started for one test, each in its own process group."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs, self.processes = env, logs, []

    def start(self, name: str, *args: str, **env) -> None:
        log = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen([AIRFLOW, *args], env={**self.env, **env}, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((name, process, log))

    def check_alive(self) -> None:
        for name, process, _ in self.processes:
            assert process.poll() is None, f"{name} exited early:\n{self.tail(name)}"

    def tail(self, name: str, chars: int = 3000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        for _, process, _ in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, process, log in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()


def query(url: str, sql: str, *args) -> list[tuple]:
    import psycopg2

    dsn = url.replace("postgresql+psycopg2://", "postgresql://")
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql, args)
        return cursor.fetchall()


def test_dag_on_celery_with_a_gpu_queue(database, redis_db, s3_bucket, s3_endpoint, tmp_path):
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    connection = {"conn_type": "aws", "login": os.environ["AWS_ACCESS_KEY_ID"],
                  "password": os.environ["AWS_SECRET_ACCESS_KEY"],
                  "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    env = {**os.environ,
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
           "AIRFLOW__CELERY__BROKER_URL": redis_db,
           "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
           "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tasks.pipeline.worker_name.hostname",
           "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
           "CAPTCHA_TRAIN_QUEUE": "gpu", "AIRFLOW_CONN_CAPTCHA_S3": json.dumps(connection),
           "CAPTCHA_SCHEDULE": "none", "CAPTCHA_STORE": f"s3://{s3_bucket}/distributed",
           "CAPTCHA_CACHE_DIR": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
    cluster = Cluster(env, tmp_path)
    store = env["CAPTCHA_STORE"]
    try:
        cluster.start("api-server", "api-server", "--port", str(port))
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        cluster.start("worker-default", "celery", "worker", "--queues", "default", "--concurrency", "1",
                      "--celery-hostname", "worker-default@%h", CAPTCHA_WORKER_NAME="worker-default",
                      AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))
        cluster.start("worker-gpu", "celery", "worker", "--queues", "gpu", "--concurrency", "1",
                      "--celery-hostname", "worker-gpu@%h", CAPTCHA_WORKER_NAME="worker-gpu",
                      AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))
        deadline = time.monotonic() + 180
        while not query(database, "SELECT 1 FROM dag WHERE dag_id = 'captcha_training'"):
            cluster.check_alive()
            assert time.monotonic() < deadline, "the dag-processor never parsed the DAG"
            time.sleep(2)
        conf = {"source": "synthetic://?count=40&length=4&seed=5", "store": store, "epochs": 1,
                "batch_size": 8, "height": 32, "width": 96, "min_accuracy": 0.0}
        run_id = f"distributed_{uuid.uuid4().hex[:8]}"
        for args in (["dags", "unpause", "captcha_training"],
                     ["dags", "trigger", "captcha_training", "--run-id", run_id, "--conf", json.dumps(conf)]):
            subprocess.run([AIRFLOW, *args], env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
        deadline = time.monotonic() + 900
        while True:
            [(state,)] = query(database, "SELECT state FROM dag_run WHERE run_id = %s", run_id)
            if state in ("success", "failed"):
                break
            cluster.check_alive()
            assert time.monotonic() < deadline, f"run still {state} after 15 minutes"
            time.sleep(3)
        rows = query(database, "SELECT task_id, state, hostname, queue FROM task_instance WHERE run_id = %s",
                     run_id)
        where = {task: (state, hostname, queue) for task, state, hostname, queue in rows}
        assert state == "success", (f"run {state}: {where}\n{cluster.tail('worker-default')}\n"
                                    f"{cluster.tail('worker-gpu')}")
        assert where["train"] == ("success", "worker-gpu", "gpu")
        for task in set(STAGES) - {"train"}:
            assert where[task] == ("success", "worker-default", "default"), task
    finally:
        cluster.stop()
    from tasks.store import S3Store

    published = S3Store(store, {"endpoint_url": s3_endpoint, "region_name": "us-east-1"})
    assert published.exists("models/latest.json")
