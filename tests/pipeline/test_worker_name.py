import socket

from tasks.pipeline.worker_name import hostname


def test_worker_name_from_environment(monkeypatch):
    monkeypatch.setenv("CAPTCHA_WORKER_NAME", "gpu-worker-1")
    assert hostname() == "gpu-worker-1"
    monkeypatch.delenv("CAPTCHA_WORKER_NAME")
    assert hostname() == socket.getfqdn()
