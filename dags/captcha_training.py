"""The DAGs, wiring only: `captcha_training` and `captcha_base_model` (the same stages on synthetic
captchas of many styles, making a base model that training on a new style can start from). Each task
builds the run's config and store, calls one stage function of `tasks/`, and returns that stage's
small JSON summary. Heavy libraries are imported inside the stages, so parsing this file stays fast.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task

from tasks.data.input_size import PREPROCESSING_METHODS
from tasks.modelling.architectures import architecture_names, get_architecture
from tasks.pipeline.approval import AskedApproval
from tasks.pipeline.config import DEFAULTS, default_store_uri, param_schema
from tasks.pipeline.records import RUN_TIMEOUT
from tasks.store import store_schemes

SCHEDULE = os.environ.get("CAPTCHA_SCHEDULE", "0 2 * * *")  # "none": triggered runs only
TRAIN_QUEUE = os.environ.get("CAPTCHA_TRAIN_QUEUE", "default")
S3_CONN_ID = os.environ.get("CAPTCHA_S3_CONN_ID", "captcha_s3")
# A task that hangs (a stalled mount, a dead endpoint) fails instead of holding its worker slot for
# ever. Training may run up to the longest time limit the form accepts, plus evaluation on the way.
TIMEOUTS = {
    "check_inputs": timedelta(minutes=30), "ingest": timedelta(hours=12), "encode_labels": timedelta(hours=2),
    "build_shards": timedelta(hours=12), "evaluate": timedelta(hours=4), "publish": timedelta(hours=2),
    "train": timedelta(minutes=param_schema("max_train_minutes")["maximum"], hours=2),
}
# Each publish emits an event on this asset, with the model's version, location, accuracy and whether
# it became latest: other DAGs can be scheduled on it.
# What can change on a retry (tasks.pipeline.failures) gets two, a minute and then about two apart.
RETRIES = {"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True,
           "max_retry_delay": timedelta(minutes=10)}
MODEL_ASSET = Asset(name="captcha_model", uri="captcha://models/latest")

DOC = """
### Captcha training

Turns labelled captcha images into a published, versioned recognition model:
`check_inputs -> ingest -> encode_labels -> build_shards -> train -> evaluate -> publish -> approve`.
A wrong setting, a source that does not exist or a store that cannot be written stops the run at
`check_inputs`, before any work.

* **source**: a folder, a `.zip`/`.tar.gz` archive, an `s3://bucket/prefix`, or
  `synthetic://?count=4000&length=4&alphabet=0123456789` (generated captchas). The label is the file
  name (`226md.png`, `A3K7_0001.png`) or comes from a `labels.csv` beside the images.
* **store**: where everything is kept (`file:///path` or `s3://bucket/prefix`); S3 credentials and
  endpoint come from the Airflow connection `captcha_s3` or the standard AWS environment variables.
* The published model is under `models/<version>/` of the store; `models/latest.json` points at it.
* **approval**: a model that passes the gate becomes `latest` only when a person approves it in
  Required Actions (`approve`); Reject, or no answer within **approval_hours**, keeps the champion.
  Otherwise `approve` is skipped.
