"""The Airflow UI as a user meets it, in headless Chromium (Debian's package, driven by Playwright):
log in, open captcha_training, trigger it from the form with changed params, watch the run succeed,
and read its results on the run's page and on the model pages; a wrong param is refused by the form
with a message; with approval on, a person approves one model and rejects another in Required Actions.

Airflow runs as `airflow standalone` on a free port with a fresh home. Screenshots of every failing
test are saved under CAPTCHA_UI_ARTIFACTS (default: the test's temporary folder, printed); with
CAPTCHA_UI_SCREENSHOTS=<folder> the passing run also saves the screenshots the README shows.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

from tasks.pipeline.records import run_key_for
from tasks.store import LocalStore

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CAPTCHA_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "ui-test-password"
TINY = {"source": "synthetic://?count=40&length=4&seed=3", "epochs": "1", "batch_size": "8", "height": "32",
        "width": "96", "min_accuracy": "0"}

pytestmark = pytest.mark.ui


def wait_for(check, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory):
    """Base URL of a fresh `airflow standalone` serving this repository's DAG, and its store."""
    if not Path(CHROMIUM).is_file():
        message = f"{CHROMIUM} is missing (apt-get install chromium, or `make browser`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("airflow_ui")
    store = LocalStore(home / "store")
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
           "CAPTCHA_SCHEDULE": "none", "CAPTCHA_STORE": store.uri, "CAPTCHA_CACHE_DIR": str(home / "cache"),
           "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    log = open(home / "standalone.log", "wb")
    server = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "standalone"], env=env, cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5).status == 200,
                 240, f"the api-server on {url} (log: {home / 'standalone.log'})")
        yield url, store, home
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture
def page(airflow_ui, request, tmp_path):
    """A logged-in Chromium page; a screenshot is saved if the test fails."""
    from playwright.sync_api import sync_playwright

    url, _, _ = airflow_ui
    artifacts = Path(os.environ.get("CAPTCHA_UI_ARTIFACTS") or tmp_path)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda u: "/auth/login" not in u and "login" not in u)
            yield page
        finally:
            outcome = getattr(request.node, "rep_call", None)
            if outcome is None or outcome.failed:
                artifacts.mkdir(parents=True, exist_ok=True)
                shot = artifacts / f"{request.node.name}.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}")
            browser.close()


def trigger_form(page, url: str, **params: str):
    """Open captcha_training's trigger form and fill params (by name) in; return the dialog."""
    page.goto(f"{url}/dags/captcha_training")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Random seed of training").wait_for()
    for name, value in params.items():
        field = dialog.locator(f'[name="element_{name}"]')
        field.fill(value)
        field.blur()
    return dialog


def submit(page, dialog) -> str:
    """Press Trigger; return the id of the run it started."""
    dialog.get_by_role("button", name="Trigger").click()
    page.wait_for_url("**/runs/**")
    return page.url.split("/runs/", 1)[1].split("/")[0]


def wait_until_finished(page, tasks: int = 7) -> str:
    """Wait (the UI refreshes itself) until the run's badge and every task's say how it ended."""
    def state():
        unfinished = sum(page.get_by_text(name, exact=True).count()
                         for name in ("Running", "Queued", "Scheduled", "No Status"))
        for name in ("Success", "Failed"):
            if page.get_by_text(name, exact=True).count() > 0 and unfinished == 0:
                return name
        return None

    return wait_for(state, 900, "the run to finish", interval=2)


def test_wrong_params_are_refused_by_the_form_with_a_message(airflow_ui, page):
    url, store, _ = airflow_ui
    for conf, message in (('{"epochs": -3}', "Invalid input for param epochs: -3 is less than the minimum of 1"),
                          ('{"arch": "transformer"}', "Invalid input for param arch: 'transformer' is not one of")):
        dialog = trigger_form(page, url)
        dialog.get_by_text("Advanced Options").click()
        dialog.locator(".monaco-editor").first.click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(conf)
        dialog.get_by_role("button", name="Trigger").click()
        dialog.get_by_text(message).wait_for()
        assert "/runs/" not in page.url
    assert list(store.list("runs/")) == []  # nothing ran


def test_a_source_that_does_not_exist_fails_the_run_at_check_inputs_with_the_reason(airflow_ui, page, tmp_path):
    url, store, _ = airflow_ui
    missing = tmp_path / "no-such-folder"
    run_id = submit(page, trigger_form(page, url, source=str(missing)))
    assert wait_until_finished(page) == "Failed"
    page.goto(f"{url}/dags/captcha_training/runs/{run_id}/tasks/check_inputs")
    page.get_by_text(f"source '{missing}' does not exist").first.wait_for()
    assert [k for k in store.list("runs/") if k.endswith("/ingest.json")] == []


