"""Read captchas with a published model.

    python -m tasks.predict --model MODEL IMAGE_OR_FOLDER...

MODEL is a store root URI or folder (the model that models/latest.json points to is used), a
published model folder (models/<version>/), or a .keras file with its model.json beside it.
Prints one line per image: `<path>\t<predicted text>`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from tasks.images import ImageRejected, preprocess_bytes
from tasks.sources import IMAGE_SUFFIXES


class ModelNotFound(FileNotFoundError):
    """MODEL names nothing that holds a published model."""


def _local_model_files(path: Path) -> tuple[Path, dict]:
    if path.is_file() and path.suffix == ".keras":
        meta_path = path.with_name("model.json")
        if not meta_path.is_file():
            raise ModelNotFound(f"{path} has no model.json beside it")
        return path, json.loads(meta_path.read_text())
    if (path / "model.keras").is_file():
        return _local_model_files(path / "model.keras")
    if (path / "models" / "latest.json").is_file():
        latest = json.loads((path / "models" / "latest.json").read_text())
        return _local_model_files(path / latest["model"])
    raise ModelNotFound(f"{path} is neither a store with models/latest.json, a model folder, nor a .keras file")


def resolve_model(model: str, workdir: Path) -> tuple[Path, dict]:
    """(local .keras path, metadata) of the model that `model` names; remote files go into `workdir`."""
    parsed = urlparse(model)
    if parsed.scheme == "s3":
        from tasks.storage import MissingObjectError, open_store

        store = open_store(model)
        try:
            latest = store.get_json("models/latest.json")
        except MissingObjectError:
            raise ModelNotFound(f"{model} has no models/latest.json: nothing has been published there") from None
        local = workdir / "model.keras"
        store.download_file(latest["model"], local)
        return local, store.get_json(latest["metadata"])
    path = Path(parsed.path if parsed.scheme == "file" else model).expanduser()
    if not path.exists():
        raise ModelNotFound(f"{model} does not exist")
    return _local_model_files(path)


def image_paths(arguments: list[str]) -> list[Path]:
    """The image files named, folders expanded to the images they hold (sorted)."""
    paths = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(path)
    return paths


class KerasReader:
    """Reads preprocessed batches with the .keras model."""

    def __init__(self, model_path: Path):
        from tasks.model import load_model
        from tasks.runtime import import_tensorflow

        import_tensorflow()
        self.model = load_model(model_path)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch))


def read_captchas(reader, meta: dict, paths: list[Path], batch_size: int = 64):
    """Yield (path, text or None, error or None) for each image path."""
    from tasks.decoding import decode_output
    from tasks.labels import Alphabet

    alphabet = Alphabet(meta["alphabet"])
    for start in range(0, len(paths), batch_size):
        chunk, arrays, failures = paths[start:start + batch_size], [], {}
        for path in chunk:
            try:
                arrays.append(preprocess_bytes(path.read_bytes(), meta["height"], meta["width"]))
            except (OSError, ImageRejected) as error:
                failures[path] = str(error)
        readable = [p for p in chunk if p not in failures]
        texts = {}
        if readable:
            batch = np.stack(arrays)[..., None].astype(np.float32)
            texts = dict(zip(readable, (alphabet.decode(ids) for ids in decode_output(meta["arch"], reader(batch)))))
        for path in chunk:
            yield path, texts.get(path), failures.get(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="store URI/folder, model folder, or .keras file")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    args = parser.parse_args(argv)
    paths = image_paths(args.images)
    if not paths:
        parser.error("no image files found in " + " ".join(args.images))
    with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
        try:
            model_path, meta = resolve_model(args.model, Path(tmp))
        except ModelNotFound as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        reader = KerasReader(model_path)
        status = 0
        for path, text, error in read_captchas(reader, meta, paths):
            if error:
                print(f"error: {path}: {error}", file=sys.stderr)
                status = 1
            else:
                print(f"{path}\t{text}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