"""

PARAMS = {
    "source": Param(DEFAULTS["source"], type="string", minLength=1, title="Source",
                    description="Folder, .zip/.tar.gz archive, s3://bucket/prefix or synthetic://?count=..."),
    "store": Param(default_store_uri(), type="string", pattern=f"^({'|'.join(store_schemes())})://.+", title="Store",
                   description="Object-store root URI (file:///path or s3://bucket/prefix)"),
    "epochs": Param(DEFAULTS["epochs"], **param_schema("epochs"), title="Epochs",
                    description="Most training epochs; early stopping may end sooner"),
    "max_train_minutes": Param(DEFAULTS["max_train_minutes"], **param_schema("max_train_minutes"),
                               title="Training time limit (minutes)",
                               description="Training stops after this long, keeping the best epoch; 0: no limit"),
    "stall_epochs": Param(DEFAULTS["stall_epochs"], **param_schema("stall_epochs"),
                          title="Epochs to start reading",
                          description="A model that reads nothing after this many epochs changes course (dropout "
                                      "off, a fresh start, the per-position head); 0: never"),
    "all_read_epochs": Param(DEFAULTS["all_read_epochs"], **param_schema("all_read_epochs"),
                             title="Epochs with everything read",
                             description="Training ends once the model has read every validation captcha and "
                                         "every training captcha it is checked on for this many epochs in a row, "
                                         "keeping the best epoch; 0: never"),
    "batch_size": Param(DEFAULTS["batch_size"], **param_schema("batch_size"), title="Batch size",
                        description="Images per step on each device"),
    "arch": Param(DEFAULTS["arch"], type="string", enum=architecture_names(), title="Architecture",
                  description="; ".join(f"{name}: {get_architecture(name).description}"
                                        for name in architecture_names())),
    "height": Param(DEFAULTS["height"], **param_schema("height"), title="Input height",
                    description="Model input height (8 or more); images are resized to fit, keeping their "
                                "aspect ratio, and padded; 0: 50"),
    "width": Param(DEFAULTS["width"], **param_schema("width"), title="Input width",
                   description="Model input width (8 or more); 0: chosen from the images' shapes and the "
                               "longest label"),
    "preprocessing": Param(DEFAULTS["preprocessing"], type="string", enum=list(PREPROCESSING_METHODS),
                           title="Preprocessing",
                           description="auto: text or ink, chosen from the images; text: ink cut to the text's "
                                       "region, wide gaps narrowed; ink: dark text on white from each image's "
                                       "colours or transparency, contrast stretched; grey: the image's "
                                       "brightness"),
    # Optional (null allowed): the trigger form treats an empty required string as missing.
    "alphabet": Param(DEFAULTS["alphabet"] or None, type=["null", "string"], title="Alphabet",
                      description="Characters labels may use; empty: read off the data"),
    "max_label_length": Param(DEFAULTS["max_label_length"], **param_schema("max_label_length"),
                              title="Longest label", description="Longer labels are refused at ingest"),
    "label_length": Param(DEFAULTS["label_length"], **param_schema("label_length"), title="Label length",
                          description="Every label has exactly this many characters, others are refused at "
                                      "ingest; 0: any length up to the longest label"),
    "max_refused_fraction": Param(DEFAULTS["max_refused_fraction"], **param_schema("max_refused_fraction"),
                                  title="Refused-fraction limit",
                                  description="Ingest fails when more than this fraction of images is refused"),
    "min_accuracy": Param(DEFAULTS["min_accuracy"], **param_schema("min_accuracy"),
                          title="Accuracy floor",
                          description="A model becomes latest only if it reads at least this fraction of the test "
                                      "captchas, and no fewer than the current latest on the same test split"),
    "force": Param(DEFAULTS["force"], type="boolean", title="Retrain even if nothing changed",
                   description="Without it, a run on the same data with the same settings as the published "
                               "model ends after ingest"),
    "seed": Param(DEFAULTS["seed"], **param_schema("seed"), title="Seed", description="Random seed of training"),
    "warm_start": Param(DEFAULTS["warm_start"], type="boolean", title="Start from the champion",
                        description="Fine-tune the champion's weights when it was trained with the same setup "
                                    "(architecture, input size, preprocessing, alphabet); off: from scratch"),
    "base": Param(DEFAULTS["base"] or None, type=["null", "string"], title="Base model",
                  description="Where there is no champion to start from: start from a base model made on "
                              "synthetic captchas (`make base`): auto (the latest base where one fits), latest "
                              "or a base version (refused when missing), none: from scratch"),
    "approval": Param(DEFAULTS["approval"], type="boolean", title="Ask before a new model becomes latest",
                      description="A model that passes the gate waits for Approve or Reject in Required Actions"),
    "approval_hours": Param(DEFAULTS["approval_hours"], **param_schema("approval_hours"), title="Approval wait (hours)",
                            description="Without an answer within this time the champion stays; meanwhile the "
                                        "next run waits"),
}


def by_kind(function):
    """A task's body whose errors that a retry cannot change fail the task at once, with their message
    (tasks.pipeline.failures); the others are retried."""
    import functools

    @functools.wraps(function)
    def task(*args, **kwargs):
        from airflow.sdk.exceptions import AirflowFailException

        from tasks.pipeline.failures import transient

        try:
            return function(*args, **kwargs)
        except Exception as error:
            if transient(error):
                raise
            raise AirflowFailException(str(error) or type(error).__name__) from None

    return task


def _run_context(active: bool = True, context: dict | None = None):
    """(config, store, S3 client options) of the running task (or of a callback's `context`), from its
    params and date; `active` records in the store that the run's task starts (the registry's clean-up
    keeps running runs)."""
    from tasks.pipeline.config import PipelineConfig
    from tasks.pipeline.records import mark_active, run_key_for
    from tasks.store import open_store

    context = context or get_current_context()
    params = {name: value for name, value in context["params"].items() if name in PARAMS}  # not a task's own
    cfg = PipelineConfig.from_params(params, run_key_for(context.get("logical_date"), context["run_id"]))
    s3_options = _s3_options(cfg.store, cfg.source)
    if not active:  # checking, or recording a failure: never create a store named by mistake
        from tasks.check_inputs import check_store_exists

        check_store_exists(cfg.store)
    store = open_store(cfg.store, s3_options)
    if active:
        mark_active(store, cfg.run_key, context["ti"].task_id)
    return cfg, store, s3_options


def _s3_options(*locations: str) -> dict:
    """S3 client options from the Airflow connection when any of `locations` is on S3 (else none: boto3
    then reads the standard AWS environment variables)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from tasks.store.s3 import s3_options_from_connection

    if not any(location.startswith("s3://") for location in locations):
        return {}
    try:
        conn = Connection.get(S3_CONN_ID)
    except AirflowNotFoundException:
        return {}
    return s3_options_from_connection(conn.login, conn.password, conn.extra_dejson)


