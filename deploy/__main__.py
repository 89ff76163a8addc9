"""Builds the deployment's images on this machine, with the engine, base image and certificate
authorities it needs (see deploy/__init__.py):

    python -m deploy build          # docker/Dockerfile   -> captcha-training-airflow:latest
    python -m deploy build --gpu    # docker/Dockerfile.gpu -> captcha-training-airflow-gpu:latest, then
                                    # checks that its TensorFlow imports and is built with CUDA
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from deploy.engine import EngineError, start_engine
from deploy.images import ROOT, base_image, build, image_size

IMAGES = {False: ("docker/Dockerfile", "captcha-training-airflow:latest"),
          True: ("docker/Dockerfile.gpu", "captcha-training-airflow-gpu:latest")}
CUDA_CHECK = "import tensorflow as tf; print(tf.__version__, tf.test.is_built_with_cuda())"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="build an image of docker/")
    build_command.add_argument("--gpu", action="store_true", help="the GPU worker's image (docker/Dockerfile.gpu)")
    args = parser.parse_args(argv)
    dockerfile, tag = IMAGES[args.gpu]
    try:
        engine = start_engine(Path(tempfile.gettempdir()) / "captcha-dockerd.log")
    except EngineError as error:
        print(f"python -m deploy: {error}", file=sys.stderr)
        return 1
    try:
        base = base_image()
        seconds = build(Path(dockerfile), tag, {"BASE_IMAGE": base})
        print(f"{tag}: built from {base} in {seconds / 60:.1f} min, {image_size(tag) / 1e9:.2f} GB")
        if args.gpu:
            checked = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python", tag, "-c", CUDA_CHECK],
                                     capture_output=True, text=True, cwd=ROOT)
            print(f"{tag}: tensorflow, built with CUDA: {checked.stdout.strip()}{checked.stderr[-2000:]}")
            return checked.returncode
        return 0
    except EngineError as error:
        print(f"python -m deploy: {error}", file=sys.stderr)
        return 1
    finally:
        engine.stop()


if __name__ == "__main__":
    sys.exit(main())
