"""When training slows its learning rate and when it stops: the callbacks of the training schedule.

A CTC model first spends a while on a plateau, emitting nothing while it searches for an alignment of
its columns with the characters; its validation loss barely moves then. Halving the learning rate or
stopping early on that flat stretch would slow or end the search, so both wait until the model first
reads (`after_first_reading`).

The schedule's state (whether the model reads yet, the patience counters and best values, the best
weights) is what a resumed training needs to go on as if never stopped: `state()` exports it after
every epoch, and a schedule made with `resume=` starts from it.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# Full-captcha accuracy, on training or validation images, that counts as reading: docs/decisions.md#training-schedule.
READING = 0.05


def reads(logs: dict | None, threshold: float) -> bool:
    """Whether an epoch's logs show the model reading `threshold` of its training images (`accuracy`,
    read without augmentation) or of its validation images (`val_accuracy`). For crnn these are
    full-captcha accuracies; for cnn, Keras' per-character accuracy."""
    logs = logs or {}
    return max(logs.get("accuracy", 0.0), logs.get("val_accuracy", 0.0)) >= threshold


# A warm start (tasks.modelling.warm_start) fine-tunes a model that reads already: a lower learning rate,
# and patiences (halving, stopping) that fit a few epochs. docs/decisions.md#fine-tuning.
FINE_TUNING_RATE = 3e-4
# A start from a base model reads from its first epoch on a new style, often from a few hundred
# captchas, whose small validation split it soon reads whole: its learning rate halves when the
# training loss stops falling, and it stops 30 epochs after reading the most validation captchas.
# docs/decisions.md#base-model.
PATIENCE = {"from scratch": (5, 20), "fine-tuning": (1, 3), "from a base": (5, 30)}

# The counters and best values of Keras' ReduceLROnPlateau and EarlyStopping that a resume restores.
RESUMED_ATTRIBUTES = ("wait", "best", "best_epoch", "cooldown_counter")


def training_schedule(max_minutes: float, started: float | None = None, resume: dict | None = None,
                      best_weights: list | None = None, start: str = "from scratch", all_read_epochs: int = 0):
    """The schedule's callbacks: from the first reading on, the learning rate halves after 5 epochs
    without a better validation loss and training stops after 20 (keeping the best weights), or
    after 1 and 3 when `start` is "fine-tuning" (from the champion); when it is "from a base", the
    learning rate halves after 5 epochs without a lower training loss and training stops after 30
    without reading more validation captchas (`validation_score`); training also stops, keeping the
    best weights, once every validation and training-probe captcha has been read for
    `all_read_epochs` epochs in a row (`all_read`; 0: never); and training ends after the epoch
    that passes `max_minutes`
    (0: no limit) from `started` (a time.monotonic() reading; default: when training begins).
    `resume` and `best_weights` are the first callback's `state()` and `best_weights()` when
    training stopped."""
    import keras

    # Patiences and factor: docs/decisions.md#training-schedule.
    halving, stopping = PATIENCE[start]
    # From a base, the validation loss is lowest epochs before the most captchas are read, and a
    # small validation split is soon read whole while the training captchas are not yet learnt
    # (docs/decisions.md#base-model): the best epoch is the one that reads the most, and the
    # learning rate follows the training loss.
    scored = start == "from a base"
    halve_on, stop_on = (("loss", "min"), ("val_score", "max")) if scored else (("val_loss", "min"),) * 2
    return [
        after_first_reading([
            *([validation_score()] if scored else []),
            keras.callbacks.ReduceLROnPlateau(monitor=halve_on[0], mode=halve_on[1], factor=0.5, patience=halving,
                                              min_lr=1e-5),
            keras.callbacks.EarlyStopping(monitor=stop_on[0], mode=stop_on[1], patience=stopping,
                                          restore_best_weights=True),
            all_read(all_read_epochs),
        ], threshold=READING, resume=resume, best_weights=best_weights),
        time_limit(max_minutes, started),
    ]


def reads_everything(logs: dict | None) -> bool:
    """Whether an epoch's logs show the model reading every captcha of its training probe and of the
    validation split."""
    logs = logs or {}
    return min(logs.get("accuracy", 0.0), logs.get("val_accuracy", 0.0)) >= 1.0