def _approval_question(context: dict) -> dict | None:
    from airflow.configuration import conf

    from tasks.approve import approval_request

    cfg, store, _ = _run_context(context=context)
    model_tab = (f"{conf.get('api', 'base_url', fallback='').rstrip('/')}/dags/{context['dag'].dag_id}/runs/"
                 f"{context['run_id']}/plugin/captcha-model")
    return approval_request(cfg, store, model_tab)


def _approval_answer(context: dict, **answer) -> dict:
    from tasks.approve import approve

    result = approve(*_run_context(context=context)[:2], **answer)
    context["outlet_events"][MODEL_ASSET].extra = result
    return result


def _record_failure(context: dict) -> None:
    """A task failed for good: say which and why in the run's folder of the store (its Model page shows
    it). When the store itself is what failed, the task's log is all there is."""
    from tasks.pipeline.records import record_failure

    if context["ti"].task_id == "check_inputs":
        return  # wrong inputs write nothing: the store may not even exist, or be the wrong one
    try:
        cfg, store, _ = _run_context(active=False, context=context)
        record_failure(store, cfg.run_key, context["ti"].task_id, str(context.get("exception") or "failed"))
    except Exception as error:  # a callback must not hide the task's own failure
        logging.getLogger(__name__).warning("could not record the failure in the store: %s", error)


@dag(
    dag_id="captcha_training",
    schedule=None if SCHEDULE.strip().lower() in ("", "none") else SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=RUN_TIMEOUT,  # a run stuck for days fails, and the next night's can start
    default_args={**RETRIES, "on_failure_callback": _record_failure},
    tags=["captcha", "ml", "training"],
    doc_md=DOC,
    params=PARAMS,
)
def captcha_training():
    @task(execution_timeout=TIMEOUTS["check_inputs"])
    @by_kind
    def check_inputs() -> dict:
        from tasks.check_inputs import check_inputs as run

        # Nothing is written before the inputs are checked: the store may not even exist yet.
        return run(*_run_context(active=False))

    @task(execution_timeout=TIMEOUTS["ingest"])
    @by_kind
    def ingest() -> dict:
        from tasks.ingest import ingest as run

        cfg, store, s3_options = _run_context()
        return run(cfg, store, s3_options=s3_options)

    @task(execution_timeout=TIMEOUTS["encode_labels"])
    @by_kind
    def encode_labels() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from tasks.encode_labels import encode_labels as run
        from tasks.pipeline.records import read_stage_result

        cfg, store, _ = _run_context()
        reason = read_stage_result(store, cfg.run_key, "ingest").get("up_to_date")
        if reason:
            raise AirflowSkipException(reason)  # everything downstream is skipped with it
        return run(cfg, store)

    @task(execution_timeout=TIMEOUTS["build_shards"])
    @by_kind
    def build_shards() -> dict:
        from tasks.build_shards import build_shards as run

        return run(*_run_context()[:2])

    @task(queue=TRAIN_QUEUE, execution_timeout=TIMEOUTS["train"])
    @by_kind
    def train() -> dict:
        from tasks.train import train as run

        return run(*_run_context()[:2])

    @task(execution_timeout=TIMEOUTS["evaluate"])
    @by_kind
    def evaluate() -> dict:
        from tasks.evaluate import evaluate as run

        return run(*_run_context()[:2])

    @task(outlets=[MODEL_ASSET], execution_timeout=TIMEOUTS["publish"])
    @by_kind
    def publish() -> dict:
        from tasks.publish import publish as run

        result = run(*_run_context()[:2])
        get_current_context()["outlet_events"][MODEL_ASSET].extra = {
            key: result[key] for key in ("version", "promoted", "reason", "model_uri", "onnx_uri", "model_card",
                                         "full_accuracy", "char_accuracy", "plots")}
        return result

    approve = AskedApproval(task_id="approve", ask=_approval_question, answer=_approval_answer, outlets=[MODEL_ASSET],
                            skip_reason="nothing to approve: approval is off, or publish already decided")

    check_inputs() >> ingest() >> encode_labels() >> build_shards() >> train() >> evaluate() >> publish() >> approve


