"""The deployment's images: a base to build from, the certificate authorities the build's pip needs,
and `docker build` of the Dockerfiles of docker/.

The Dockerfiles build from the official Python image by default. Where it cannot be pulled (no Docker
Hub), `base_image` makes a Debian base with Python 3.11 here, with mmdebstrap from the machine's own
apt sources, and the same Dockerfiles build from it unchanged (their BASE_IMAGE argument).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from deploy.engine import EngineError, apt_install

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL_BASE = "python:3.11-slim"
# Debian's Python 3.11 (bookworm), the version the requirements are pinned for.
LOCAL_BASE = "captcha-base:bookworm-python3.11"
LOCAL_BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
CA_FOLDER = ROOT / "docker" / "ca-certificates"


def docker(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """`docker args...`, its output captured as text."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name).returncode == 0


def base_image(official: str = OFFICIAL_BASE, pull_timeout: float = 300) -> str:
    """The image to build from: `official` when it is here or can be pulled, else the local Debian base
    (made once, then reused)."""
    if image_exists(official):
        return official
    try:
        if docker("pull", official, timeout=pull_timeout).returncode == 0:
            return official
    except subprocess.TimeoutExpired:
        pass
    if not image_exists(LOCAL_BASE):
        make_local_base(LOCAL_BASE)
    return LOCAL_BASE


def apt_sources() -> list[str]:
    """The machine's apt sources files (one-line and deb822 style)."""
    etc = Path("/etc/apt")
    files = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    files += sorted((etc / "sources.list.d").glob("*.list")) + sorted((etc / "sources.list.d").glob("*.sources"))
    return [str(path) for path in files if path.read_text().strip()]


def make_local_base(name: str = LOCAL_BASE) -> None:
    """A minimal Debian bookworm with Python 3.11 and its venv module, from this machine's apt sources,
    imported into Docker as `name` (docs and translations left out)."""
    if not shutil.which("mmdebstrap"):
        apt_install("mmdebstrap")
    sources = apt_sources()
    if not sources:
        raise EngineError("no apt sources in /etc/apt to make a Debian base image from")
    command = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(LOCAL_BASE_PACKAGES)}",
               *(f"--dpkgopt=path-exclude=/usr/share/{folder}/*" for folder in ("doc", "man", "locale")),
               "bookworm", "-", *sources]
    tarball = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    imported = subprocess.run(["docker", "import", "--change", 'CMD ["python3"]', "-", name],
                              stdin=tarball.stdout, capture_output=True, text=True)
    tarball.stdout.close()
    errors = tarball.stderr.read().decode(errors="replace")
    if tarball.wait() or imported.returncode:
        raise EngineError(f"making the base image {name} failed: {errors[-2000:]}{imported.stderr[-2000:]}")


def host_pip_certificates() -> Path | None:
    """The certificate bundle this machine's pip is told to trust (PIP_CERT, pip's `cert` setting,
    SSL_CERT_FILE), or None when pip uses its own."""
    named = os.environ.get("PIP_CERT")
    if not named:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
        settings = dict(line.split("=", 1) for line in listed.stdout.splitlines() if "=" in line)
        named = next((value.strip("'\"") for key, value in settings.items() if key.endswith(".cert")), None)
    named = named or os.environ.get("SSL_CERT_FILE")
    return Path(named) if named and Path(named).is_file() else None


def stage_certificates(bundle: Path | None) -> None:
    """Puts `bundle` where the Dockerfiles' build stage reads extra authorities (none: removes it)."""
    target = CA_FOLDER / "host.crt"
    if bundle is None:
        target.unlink(missing_ok=True)
    else:
        shutil.copyfile(bundle, target)


def build(dockerfile: Path, tag: str, args: dict[str, str], context: Path = ROOT) -> float:
    """Builds `dockerfile` as `tag` with build `args` (BASE_IMAGE among them), pip trusting the host pip's
    certificate authorities; returns the seconds it took. Docker's classic builder: it needs no buildx."""
    stage_certificates(host_pip_certificates())
    started = time.monotonic()
    flags = [part for name, value in args.items() for part in ("--build-arg", f"{name}={value}")]
    done = subprocess.run(["docker", "build", "--file", str(Path(context, dockerfile)), *flags, "--tag", tag,
                           str(context)], capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if done.returncode:
        raise EngineError(f"docker build of {dockerfile} as {tag} failed:\n{done.stdout[-4000:]}"
                          f"{done.stderr[-4000:]}")
    return time.monotonic() - started


def planned_builds(services: dict) -> dict[str, dict]:
    """Each image that the services of a `docker compose config --format json` build, once, with the
    build section of the first service that names it."""
    builds = {}
    for service in services.values():
        if "build" in service:
            builds.setdefault(service["image"], service["build"])
    return builds


def build_services(services: dict) -> dict[str, float]:
    """Builds every image that the compose services build (see `planned_builds`); returns the seconds
    each took."""
    return {tag: build(Path(spec.get("dockerfile", "Dockerfile")), tag, spec.get("args") or {},
                       Path(spec["context"])) for tag, spec in planned_builds(services).items()}


def image_size(tag: str) -> int:
    """The image's size in bytes."""
    return json.loads(docker("image", "inspect", tag).stdout)[0]["Size"]
