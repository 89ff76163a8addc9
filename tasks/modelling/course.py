"""Changing course when training stalls.

A model that has not started to read (see `schedule.reads`) after `stall_epochs` epochs of one
attempt is changed by the first of these that has not been tried and applies:

1. `without-dropout`: the same model and weights with its dropout turned off (dropout can hold a
   CTC model on its alignment plateau: docs/decisions.md#dropout-bound);
2. `fresh-start`: a new initialisation from another seed, without dropout;
3. `per-position-head`: the `cnn` architecture's per-position softmax, which has no alignment to
   search for, where every label has the same length.

Training goes on from the epoch it had reached, within the same time limit; every change is logged
and recorded with its reason (the train stage's result, its checkpoint and the model card).
"""
from __future__ import annotations

import logging

from tasks.modelling.schedule import READING, reads

log = logging.getLogger(__name__)

RECOVERIES = ("without-dropout", "fresh-start", "per-position-head")


def stall_watch(stall_epochs: int):
    """A callback that stops training once `stall_epochs` epochs have passed without the model reading
    (0: never); `stalled` then says so."""
    import keras

    class StallWatch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stalled = False
            self.epochs_without_reading = 0
            self.reading = False

        def on_epoch_end(self, epoch, logs=None):
            if self.reading or reads(logs, READING):
                self.reading = True
                return
            self.epochs_without_reading += 1
            if stall_epochs and self.epochs_without_reading >= stall_epochs:
                self.stalled = True
                self.model.stop_training = True

    return StallWatch()


def next_recovery(model, arch: str, tried: list[str], label_lengths: list[int]) -> str | None:
    """The first recovery not in `tried` that applies to `model` (of architecture `arch`), or None."""
    for name in RECOVERIES:
        if name in tried:
            continue
        if name == "without-dropout" and not has_dropout(model):
            continue
        if name == "per-position-head" and (arch == "cnn" or len(set(label_lengths)) != 1):
            continue
        return name
    return None


def has_dropout(model) -> bool:
    """Whether any Dropout layer of `model` drops anything."""
    return any(type(layer).__name__ == "Dropout" and layer.rate > 0 for layer in model.layers)


def without_dropout(model):
    """A copy of `model` with every Dropout rate set to 0 (the layers stay, so the weights match),
    compiled as `model` was, with a fresh optimizer state."""
    import keras

    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "Dropout":
            layer["config"]["rate"] = 0.0
    with keras.saving.custom_object_scope(_custom_objects()):
        copy = type(model).from_config(config)
        copy.compile_from_config(model.get_compile_config())
    copy.set_weights(model.get_weights())
    return copy


def _custom_objects() -> dict:
    import tasks.modelling.augment  # noqa: F401  registers the Augmentation layer
    from tasks.modelling.architectures import custom_objects

    return custom_objects()