captcha_training()


BASE_DOC = """
### Captcha base model

Makes a base model: `ingest -> encode_labels -> build_shards -> train -> evaluate -> publish_base`
on **images** synthetic captchas of many styles (fonts, sizes, colours, lines, noise, 3 to 8
characters of digits and letters of both cases), in `bases/work/<run>/` of the **store**, then
publishes the model as `bases/<version>/` and points `bases/latest.json` at it. A `captcha_training`
run starts from the latest base (param **base**: `auto`, the default, or `latest` or a version;
`none` for none) where it has no champion of the same setup to start from: the layers that fit, and
an output head for its own alphabet.
"""

BASE_PARAMS = {
    "store": PARAMS["store"],
    "images": Param(30_000, type="integer", minimum=100, maximum=1_000_000, title="Synthetic captchas",
                    description="How many to make; 90% are trained on, 5% validate, 5% test"),
    "max_train_minutes": Param(45, **param_schema("max_train_minutes"), title="Training time limit (minutes)",
                               description="Training stops after this long, keeping the best epoch; 0: no limit"),
    "epochs": PARAMS["epochs"],
    "seed": PARAMS["seed"],
}


def _base_context():
    """(config, work store, store) of the running base task: the stages run in the work store."""
    from tasks.pipeline.records import run_key_for
    from tasks.registry.bases import base_config
    from tasks.store import open_store

    context = get_current_context()
    params = context["params"]
    cfg = base_config(run_key_for(context.get("logical_date"), context["run_id"]), params["store"], params["images"],
                      params["max_train_minutes"], params["seed"], epochs=params["epochs"])
    s3_options = _s3_options(cfg.store)
    return cfg, open_store(cfg.store, s3_options), open_store(params["store"], s3_options)


@dag(
    dag_id="captcha_base_model",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=RETRIES,
    tags=["captcha", "ml", "base model"],
    doc_md=BASE_DOC,
    params=BASE_PARAMS,
)
def captcha_base_model():
    @task(execution_timeout=TIMEOUTS["ingest"])
    @by_kind
    def ingest() -> dict:
        from tasks.ingest import ingest as run

        return run(*_base_context()[:2])

    @task(execution_timeout=TIMEOUTS["encode_labels"])
    @by_kind
    def encode_labels() -> dict:
        from tasks.encode_labels import encode_labels as run

        return run(*_base_context()[:2])

    @task(execution_timeout=TIMEOUTS["build_shards"])
    @by_kind
    def build_shards() -> dict:
        from tasks.build_shards import build_shards as run

        return run(*_base_context()[:2])

    @task(queue=TRAIN_QUEUE, execution_timeout=TIMEOUTS["train"])
    @by_kind
    def train() -> dict:
        from tasks.train import train as run

        return run(*_base_context()[:2])

    @task(execution_timeout=TIMEOUTS["evaluate"])
    @by_kind
    def evaluate() -> dict:
        from tasks.evaluate import evaluate as run

        return run(*_base_context()[:2])

    @task(execution_timeout=TIMEOUTS["publish"])
    @by_kind
    def publish_base() -> dict:
        from tasks.registry.bases import publish_base as run

        cfg, work, store = _base_context()
        return run(cfg, store, work)

    ingest() >> encode_labels() >> build_shards() >> train() >> evaluate() >> publish_base()


captcha_base_model()
