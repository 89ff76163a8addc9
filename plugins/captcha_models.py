"""The model pages inside Airflow's UI: a Models entry in the navigation (every published version, an
accuracy chart, each version's plots, galleries, model card and downloads) and a Model tab on every
run of captcha_training (that run's model, its progress while it runs, or why it has none).

Served by the api-server as a FastAPI app under /captcha-models. Every route requires Airflow's own
login (the UI's session cookie or a bearer token) and the auth manager's permission to read the DAG.
What the pages show comes from tasks/registry/overview.py; a version, run or file named in a URL is
checked there before it reaches the store.
"""
from __future__ import annotations

import html
import os
from urllib.parse import quote
from datetime import datetime, timezone

from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, Response

DAG_ID = "captcha_training"
PREFIX = "/captcha-models"
S3_CONN_ID = os.environ.get("CAPTCHA_S3_CONN_ID", "captcha_s3")
MEDIA_TYPES = {".png": "image/png", ".md": "text/markdown; charset=utf-8", ".onnx": "application/octet-stream",
               ".keras": "application/octet-stream"}
STYLE = """body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c}table{border-collapse:collapse}
td,th{padding:.3rem .6rem;border-bottom:1px solid #e2e8f0;text-align:left;font-size:.9rem}
.champion{font-weight:600;background:#f0fff4}.error{color:#c53030}img{max-width:100%;border:1px solid #e2e8f0}
pre{white-space:pre-wrap;background:#f7fafc;padding:1rem}"""

# No schema or API pages: FastAPI serves those outside the routes' dependencies, without a session.
app = FastAPI(title="Captcha models", dependencies=[Depends(requires_access_dag("GET", param_dag_id=DAG_ID))],
              docs_url=None, redoc_url=None, openapi_url=None)


