"""The compose deployment of docker/, built and run for real: the images of docker/Dockerfile, the real
docker/docker-compose.yaml with tests/containers/compose.test.yaml swapping only what cannot be had here
(stand-ins for PostgreSQL and Redis from Debian's packages, moto's S3 server for MinIO, the GPU worker
on the CPU image). Through Airflow's REST API, logged in with a JWT, it triggers captcha_training on a
small synthetic source and checks where every task ran, what the S3 store holds, that every service is
healthy, and that a second trigger with nothing new ends after ingest.

Docker comes from deploy/: the running engine, or dockerd started here (installed from Debian's docker.io
when missing, as root) and stopped afterwards. Skipped with a message when Docker cannot be had, except
under CI (CI=true), where it must run. Containers, networks and volumes are removed also on failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = (ROOT / "docker" / "docker-compose.yaml", ROOT / "tests" / "containers" / "compose.test.yaml")
ENV_FILE = ROOT / "docker" / ".env.example"
LONG_RUNNING = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                "airflow-worker", "airflow-worker-gpu", "postgres", "redis", "minio")
STAGES = ["check_inputs", "ingest", "encode_labels", "build_shards", "train", "evaluate", "publish"]
CONF = {"source": "synthetic://?count=40&length=4&seed=11", "epochs": 1, "batch_size": 8, "height": 32,
        "width": 96, "min_accuracy": 0.0}

pytestmark = pytest.mark.containers


def example_env() -> dict:
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line and line[0] != "#")
    return dict(pairs)


class Stack:
    """`docker compose` on the deployment's files under a project name of its own."""

    def __init__(self, project: str, env: dict):
        self.project, self.env = project, env

    def command(self, *args: str) -> list[str]:
        files = [part for path in COMPOSE_FILES for part in ("--file", str(path))]
        return ["docker", "compose", "--project-name", self.project, *files, "--env-file", str(ENV_FILE), *args]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{self.logs()}")
        return done

    def config(self) -> dict:
        return json.loads(self.run("config", "--format", "json").stdout)

    def containers(self) -> dict[str, dict]:
        """Each service's container as `docker compose ps` reports it (exited ones too)."""
        lines = self.run("ps", "--all", "--format", "json").stdout.splitlines()
        return {row["Service"]: row for row in map(json.loads, filter(None, lines))}

    def inspect(self, service: str, field: str) -> str:
        """A field of the service's container's configuration (`Hostname`, `User`)."""
        container = self.containers()[service]["ID"]
        done = subprocess.run(["docker", "inspect", "--format", f"{{{{.Config.{field}}}}}", container],
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def logs(self, tail: int = 60) -> str:
        done = subprocess.run(self.command("logs", "--no-color", "--tail", str(tail)), env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        return done.stdout[-20000:]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from deploy.engine import EngineError, ensure_compose, start_engine

    try:
        running = start_engine(tmp_path_factory.mktemp("dockerd") / "dockerd.log")
    except EngineError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the container test must run under CI: {error}")
        pytest.skip(f"container test needs Docker: {error}")
    try:
        ensure_compose(sys.executable)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack(engine, request):
    from deploy.images import base_image, build_services

    password = uuid.uuid4().hex
    env = {**os.environ, "BASE_IMAGE": base_image(), "AIRFLOW_PORT": str(free_port()),
           "CAPTCHA_TEST_S3_PORT": str(free_port()), "AIRFLOW_ADMIN_PASSWORD": password,
           "AIRFLOW_JWT_SECRET": uuid.uuid4().hex, "CAPTCHA_SCHEDULE": "none"}
    deployment = Stack(f"captcha-test-{uuid.uuid4().hex[:8]}", env)
    build_services(deployment.config()["services"])
    failed_before = request.session.testsfailed
    try:
        deployment.run("up", "--detach", "--no-build", "--wait", "--wait-timeout", "900", timeout=1200)
        yield deployment
    finally:
        if request.session.testsfailed > failed_before:
            print(deployment.logs(200))
        deployment.run("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False, timeout=300)


class Api:
    """Airflow's REST API with a JWT from the same login as the UI."""

    def __init__(self, base: str, username: str, password: str):
        self.base = base
        token = self.call("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        self.token = token["access_token"]

    def call(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def page(self, path: str) -> str:
        request = urllib.request.Request(self.base + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read().decode()

    def wait_for_run(self, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.call("GET", f"/api/v2/dags/captcha_training/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            assert time.monotonic() < deadline, f"run {run_id} still {state} after {timeout:.0f} s"
            time.sleep(5)

    def tasks(self, run_id: str) -> dict[str, dict]:
        found = self.call("GET", f"/api/v2/dags/captcha_training/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def failure(self, run_id: str, tasks: dict[str, dict]) -> str:
        """The end of the log of the first failed task (the reason a run failed)."""
        failed = [ti for ti in tasks.values() if ti["state"] == "failed"]
        if not failed:
            return ""
        ti = failed[0]
        found = self.call("GET", f"/api/v2/dags/captcha_training/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
                                 f"/logs/{ti['try_number']}?full_content=true")
        lines = []
        for entry in found.get("content", []):
            entry = entry if isinstance(entry, dict) else {"event": str(entry)}
            lines.append(str(entry.get("event", entry)))
            lines += [f"{error.get('exc_type')}: {error.get('exc_value')}" for error in entry.get("error_detail", [])]
        return f"{ti['task_id']} failed:\n" + "\n".join(lines)[-3000:]

    def trigger(self, conf: dict) -> str:
        run_id = f"containers-{uuid.uuid4().hex[:8]}"
        self.call("POST", "/api/v2/dags/captcha_training/dagRuns",
                  {"dag_run_id": run_id, "logical_date": None, "conf": conf})
        return run_id


def wait_for_dag(api: Api, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.call("GET", "/api/v2/dags/captcha_training")
            return
        except urllib.error.HTTPError as error:
            assert error.code == 404 and time.monotonic() < deadline, f"the DAG never appeared: {error}"
        time.sleep(3)


def test_the_compose_deployment_trains_and_publishes_through_the_rest_api(stack):
    env = stack.env
    base = f"http://127.0.0.1:{env['AIRFLOW_PORT']}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        Api(base, "admin", "not-the-password")
    assert refused.value.code == 401
    api = Api(base, "admin", env["AIRFLOW_ADMIN_PASSWORD"])
    wait_for_dag(api)
    api.call("PATCH", "/api/v2/dags/captcha_training", {"is_paused": False})

    first = api.trigger(CONF)
    state = api.wait_for_run(first, timeout=900)
    tasks = api.tasks(first)
    assert state == "success", (f"run {state}: { {t: ti['state'] for t, ti in tasks.items()} }\n"
                                f"{api.failure(first, tasks)}")
    gpu, default = stack.inspect("airflow-worker-gpu", "Hostname"), stack.inspect("airflow-worker", "Hostname")
    assert gpu != default
    for task in STAGES:
        expected = (gpu, "gpu") if task == "train" else (default, "default")
        assert tasks[task]["state"] == "success", task
        assert (tasks[task]["hostname"], tasks[task]["queue"]) == expected, task

    import boto3

    example = example_env()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{env['CAPTCHA_TEST_S3_PORT']}", region_name="us-east-1",
                      aws_access_key_id=example["MINIO_ROOT_USER"],
                      aws_secret_access_key=example["MINIO_ROOT_PASSWORD"])
    latest = json.loads(s3.get_object(Bucket="captcha", Key="store/models/latest.json")["Body"].read())
    stored = {item["Key"] for item in s3.list_objects_v2(Bucket="captcha", Prefix=f"store/{latest['folder']}")
              ["Contents"]}
    assert {f"store/{latest['folder']}{name}" for name in ("model.keras", "model.onnx", "version.json")} <= stored

    # The Models page of the api-server's plugin reads the same S3 store, behind the same login.
    models = api.page("/captcha-models/models")
    assert f"data-version='{latest['version']}'" in models and "(champion)" in models
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/captcha-models/models", timeout=60)
    assert refused.value.code in (401, 403)

    containers = stack.containers()
    for service in LONG_RUNNING:
        row = containers[service]
        assert (row["State"], row["Health"]) == ("running", "healthy"), (service, row["Status"])
    for service in ("airflow-init", "minio-init"):
        assert (containers[service]["State"], containers[service]["ExitCode"]) == ("exited", 0), service
    for service in LONG_RUNNING:
        assert stack.inspect(service, "User") not in ("", "0", "root", "0:0"), f"{service} runs as root"
    # The build stage's certificate authorities and pip settings stay out of the image.
    look = "ls -d /tmp/ca* /root/.cache/pip 2>/dev/null; env | grep -i -E 'PIP_CERT|SECRET|PASSWORD'"
    leftovers = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", "captcha-training-airflow:latest",
                                "-c", look], capture_output=True, text=True)
    assert leftovers.stdout == "", leftovers.stdout

    second = api.trigger(CONF)
    assert api.wait_for_run(second, timeout=300) == "success"
    again = api.tasks(second)
    assert {task: again[task]["state"] for task in STAGES} == {
        "check_inputs": "success", "ingest": "success", **{task: "skipped" for task in STAGES[2:]}}
    ingested = json.loads(s3.get_object(Bucket="captcha", Key=f"store/runs/{second}/ingest.json")["Body"].read())
    assert ingested["new_objects"] == 0 and "nothing new" in ingested["up_to_date"]
    assert json.loads(s3.get_object(Bucket="captcha", Key="store/models/latest.json")["Body"].read()) == latest
