"""The compose file, checked without Docker: everything it refers to exists in the repository and
agrees with the DAG (queues, connection id, store URI)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu")


def env_defaults() -> dict:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def substitute(text: str, env: dict) -> str:
    """Compose's ${VAR:-default} / ${VAR} interpolation, with `$$` left as a literal `$`."""
    def replace(match):
        name, default = match.group(1), match.group(3)
        return env.get(name) or (default or "")
    return re.sub(r"(?<!\$)\$\{([A-Z0-9_]+)(:-([^}]*))?\}", replace, text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    text = (DOCKER / "docker-compose.yaml").read_text()
    return yaml.safe_load(substitute(text, env_defaults()))


def test_every_variable_has_an_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", (DOCKER / "docker-compose.yaml").read_text()))
    assert used <= set(env_defaults()), used - set(env_defaults())


def test_all_services_are_there(compose):
    services = compose["services"]
    assert {"postgres", "redis", "minio", "minio-init", *AIRFLOW_SERVICES} <= set(services)


def test_builds_and_copies_refer_to_repository_files(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context == ROOT, name
            dockerfile = context / build["dockerfile"]
            assert dockerfile.is_file(), name
            for source in re.findall(r"^COPY\s+(?!--from=)(.+?)\s+\S+$", dockerfile.read_text(), flags=re.M):
                for part in source.split():
                    assert (context / part).exists(), f"{dockerfile.name} copies missing {part}"
        assert service.get("image"), name


def test_dependencies_and_volumes_exist(compose):
    services, volumes = compose["services"], set(compose["volumes"])
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in volumes, f"{name} mounts undeclared volume {source}"


PARSES = """
import json, sys
from airflow.cli.cli_parser import get_parser

parser, accepted = get_parser(), []
for command in json.loads(sys.argv[1]):
    try:
        parser.parse_args(command)
        accepted.append(True)
    except SystemExit:
        accepted.append(False)
print("ACCEPTED", json.dumps(accepted))
"""


def test_airflow_commands_are_real_airflow_commands(compose):
    """Each service's command, flags and all, is one that Airflow's own command-line parser accepts (in
    a process of its own: importing Airflow's CLI sets up its logging, which is not this process's)."""
    commands = {name: compose["services"][name]["command"] for name in AIRFLOW_SERVICES[1:]}
    wrong = ["celery", "wrker"]  # refused, so the check can fail
    done = subprocess.run([sys.executable, "-c", PARSES, json.dumps([*commands.values(), wrong])],
                          capture_output=True, text=True, cwd=ROOT)
    assert "ACCEPTED " in done.stdout, done.stderr[-2000:]
    accepted = json.loads(done.stdout.split("ACCEPTED ", 1)[1])
    assert accepted == [True] * len(commands) + [False], (commands, done.stderr[-2000:])


def queues_of(service: dict) -> list[str]:
    command = service["command"]
    return command[command.index("--queues") + 1].split(",")


def test_train_queue_agrees_with_the_dag_and_the_gpu_worker(compose):
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    assert queues_of(services["airflow-worker-gpu"]) == [env["CAPTCHA_TRAIN_QUEUE"]]
    assert queues_of(services["airflow-worker"]) == ["default"]
    devices = services["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    code = ("import sys; sys.path.insert(0, 'dags'); from airflow.dag_processing.dagbag import DagBag; "
            "dag = DagBag(dag_folder='dags').dags['captcha_training']; "
            "print('QUEUES', dag.get_task('train').queue, dag.get_task('ingest').queue)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                          env={**os.environ, "CAPTCHA_TRAIN_QUEUE": env["CAPTCHA_TRAIN_QUEUE"]})
    assert done.stdout.splitlines()[-1] == f"QUEUES {env['CAPTCHA_TRAIN_QUEUE']} default"


def test_store_connection_and_bucket_agree(compose):
    services = compose["services"]
    env = services["airflow-worker"]["environment"]
    conn_var = f"AIRFLOW_CONN_{env['CAPTCHA_S3_CONN_ID'].upper()}"
    connection = json.loads(env[conn_var])
    assert connection["extra"]["endpoint_url"] == "http://minio:9000"
    assert connection["login"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
    assert connection["password"] == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    init = services["minio-init"]
    assert init["entrypoint"] == ["python", "-m", "tasks.store.bucket"]
    bucket_uri, flag, endpoint = init["command"]
    assert env["CAPTCHA_STORE"].startswith(f"{bucket_uri}/") and (flag, endpoint) == ("--endpoint-url", "http://minio:9000")
    assert init["environment"]["AWS_ACCESS_KEY_ID"] == connection["login"]
    assert init["environment"]["AWS_SECRET_ACCESS_KEY"] == connection["password"]
    assert env["CAPTCHA_S3_CONN_ID"] == os.environ.get("CAPTCHA_S3_CONN_ID", "captcha_s3")


def test_every_airflow_service_shares_one_configuration(compose):
    services = compose["services"]
    reference = services["airflow-scheduler"]["environment"]
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "@postgres:5432/" in reference["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert reference["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL", "CAPTCHA_STORE",
                    "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
            assert env[key] == reference[key], f"{name}: {key}"
    assert reference["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")


def test_gpu_image_swaps_only_tensorflow():
    text = (DOCKER / "Dockerfile.gpu").read_text()
    pins = (ROOT / "requirements.txt").read_text()
    assert "tensorflow_cpu==" in pins and "grep -v '^tensorflow_cpu=='" in text
    assert 'tensorflow[and-cuda]==' in text and "--queues\", \"gpu\"" in text


def test_make_up_refuses_the_example_secrets(tmp_path):
    """`make up` starts nothing while docker/.env is missing or keeps a secret of the example."""
    import shutil

    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copytree(DOCKER, tmp_path / "docker", ignore=shutil.ignore_patterns(".env"))

    def make_up() -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-s", "up", "COMPOSE=echo compose"], cwd=tmp_path, capture_output=True,
                              text=True)

    missing = make_up()
    assert missing.returncode != 0 and "docker/.env is missing" in missing.stdout
    example = (DOCKER / ".env.example").read_text()
    (tmp_path / "docker" / ".env").write_text(example)
    same = make_up()
    assert same.returncode != 0 and "set POSTGRES_PASSWORD in docker/.env to a secret of your own" in same.stdout
    own = example
    for name in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD"):
        own = re.sub(rf"^{name}=.*$", f"{name}=own-{name.lower()}-5f2c", own, flags=re.M)
    no_jwt = re.sub(r"^AIRFLOW_JWT_SECRET=.*$", "AIRFLOW_JWT_SECRET=", own, flags=re.M)
    (tmp_path / "docker" / ".env").write_text(no_jwt)
    empty = make_up()
    assert empty.returncode != 0 and "set AIRFLOW_JWT_SECRET" in empty.stdout
    (tmp_path / "docker" / ".env").write_text(own)
    started = make_up()
    assert started.returncode == 0 and started.stdout.startswith("compose up --build --detach"), started.stdout


def test_the_deployment_limits_where_a_trigger_may_point(compose):
    env = compose["x-airflow-common"]["environment"]
    assert env["CAPTCHA_ALLOWED_STORES"] == "s3://captcha/store" and env["CAPTCHA_STORE"].startswith("s3://captcha/store")
    assert "synthetic://" in env["CAPTCHA_ALLOWED_SOURCES"].split(",")