def _open_store(uri: str | None = None):
    """The store the DAG uses by default (or a run's own, if the deployment allows it), with the S3
    connection the DAG reads."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models import Connection

    from tasks.pipeline.config import check_allowed, default_store_uri
    from tasks.store import open_store
    from tasks.store.s3 import s3_options_from_connection

    uri = uri or default_store_uri()
    check_allowed("store", uri, "CAPTCHA_ALLOWED_STORES")
    options = {}
    if uri.startswith("s3://"):
        try:
            conn = Connection.get_connection_from_secrets(S3_CONN_ID)
            options = s3_options_from_connection(conn.login, conn.password, conn.extra_dejson)
        except AirflowNotFoundException:
            pass  # boto3 then reads the standard AWS environment variables
    return open_store(uri, options)


def _page(title: str, body: str, status: int = 200, refresh: int | None = None) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{html.escape(title)}</title>"
                        f"<style>{STYLE}</style></head><body><h2>{html.escape(title)}</h2>{body}</body></html>",
                        status_code=status)


def _error(title: str, error: Exception, status: int) -> HTMLResponse:
    """The reason, never a stack trace."""
    return _page(title, f"<p class='error'>{html.escape(str(error) or type(error).__name__)}</p>", status)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _when(seconds) -> str:
    return "-" if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _chart(rows: list[dict]) -> str:
    """Full-captcha accuracy of each version, oldest to newest, with its 95% interval, as inline SVG."""
    points = [row for row in reversed(rows) if row["full_accuracy"] is not None]
    if not points:
        return ""
    width, height, pad, left = max(320, 60 * len(points)), 200, 30, 50  # left: room for the axis labels
    step = (width - left - pad) / max(1, len(points) - 1)

    def y(value: float) -> float:
        return pad + (1 - value) * (height - 2 * pad)

    marks = []
    for i, row in enumerate(points):
        x = left + i * step
        low, high = row["full_accuracy_ci95"] or (row["full_accuracy"],) * 2
        colour = "#2f855a" if row["champion"] else "#2b6cb0"
        marks.append(f'<line x1="{x:.0f}" x2="{x:.0f}" y1="{y(low):.1f}" y2="{y(high):.1f}" stroke="{colour}"/>'
                     f'<circle cx="{x:.0f}" cy="{y(row["full_accuracy"]):.1f}" r="4" fill="{colour}">'
                     f'<title>{html.escape(row["version"])}: {_percent(row["full_accuracy"])}</title></circle>')
    axis = "".join(f'<text x="2" y="{y(v) + 4:.1f}" font-size="10">{int(v * 100)}%</text>' for v in (0, 0.5, 1))
    return (f'<svg id="accuracy-chart" width="{width}" height="{height}" role="img" '
            f'aria-label="full-captcha accuracy per version">{axis}{"".join(marks)}</svg>')


@app.get("/models", response_class=HTMLResponse)
def models() -> HTMLResponse:
    from tasks.registry.overview import version_rows

    try:
        rows = version_rows(_open_store())
    except Exception as error:  # the store's own message: unreachable, denied, damaged
        return _error("Models", error, 503)
    if not rows:
        return _page("Models", "<p>No version is published yet: trigger captcha_training.</p>")
    lines = []
    for row in rows:
        low, high = row["full_accuracy_ci95"] or (None, None)
        version = html.escape(row["version"])
        gate = ("awaiting approval" if row["awaiting"] else "promoted" if row["promoted"]
                else "not promoted" if row["promoted"] is False else "-")
        lines.append(
            f"<tr class='{'champion' if row['champion'] else ''}' data-version='{version}'>"
            f"<td><a href='{PREFIX}/models/{version}'>{version}</a>{' (champion)' if row['champion'] else ''}</td>"
            f"<td>{_when(row['created_at'])}</td><td>{html.escape(str(row['data_version']))}</td>"
            f"<td>{row['images']}</td><td>{html.escape(str(row['arch']))}</td>"
            f"<td class='accuracy'>{_percent(row['full_accuracy'])} ({_percent(low)}-{_percent(high)})</td>"
            f"<td>{_percent(row['char_accuracy'])}</td><td>{(row['training_seconds'] or 0) / 60:.1f} min</td>"
            f"<td>{gate}: {html.escape(row['reason'] or '')}</td></tr>")
    table = ("<table><tr><th>version</th><th>published</th><th>data version</th><th>images</th><th>arch</th>"
             "<th>full captchas (95% interval)</th><th>characters</th><th>training</th><th>gate</th></tr>"
             + "".join(lines) + "</table>")
    return _page("Models", _chart(rows) + table)


def _version_body(version: str, page: dict, store: str | None = None) -> str:
    """A version's page; its images and downloads are read from `store` (None: the default store)."""
    from tasks.registry.overview import DOWNLOADS, PLOTS

    base = f"{PREFIX}/models/{html.escape(version)}/files"
    where = html.escape(f"?store={quote(store, safe='')}") if store else ""
    metrics = page["metrics"]
    low, high = metrics.get("full_accuracy_ci95") or (None, None)
    parts = [f"<p>{'Champion. ' if page['champion'] else ''}Full captchas {_percent(metrics.get('full_accuracy'))} "
             f"(95% interval {_percent(low)}-{_percent(high)}), characters {_percent(metrics.get('char_accuracy'))}"
             "</p>"]
    parts.append("<p>" + " · ".join(f"<a href='{base}/{name}{where}' download>{name}</a>" if page["downloads"][name]
                                    else f"{name} (missing)" for name in DOWNLOADS) + "</p>")
    for name in PLOTS:
        parts.append(f"<h3>{name[:-4].replace('_', ' ')}</h3>" + (
            f"<img class='plot' src='{base}/{name}{where}' alt='{name}'>" if page["plots"][name]
            else f"<p class='error'>{name} is missing from this version</p>"))
    if page["model_card"]:
        parts.append(f"<h3>model card</h3><pre>{html.escape(page['model_card'])}</pre>")
    return "".join(parts)


@app.get("/models/{version}", response_class=HTMLResponse)
def version(version: str, store: str | None = None) -> HTMLResponse:
    """One version's page, from `store` (a run's own store, where the deployment allows it) or the default one."""
    from tasks.registry.overview import version_page
    from tasks.store import StoreError

    try:
        page = version_page(_open_store(store), version)
    except StoreError as error:
        return _error(f"Version {version}", error, 404)
    except Exception as error:
        return _error(f"Version {version}", error, 503)
    return _page(f"Version {version}", _version_body(version, page, store))


