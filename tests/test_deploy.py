"""deploy/: what the image builds take from this machine, without Docker (the builds themselves run in
tests/test_containers.py)."""
import os

import pytest

from deploy import images


@pytest.fixture
def no_pip_settings(monkeypatch):
    for name in ("PIP_CERT", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip then reads no configuration file


def test_the_build_trusts_what_the_host_pip_trusts(tmp_path, monkeypatch, no_pip_settings):
    assert images.host_pip_certificates() is None
    configured, named = tmp_path / "configured.pem", tmp_path / "named.pem"
    configured.write_text("configured")
    named.write_text("named")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\ncert = {configured}\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    assert images.host_pip_certificates() == configured
    monkeypatch.setenv("PIP_CERT", str(named))
    assert images.host_pip_certificates() == named
    monkeypatch.setenv("PIP_CERT", str(tmp_path / "gone.pem"))
    assert images.host_pip_certificates() is None


def test_staged_certificates_replace_the_last_ones_and_go_when_there_are_none(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "CA_FOLDER", tmp_path)
    bundle = tmp_path.parent / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    images.stage_certificates(bundle)
    assert (tmp_path / "host.crt").read_text() == bundle.read_text()
    images.stage_certificates(None)
    assert not (tmp_path / "host.crt").exists()


def test_each_image_is_built_once_from_the_first_service_that_builds_it():
    cpu = {"context": "/repo", "dockerfile": "docker/Dockerfile", "args": {"BASE_IMAGE": "base"}}
    services = {
        "postgres": {"image": "postgres:16"},
        "airflow-init": {"image": "airflow:latest", "build": cpu},
        "airflow-worker": {"image": "airflow:latest", "build": {**cpu, "dockerfile": "other"}},
        "airflow-worker-gpu": {"image": "airflow-gpu:latest", "build": {**cpu, "dockerfile": "docker/Dockerfile.gpu"}},
    }
    assert images.planned_builds(services) == {"airflow:latest": cpu,
                                               "airflow-gpu:latest": {**cpu, "dockerfile": "docker/Dockerfile.gpu"}}
