"""DAG integrity: it imports cleanly and fast, wires the stages in order, and validates its params."""
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["check_inputs", "ingest", "encode_labels", "build_shards", "train", "evaluate", "publish", "approve"]


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def dag(bag):
    return bag.dags["captcha_training"]


def test_the_base_model_dag_runs_the_stages_on_synthetic_captchas_then_publishes_a_base(bag):
    base = bag.dags["captcha_base_model"]
    order = ["ingest", "encode_labels", "build_shards", "train", "evaluate", "publish_base"]
    assert sorted(base.task_ids) == sorted(order) and base.timetable.can_be_scheduled is False
    for upstream, downstream in zip(order, order[1:]):
        assert base.get_task(upstream).downstream_task_ids == {downstream}
    resolved = base.params.validate()
    assert resolved["images"] == 30_000 and resolved["max_train_minutes"] == 45
    assert base.get_task("train").queue == bag.dags["captcha_training"].get_task("train").queue


def test_tasks_run_in_stage_order(dag):
    assert sorted(dag.task_ids) == sorted(STAGES)
    for upstream, downstream in zip(STAGES, STAGES[1:]):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    assert dag.get_task("check_inputs").upstream_task_ids == set()


def test_schedule_and_run_policy(dag):
    assert dag.catchup is False and dag.max_active_runs == 1
    assert "captcha" in dag.tags and dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_delay.total_seconds() > 0 and task.retry_exponential_backoff
        if hasattr(task, "python_callable"):  # what a retry cannot change fails at once (tasks.pipeline.failures)
            assert task.python_callable.__wrapped__, task.task_id


def test_params_have_titles_defaults_and_schemas(dag):
    params = dag.params
    for name in ("source", "store", "epochs", "batch_size", "arch", "height", "width"):
        param = params.get_param(name)
        assert param.schema.get("title") and param.description, name
    resolved = params.validate()
    assert resolved["arch"] == "crnn" and resolved["epochs"] >= 1
    assert resolved["store"].startswith(("file://", "s3://"))


@pytest.mark.parametrize("name, value", [("epochs", -1), ("arch", "transformer"), ("batch_size", 0),
                                         ("store", "ftp://x"), ("source", "")])
def test_bad_param_values_are_refused(dag, name, value):
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    with pytest.raises(ParamValidationError, match=name):
        params[name] = value
        params.validate()


def run_python(code: str, **env) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, **env}, cwd=ROOT)
    return result.stdout.strip()


def test_dag_file_imports_no_heavy_library():
    out = run_python("import json, sys; sys.path.insert(0, 'dags'); import captcha_training; "
                     "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'numpy', 'boto3') "
                     "if m in sys.modules)))")
    assert json.loads(out) == []


def test_train_queue_and_schedule_come_from_the_environment():
    code = ("import sys; sys.path.insert(0, 'dags'); import captcha_training as m; "
            "from airflow.dag_processing.dagbag import DagBag; "
            "dag = DagBag(dag_folder='dags').dags['captcha_training']; "
            "print('RESULT', dag.get_task('train').queue, dag.get_task('ingest').queue, dag.timetable.expression)")
    out = run_python(code, CAPTCHA_TRAIN_QUEUE="gpu", CAPTCHA_SCHEDULE="30 3 * * *")
    assert out.splitlines()[-1] == "RESULT gpu default 30 3 * * *"


def test_publish_and_approve_emit_the_model_asset(dag):
    for task in ("publish", "approve"):
        [outlet] = dag.get_task(task).outlets
        assert outlet.name == "captcha_model"
    assert all(not dag.get_task(t).outlets for t in STAGES[:-2])


def test_approve_asks_in_required_actions_for_a_reason_only(dag):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    approve = dag.get_task("approve")
    assert isinstance(approve, ApprovalOperator) and approve.defaults == ["Reject"]  # no answer: the champion stays
    assert list(approve.serialized_params) == ["comment"]


def test_schedule_none_means_triggered_runs_only():
    code = ("import sys; sys.path.insert(0, 'dags'); from airflow.dag_processing.dagbag import DagBag; "
            "dag = DagBag(dag_folder='dags').dags['captcha_training']; print('RESULT', dag.timetable.can_be_scheduled)")
    assert run_python(code, CAPTCHA_SCHEDULE="none").splitlines()[-1] == "RESULT False"


def test_every_task_has_a_time_limit(dag):
    working = [task for task in dag.tasks if task.task_id != "approve"]  # its wait: approval_hours, at run time
    for task in working:
        assert task.execution_timeout is not None and task.execution_timeout.total_seconds() > 0, task.task_id
    train = dag.get_task("train").execution_timeout
    assert train.total_seconds() > 60 * dag.params.get_param("max_train_minutes").schema["maximum"]
    # The whole run has a limit too, longer than its tasks' limits and the longest wait for approval
    # together (the registry's clean-up counts on it to tell a failed run from a running one).
    wait = timedelta(hours=dag.params.get_param("approval_hours").schema["maximum"])
    assert dag.dagrun_timeout >= sum((task.execution_timeout for task in working), wait)


NUMBERS = ["epochs", "batch_size", "max_train_minutes", "stall_epochs", "all_read_epochs", "height", "width", "max_label_length",
           "label_length", "seed", "max_refused_fraction", "min_accuracy", "approval_hours"]


@pytest.mark.parametrize("name", NUMBERS)
def test_the_form_and_the_config_accept_the_same_values(dag, name):
    """Each number setting, at and around its bounds, in the trigger form and in the config."""
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    from tasks.pipeline.config import RANGES, ConfigError, PipelineConfig

    kind, low, high, _ = RANGES[name]
    for value in {low - 1, low, low + 1, 7, 8, high - 1, high, high + 1, 0.5, 0.999, 1, 1.0, 2.5, -0.5}:
        params = copy.deepcopy(dag.params)
        try:
            params[name] = value
            params.validate()
            form = True
        except ParamValidationError:
            form = False
        try:
            PipelineConfig.from_params({"store": "file:///tmp/x", "max_label_length": 64, name: value}, run_key="k")
            config = True
        except ConfigError:
            config = False
        assert form == config, (name, value, form, config)
