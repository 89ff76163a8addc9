"""Serving formats of a trained Keras model: ONNX (for onnxruntime) and a TensorFlow SavedModel
(for TF Serving). Both take the same input as the .keras model: grey pixels 0..255, (B, H, W, 1)."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _call_once(model) -> None:
    # Keras exports only models that have been called; a freshly loaded one has not.
    import numpy as np

    model(np.zeros((1, *model.input_shape[1:]), dtype=np.float32), training=False)


def export_onnx(model, path: Path) -> Path:
    """Write `model` as ONNX to `path`."""
    _call_once(model)
    model.export(str(path), format="onnx", verbose=False)
    return path


def export_saved_model(model, folder: Path) -> Path:
    """Write `model` as a SavedModel with a `serve` signature to `folder`."""
    _call_once(model)
    model.export(str(folder), format="tf_saved_model", verbose=False)
    return folder
