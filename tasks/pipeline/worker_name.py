"""The name a worker reports to Airflow (`[core] hostname_callable = tasks.pipeline.worker_name.hostname`).

Containers and several workers on one host share a host name; CAPTCHA_WORKER_NAME tells them apart
in the task instances' `hostname`, so the UI and the metadata database show which worker ran a task.
"""
from __future__ import annotations

import os
import socket


def hostname() -> str:
    """CAPTCHA_WORKER_NAME if set, else the fully qualified host name."""
    return os.environ.get("CAPTCHA_WORKER_NAME") or socket.getfqdn()