def all_read(epochs: int):
    """A callback that stops training once the model has read every training-probe and validation
    captcha (`reads_everything`) for `epochs` epochs in a row (0: never): nothing is left that the
    data can teach it, and the best weights are kept as at any other stop. Its count (`wait`) is
    part of the schedule's state."""
    import keras

    class AllRead(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.wait = 0

        def on_epoch_end(self, epoch, logs=None):
            self.wait = self.wait + 1 if reads_everything(logs) else 0
            if epochs and self.wait >= epochs:
                log.info("every training and validation captcha read for %d epochs in a row: training ends "
                         "after epoch %d", self.wait, epoch + 1)
                self.model.stop_training = True

    return AllRead()


def validation_score():
    """A callback that adds `val_score` to an epoch's logs, for the callbacks after it: the share of
    validation captchas read (`val_accuracy`), ties broken by the lower validation loss."""
    import keras

    class ValidationScore(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None and "val_accuracy" in logs and "val_loss" in logs:
                logs["val_score"] = float(logs["val_accuracy"]) - float(logs["val_loss"]) / 1000

    return ValidationScore()


def after_first_reading(callbacks: list, threshold: float = READING, resume: dict | None = None,
                        best_weights: list | None = None):
    """A callback that passes epoch ends on to `callbacks` from the first epoch at which the model reads
    `threshold` of the training (`accuracy`) or validation (`val_accuracy`) images; before that they
    see nothing, so their patience starts counting only then. `state()` is what `resume` takes to
    go on from where it stopped (with `best_weights`, those of an inner EarlyStopping);
    `improved(epoch)` tells whether that epoch's weights are the best so far."""
    import keras

    class AfterFirstReading(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.inner = callbacks
            self.reading = bool(resume and resume["reading"])

        def state(self) -> dict:
            return {"reading": self.reading, "callbacks": [
                {name: _plain(getattr(c, name)) for name in RESUMED_ATTRIBUTES if hasattr(c, name)}
                for c in self.inner]}

        def improved(self, epoch: int) -> bool:
            return any(getattr(c, "best_epoch", None) == epoch and getattr(c, "best_weights", None) is not None
                       for c in self.inner)

        def best_weights(self):
            return next((c.best_weights for c in self.inner if getattr(c, "best_weights", None) is not None), None)

        def set_model(self, model):
            super().set_model(model)
            for callback in self.inner:
                callback.set_model(model)

        def set_params(self, params):
            super().set_params(params)
            for callback in self.inner:
                callback.set_params(params)

        def on_train_begin(self, logs=None):
            for callback in self.inner:
                callback.on_train_begin(logs)  # resets them, so the saved state goes in after
            for callback, saved in zip(self.inner, resume["callbacks"] if resume else []):
                for name, value in saved.items():
                    setattr(callback, name, value)
                if best_weights is not None and hasattr(callback, "best_weights"):
                    callback.best_weights = best_weights

        def on_epoch_end(self, epoch, logs=None):
            if not self.reading:
                if not reads(logs, threshold):
                    return
                self.reading = True
                log.info("the model reads from epoch %d: learning-rate schedule and early stopping start",
                         epoch + 1)
            for callback in self.inner:
                callback.on_epoch_end(epoch, logs)

        def on_train_end(self, logs=None):
            for callback in self.inner:
                callback.on_train_end(logs)

    return AfterFirstReading()


def _plain(value):
    """A JSON-ready copy of a callback attribute (Keras keeps numpy floats)."""
    return None if value is None else float(value) if not isinstance(value, int) else value


def time_limit(minutes: float, started: float | None = None):
    """A callback that ends training after the epoch that passes `minutes` (0: never) from `started`
    (a time.monotonic() reading; default: when training begins)."""
    import keras

    class TimeLimit(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.deadline = (time.monotonic() if started is None else started) + 60 * minutes

        def on_epoch_end(self, epoch, logs=None):
            if minutes and time.monotonic() >= self.deadline:
                log.info("training time limit of %.1f minutes reached after epoch %d", minutes, epoch + 1)
                self.model.stop_training = True

    return TimeLimit()
