"""The model pages' web app, through ASGI: nothing of it without a session, and a version's page
from a run's own store links its images and downloads in that store."""
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tasks.store import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
import captcha_models  # noqa: E402  (the plugins folder is Airflow's, not a package)


@pytest.fixture
def signed_in():
    """The app with Airflow's access check answered yes, as for a signed-in user."""
    dependency = captcha_models.app.router.dependencies[0].dependency
    captcha_models.app.dependency_overrides[dependency] = lambda: None
    yield TestClient(captcha_models.app)
    captcha_models.app.dependency_overrides.clear()


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_no_page_of_the_app_answers_without_a_session(path):
    client = TestClient(captcha_models.app)
    assert client.get("/models").status_code == 401
    assert client.get(path).status_code in (401, 404)


def test_a_version_in_a_runs_own_store_links_its_files_in_that_store(signed_in, tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTCHA_STORE", (LocalStore(tmp_path / "default")).uri)
    own = LocalStore(tmp_path / "own")
    own.put_json("models/v1/version.json", {"version": "v1", "metrics": {"full_accuracy": 0.9}})
    own.put_bytes("models/v1/history.png", b"\x89PNG of v1")
    page = signed_in.get("/models/v1", params={"store": own.uri})
    assert page.status_code == 200
    link = page.text.split("<img class='plot' src='")[1].split("'")[0].replace("&amp;", "&")
    assert link.startswith(f"{captcha_models.PREFIX}/models/v1/files/history.png?store=")
    image = signed_in.get(link.removeprefix(captcha_models.PREFIX))
    assert image.status_code == 200 and image.content == b"\x89PNG of v1"
    assert signed_in.get("/models/v1/files/history.png").status_code == 404  # not in the default store