def test_trigger_from_the_form_watch_the_run_and_read_its_results(airflow_ui, page):
    url, store, _ = airflow_ui
    shots = os.environ.get("CAPTCHA_UI_SCREENSHOTS")
    dialog = trigger_form(page, url, **TINY)
    if shots:
        dialog.get_by_text("Run Parameters").scroll_into_view_if_needed()
        page.screenshot(path=str(Path(shots) / "trigger_form.png"))
    run_id = submit(page, dialog)
    assert wait_until_finished(page) == "Success"
    if shots:
        page.screenshot(path=str(Path(shots) / "finished_run.png"))
    [published] = [k for k in store.list("runs/") if k.endswith("/publish.json")]
    result = store.get_json(published)
    # The run's publish task: its results (XCom), then the model asset event it emitted.
    page.goto(f"{url}/dags/captcha_training/runs/{run_id}/tasks/publish")
    page.get_by_text("Storage", exact=True).click()
    page.get_by_text("XCom", exact=True).click()
    for shown in (result["model_uri"], result["model_card"], result["reason"]):
        page.get_by_text(shown, exact=True).first.wait_for()
    assert page.get_by_text("full_accuracy", exact=True).count() == 1
    if shots:
        page.screenshot(path=str(Path(shots) / "run_results.png"))
    page.get_by_text("Asset Events", exact=True).click()
    page.get_by_text("captcha_model").first.wait_for()


def test_the_models_page_and_the_model_tab_show_the_published_version(airflow_ui, page):
    url, store, _ = airflow_ui
    with pytest.raises(urllib.error.HTTPError) as refused:  # no session: nothing of the store
        urllib.request.urlopen(f"{url}/captcha-models/models", timeout=30)
    assert refused.value.code in (401, 403)
    [published] = [k for k in store.list("runs/") if k.endswith("/publish.json")]
    version = store.get_json(published)["version"]
    metrics = store.get_json(f"models/{version}/metrics.json")
    page.goto(f"{url}/captcha-models/models")
    row = page.locator(f"tr[data-version='{version}']")
    assert f"{100 * metrics['full_accuracy']:.1f}%" in row.locator(".accuracy").inner_text()
    assert page.locator("#accuracy-chart circle").count() == 1

    runs = page.request.get(f"{url}/api/v2/dags/captcha_training/dagRuns?state=success").json()["dag_runs"]
    [run_id] = [run["dag_run_id"] for run in runs]
    page.goto(f"{url}/dags/captcha_training/runs/{run_id}")
    page.get_by_text("Model", exact=True).click()
    tab = page.frame_locator("iframe").first
    tab.locator("img.plot").first.wait_for()
    for image in tab.locator("img.plot").all():
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), image.get_attribute("src")
    assert tab.locator("img.plot").count() == 4


def trigger_by_api(page, url: str, conf: dict) -> str:
    """Start a run with `conf` through the REST API, with the browser's session; return its id."""
    response = page.request.post(f"{url}/api/v2/dags/captcha_training/dagRuns",
                                 data={"logical_date": None, "conf": conf})
    assert response.ok, response.text()
    return response.json()["dag_run_id"]


def task_state(page, url: str, run_id: str, task: str) -> str | None:
    response = page.request.get(f"{url}/api/v2/dags/captcha_training/dagRuns/{run_id}/taskInstances/{task}")
    return response.json()["state"] if response.ok else None


def test_a_person_approves_one_model_and_rejects_another_in_required_actions(airflow_ui, page):
    url, store, _ = airflow_ui
    champion = store.get_json("models/latest.json")["version"]
    for seed, choice in ((11, "Approve"), (12, "Reject")):
        run_id = trigger_by_api(page, url, {"source": TINY["source"], "epochs": 1, "batch_size": 8, "height": 32,
                                            "width": 96, "min_accuracy": 0, "force": True, "seed": seed,
                                            "approval": True})
        wait_for(lambda: task_state(page, url, run_id, "approve") == "awaiting_input", 900,
                 f"run {run_id} to ask for approval", interval=3)
        version = store.get_json(f"runs/{run_key_for(None, run_id)}/publish.json")["version"]
        assert store.get_json("models/latest.json")["version"] == champion  # nothing moves before the answer

        page.goto(f"{url}/dags/captcha_training/runs/{run_id}/tasks/approve/required_actions")
        page.get_by_text(f"Make {version} the captcha model?").wait_for()
        page.get_by_text("Full captchas read").wait_for()
        if choice == "Approve":  # the question links to the candidate's Model tab
            with page.context.expect_page() as opened:
                page.get_by_role("link", name="Model tab").click()
            tab = opened.value.frame_locator("iframe").first
            tab.get_by_text("Waiting for a person's Approve or Reject").wait_for()
            assert tab.locator("img.plot").count() == 4
            opened.value.close()
        page.locator("[name=element_comment]").fill(f"{choice} from the UI test")
        page.get_by_role("button", name=choice, exact=True).click()
        wait_for(lambda: task_state(page, url, run_id, "approve") == "success", 300, f"{choice} to be carried out")

        latest = store.get_json("models/latest.json")["version"]
        assert latest == (version if choice == "Approve" else champion), choice
        last = [entry for entry in store.iter_jsonl("models/history.jsonl")][-1]
        assert (last["action"], last["candidate"], last["who"], last["moved"]) == (
            "approval", version, "admin", choice == "Approve")
        assert f"{choice} from the UI test" in last["why"]
        champion = latest
