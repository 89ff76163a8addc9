"""Read captchas with a published model.

    python -m tasks.serving.predict --model MODEL IMAGE_OR_FOLDER...

MODEL is a store root URI or folder (the model that models/latest.json points to is used), a
published model folder (models/<version>/), or a .keras/.onnx file with its model.json beside it.
The ONNX model is used through onnxruntime when it is there (no TensorFlow import on that path),
the .keras model otherwise. Prints one line per image: `<path>\t<predicted text>`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import urlparse

import numpy as np

from tasks.data.images import ImageRejected, preprocess_bytes
from tasks.data.sources import IMAGE_SUFFIXES
from tasks.registry import LATEST
from tasks.store import check_key


class ModelNotFound(FileNotFoundError):
    """MODEL names nothing that holds a published model."""


@dataclass(frozen=True)
class ModelFiles:
    meta: dict
    onnx: Path | None
    keras: Path | None


def _model_folder(folder: Path) -> ModelFiles:
    meta_path = folder / "model.json"
    if not meta_path.is_file():
        raise ModelNotFound(f"{folder} has no model.json")
    onnx, keras_file = folder / "model.onnx", folder / "model.keras"
    if not onnx.is_file() and not keras_file.is_file():
        raise ModelNotFound(f"{folder} has neither model.onnx nor model.keras")
    return ModelFiles(json.loads(meta_path.read_text()), onnx if onnx.is_file() else None,
                      keras_file if keras_file.is_file() else None)


def _local_model(path: Path) -> ModelFiles:
    if path.is_file() and path.suffix in (".keras", ".onnx"):
        files = _model_folder(path.parent)
        return ModelFiles(files.meta, path if path.suffix == ".onnx" else None,
                          path if path.suffix == ".keras" else None)
    if (path / "model.json").is_file():
        return _model_folder(path)
    if (path / LATEST).is_file():
        latest = json.loads((path / LATEST).read_text())
        return _model_folder(path / check_key(latest["folder"].rstrip("/")))  # a key read back is checked too
    raise ModelNotFound(f"{path} is neither a store with models/latest.json, a model folder, nor a model file")


def download_model(store, folder: str, workdir: Path) -> ModelFiles:
    """Copy a published model's metadata and its ONNX file (else its .keras file) out of a store."""
    names = ["model.json", "model.onnx" if store.exists(f"{folder}model.onnx") else "model.keras"]
    for name in names:
        store.download_file(f"{folder}{name}", workdir / name)
    return _model_folder(workdir)


def resolve_model(model: str, workdir: Path) -> ModelFiles:
    """The files of the model that `model` names; remote files are downloaded into `workdir`."""
    from tasks.registry.versions import read_champion
    from tasks.store import open_store, store_schemes

    parsed = urlparse(model)
    if parsed.scheme in store_schemes() and parsed.scheme != "file":
        store = open_store(model)
        champion = read_champion(store)[0]
        if champion is None:
            raise ModelNotFound(f"{model} has no models/latest.json: nothing has been published there")
        return download_model(store, champion["folder"], workdir)
    path = Path(parsed.path if parsed.scheme == "file" else model).expanduser()
    if not path.exists():
        raise ModelNotFound(f"{model} does not exist")
    return _local_model(path)


class OnnxReader:
    """Runs the ONNX model with onnxruntime on the CPU."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: batch})[0]


class KerasReader:
    """Runs the .keras model (loaded in safe mode)."""

    def __init__(self, path: Path):
        from tasks.modelling.runtime import import_tensorflow
        from tasks.modelling.saving import load_model

        import_tensorflow()
        self.model = load_model(path)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch))


def open_reader(files: ModelFiles):
    """The ONNX reader when the model has an ONNX file, else the Keras one."""
    return OnnxReader(files.onnx) if files.onnx else KerasReader(files.keras)


def read_images(reader, meta: dict, items: Iterable[tuple[object, bytes]], batch_size: int = 64) -> Iterator[tuple]:
    """Yield (key, text or None, error or None) for each (key, image bytes or None if unreadable)."""
    from tasks.data.labels import Alphabet
    from tasks.modelling.architectures import get_architecture

    alphabet = Alphabet(meta["alphabet"])
    decode = get_architecture(meta["arch"]).decode
    items = iter(items)
    while True:
        chunk = [item for _, item in zip(range(batch_size), items)]
        if not chunk:
            return
        arrays, failures = [], {}
        for index, (_, data) in enumerate(chunk):
            if data is None:
                failures[index] = "the file cannot be read"
                continue
            try:
                arrays.append(preprocess_bytes(data, meta["height"], meta["width"], meta.get("preprocessing", "grey")))
            except ImageRejected as error:
                failures[index] = str(error)
        texts = []
        if arrays:
            batch = np.stack(arrays)[..., None].astype(np.float32)
            texts = [alphabet.decode(ids) for ids in decode(reader(batch))]
        texts = iter(texts)
        for index, (key, _) in enumerate(chunk):
            yield (key, None, failures[index]) if index in failures else (key, next(texts), None)


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


def _read_files(paths: list[Path]) -> Iterator[tuple[Path, bytes | None]]:
    for path in paths:
        try:
            yield path, path.read_bytes()
        except OSError:
            yield path, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.serving.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="store URI/folder, model folder, or .keras/.onnx file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    args = parser.parse_args(argv)
    paths = image_paths(args.images)
    if not paths:
        parser.error("no image files found in " + " ".join(args.images))
    with tempfile.TemporaryDirectory(prefix="predict-") as tmp:
        try:
            files = resolve_model(args.model, Path(tmp))
        except ModelNotFound as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        reader = open_reader(files)
        status = 0
        for path, text, error in read_images(reader, files.meta, _read_files(paths), args.batch_size):
            if error:
                print(f"error: {path}: {error}", file=sys.stderr)
                status = 1
            else:
                print(f"{path}\t{text}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
