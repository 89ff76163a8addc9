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
"""
from __future__ import annotations

import logging

from tasks.modelling.schedule import READING, reads

log = logging.getLogger(__name__)

RECOVERIES = ("without-dropout", "fresh-start", "per-position-head")
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
