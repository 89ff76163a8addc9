"""The interface an architecture implements, and the registry that finds one by name."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tasks.pipeline.plugins import Registry


@dataclass(frozen=True)
class TrainingData:
    """The datasets a training run feeds, each of (images, targets) batches: `train` (shuffled),
    `val` (the validation split) and `probe` (a fixed sample of training images, read in order)."""

    train: object
    val: object
    probe: object


class Architecture(ABC):
    """What the pipeline needs from one model architecture.

    `name` is what the `arch` setting says; `description` one line for the trigger form. Keras and
    TensorFlow are imported inside the methods that need them (the DAG and ONNX inference import
    this module without them).
    """

    name: str = ""
    description: str = ""

    @abstractmethod
    def build(self, height: int, width: int, max_length: int, num_classes: int, train_images: int):
        """A compiled Keras model for images of (height, width, 1) and labels of up to `max_length`
        ids among `num_classes` (class 0 included); `train_images` is the training set's size. A
        shape it cannot read raises ValueError saying which setting to change."""

    def targets(self, ids, num_classes: int):
        """The training targets of a batch of label ids (B, max_length) int32, padded with 0, as a
        TensorFlow op in the input pipeline. Default: the ids themselves."""
        return ids

    @abstractmethod
    def decode(self, output) -> list[list[int]]:
        """Label ids (no 0) per image from the model's raw output (a NumPy array): NumPy only, so
        inference needs no TensorFlow."""

    def callbacks(self, data: TrainingData) -> list:
        """Keras callbacks this architecture wants while it trains (after the pipeline's own)."""
        return []

    def custom_objects(self) -> dict:
        """Objects a saved model of this architecture needs to load (its loss, say), by name."""
        return {}


ARCHITECTURES: Registry[Architecture] = Registry("architecture", "captcha_training.architectures")


def register_architecture(architecture: Architecture, replace: bool = False) -> Architecture:
    """Make `architecture` available under its name (the `arch` setting)."""
    if not architecture.name:
        raise ValueError(f"architecture {type(architecture).__name__} has no name")
    return ARCHITECTURES.register(architecture.name, architecture, replace=replace)


def architecture_names() -> list[str]:
    """Names the `arch` setting accepts, the default first."""
    return ARCHITECTURES.names()


def get_architecture(name: str) -> Architecture:
    """The architecture registered as `name`; ValueError naming the known ones otherwise."""
    architecture = ARCHITECTURES.get(name)
    if architecture is None:
        raise ValueError(f"unknown architecture {name!r}; choose one of {architecture_names()} "
                         "(or register it: tasks.modelling.architectures.register_architecture)")
    return architecture


def custom_objects() -> dict:
    """What every registered architecture needs to load its saved models."""
    merged: dict = {}
    for name in architecture_names():
        merged.update(ARCHITECTURES.get(name).custom_objects())
    return merged
