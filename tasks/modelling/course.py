"""Changing course when training stalls.

A model that has not started to read (see `schedule.reads`) after `stall_epochs` epochs of one
attempt (twice as many when the change would throw its weights away: `patience_before`) is
changed, unless its validation loss is still falling (by FALLING over the last FALL_WINDOW epochs:
a model on its way off the plateau reads a few epochs later; one stuck on it moves by less than
1%), in which case it gets up to twice that patience. The change is the first
of these that has not been tried and applies:

1. `without-dropout`: the same model and weights with its dropout switched off (dropout can hold a
   CTC model on its alignment plateau: docs/decisions.md#dropout-bound) until it reads
   (tasks.modelling.dropout);
2. `fresh-start`: a new initialisation from another seed, without dropout;
3. `per-position-head`: the `cnn` architecture's per-position softmax, which has no alignment to
   search for, where every label has the same length.

Training goes on from the epoch it had reached, within the same time limit; every change is logged
and recorded with its reason (the train stage's result, its checkpoint and the model card).

A model that learns its training captchas by heart instead of reading (its training probe GAP above
its validation read for GAP_EPOCHS epochs, validation under GENERALISES) gets, once, augmentation at
STRONGER_AUGMENTATION times its strength, without stopping (`stronger-augmentation`:
docs/decisions.md#learning-by-heart).
"""
from __future__ import annotations

import logging

from tasks.modelling.schedule import READING, reads

log = logging.getLogger(__name__)

RECOVERIES = ("without-dropout", "fresh-start", "per-position-head")
GAP = 0.3
GAP_EPOCHS = 3
GENERALISES = 0.9
STRONGER_AUGMENTATION = 2.0
# Leaving the plateau: docs/decisions.md#changing-course.
FALLING = 0.02
FALL_WINDOW = 3


def leaving_plateau(losses: list[float]) -> bool:
    """Whether the last of `losses` (one per epoch) is at least FALLING below the one FALL_WINDOW epochs before."""
    return len(losses) > FALL_WINDOW and losses[-1] <= (1 - FALLING) * losses[-1 - FALL_WINDOW]


def stall_watch(stall_epochs: int):
    """A callback that stops training once `stall_epochs` epochs have passed without the model reading
    (0: never) and its validation loss is not falling, or twice as many whatever the loss does;
    `stalled` then says so."""
    import keras

    class StallWatch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stalled = False
            self.epochs_without_reading = 0
            self.reading = False
            self.losses: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            if self.reading or reads(logs, READING):
                self.reading = True
                return
            self.epochs_without_reading += 1
            self.losses.append(logs.get("val_loss", logs.get("loss", 0.0)))
            if not stall_epochs or self.epochs_without_reading < stall_epochs:
                return
            if leaving_plateau(self.losses) and self.epochs_without_reading < 2 * stall_epochs:
                log.info("train: nothing read after %d epochs, but the validation loss fell from %.2f to %.2f "
                         "in %d epochs: still leaving the plateau, so training goes on", self.epochs_without_reading,
                         self.losses[-1 - FALL_WINDOW], self.losses[-1], FALL_WINDOW)
                return
            self.stalled = True
            self.model.stop_training = True

    return StallWatch()


def generalisation_watch(record, done: bool = False):
    """A callback that turns the augmentation to STRONGER_AUGMENTATION once the training probe has read
    GAP more than validation for GAP_EPOCHS epochs in a row while validation reads under GENERALISES,
    and records it with `record(epoch, action, reason)`; once a run (`done`: it has been)."""
    import keras

    from tasks.modelling.augment import augmentation_layer

    class GeneralisationWatch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.done, self.epochs_apart = done, 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            probe, val = logs.get("accuracy", 0.0), logs.get("val_accuracy", 0.0)
            self.epochs_apart = self.epochs_apart + 1 if probe - val >= GAP and val < GENERALISES else 0
            layer = augmentation_layer(self.model)
            if self.done or layer is None or self.epochs_apart < GAP_EPOCHS:
                return
            layer.strength.assign(STRONGER_AUGMENTATION)
            self.done = True
            record(epoch + 1, "stronger-augmentation",
                   f"the training probe read {probe:.0%} and validation {val:.0%} (a gap of {GAP:.0%} or more "
                   f"for {GAP_EPOCHS} epochs): learning by heart")

    return GeneralisationWatch()


def restarted(course: list[dict]) -> bool:
    """Whether a change of course in `course` threw the weights away (or kept them but for dropout):
    training then goes on as from scratch."""
    return any(change["action"] in RECOVERIES for change in course)


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


def patience_before(model, arch: str, course: list[dict], label_lengths: list[int], stall_epochs: int) -> int:
    """Epochs without reading before the next change of course: `stall_epochs` when that change keeps
    the weights (dropout off), twice as many when it starts again (a slow plateau is more often
    left by waiting than by a fresh start: docs/decisions.md#changing-course)."""
    action = next_recovery(model, arch, [change["action"] for change in course], label_lengths)
    return stall_epochs if action in (None, "without-dropout") else 2 * stall_epochs


def has_dropout(model) -> bool:
    """Whether the dropout of `model` is on."""
    from tasks.modelling.dropout import dropout_on

    return dropout_on(model)


def without_dropout(model):
    """`model` with its dropout switched off, in place: same weights, same optimizer state."""
    from tasks.modelling.dropout import set_dropout

    set_dropout(model, False)
    return model