@app.get("/models/{version}/files/{name}")
def version_file(version: str, name: str, store: str | None = None) -> Response:
    """A plot or download of a version, from `store` or the default one."""
    from tasks.registry.overview import version_file as read
    from tasks.store import StoreError

    try:
        data = read(_open_store(store), version, name)
    except StoreError as error:
        return _error(name, error, 404)
    except Exception as error:
        return _error(name, error, 503)
    return Response(data, media_type=MEDIA_TYPES.get(os.path.splitext(name)[1], "application/octet-stream"))


@app.get("/runs/{run_id}", response_class=HTMLResponse)
def run(run_id: str) -> HTMLResponse:
    """The Model tab of a DAG run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tasks.pipeline.records import run_key_for
    from tasks.registry.overview import run_progress, version_page

    title = f"Run {run_id}"
    with create_session() as session:
        found = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id))
        if found is None:
            return _page(title, f"<p class='error'>{DAG_ID} has no run {html.escape(run_id)}</p>", 404)
        run_key, conf = run_key_for(found.logical_date, found.run_id), dict(found.conf or {})
    try:
        store = _open_store(conf.get("store"))
        progress = run_progress(store, run_key)
        if progress["outcome"] == "published":
            return _page(title, _approval_note(progress["approval"])
                         + _version_body(progress["version"], version_page(store, progress["version"]),
                                         conf.get("store")),
                         refresh=10 if progress["approval"] == "awaiting" else None)
    except Exception as error:
        return _error(title, error, 503)
    return _page(title, _progress_body(progress), refresh=10 if progress["outcome"] == "running" else None)


def _approval_note(approval) -> str:
    """What became of a run's model where a person was asked to approve it."""
    if approval is None:
        return ""
    if approval == "awaiting":
        return ("<p class='approval'>Waiting for a person's <b>Approve</b> or <b>Reject</b> in Airflow's "
                "<a href='/required_actions' target='_top'>Required Actions</a>; the champion stays until then.</p>")
    return (f"<p class='approval'>Approval: {html.escape(approval['decision'])} "
            f"({html.escape(approval['why'])}).</p>")


def _progress_body(progress: dict) -> str:
    outcome = progress["outcome"]
    if outcome == "skipped":
        head = f"<p>No model: skipped because {html.escape(progress['message'])}</p>"
    elif outcome == "failed":
        head = (f"<p class='error'>No model: {html.escape(str(progress['stage']))} failed: "
                f"{html.escape(str(progress['message']))}</p>")
    else:
        head = f"<p>{'Running' if outcome == 'running' else 'Not started yet'}; this page refreshes itself.</p>"
    stages = "".join(f"<li>{html.escape(stage)}: done</li>" for stage in progress["stages"])
    epochs = "".join(
        f"<tr><td>{row['epoch']}</td>" + "".join(
            f"<td>{row[name]:.4f}</td>" if isinstance(row.get(name), float) else "<td>-</td>"
            for name in ("loss", "val_loss", "accuracy", "val_accuracy")) + "</tr>"
        for row in progress["epochs"])
    table = ("<table id='epochs'><tr><th>epoch</th><th>loss</th><th>val loss</th><th>accuracy</th>"
             f"<th>val accuracy</th></tr>{epochs}</table>") if epochs else ""
    return f"{head}<ul>{stages}</ul>{table}"


class CaptchaModelsPlugin(AirflowPlugin):
    """Registers the app and its two views with Airflow."""
    name = "captcha_models"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "Captcha models"}]
    external_views = [
        {"name": "Models", "href": f"{PREFIX}/models", "destination": "nav", "url_route": "captcha-models"},
        {"name": "Model", "href": f"{PREFIX}/runs/{{RUN_ID}}", "destination": "dag_run", "url_route": "captcha-model"},
    ]
