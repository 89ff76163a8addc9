"""Dropout that can be switched on during training: off while a CTC model searches for its alignment
(dropout holds it on that plateau: docs/decisions.md#dropout-bound), on once it reads, against
learning a small training set by heart (docs/decisions.md#dropout-after-reading), and off again,
for good, where it undoes what the model had learnt."""
from __future__ import annotations

import keras

from tasks.modelling.schedule import reads

SWITCH_AT = 0.5  # the share of captchas read (training or validation) at which dropout goes on
# Dropout goes off again when the training probe reads less than UNDONE of what it read when dropout
# went on, for UNDONE_EPOCHS epochs in a row.
UNDONE = 0.5
UNDONE_EPOCHS = 2


@keras.saving.register_keras_serializable(package="captcha")
class SwitchedDropout(keras.layers.Layer):
    """Dropout at `rate` in training calls while the layer's `on` weight (non-trainable, saved with the
    model) is 1; nothing while it is 0. Changing `on` needs no rebuild and keeps the optimizer's state."""

    def __init__(self, rate: float, on: bool = False, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.initially_on, self.seed = rate, on, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.on = self.add_weight(shape=(), initializer="ones" if on else "zeros", trainable=False, name="on")

    def call(self, inputs, training=None):
        if not training:
            return inputs
        # Switched off, it draws no random numbers: a model searching its alignment trains at full speed.
        return keras.ops.cond(self.on > 0, lambda: self._dropped(inputs), lambda: inputs)

    def _dropped(self, inputs):
        keep = keras.ops.cast(1.0 - self.rate, inputs.dtype)
        kept = keras.random.uniform(keras.ops.shape(inputs), seed=self.seed_generator, dtype=inputs.dtype) < keep
        return keras.ops.where(kept, inputs / keep, keras.ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "on": self.initially_on, "seed": self.seed}


def switched_layers(model) -> list[SwitchedDropout]:
    return [layer for layer in model.layers if isinstance(layer, SwitchedDropout)]


def set_dropout(model, on: bool) -> None:
    """Switch every SwitchedDropout layer of `model` on or off, in place."""
    for layer in switched_layers(model):
        layer.on.assign(1.0 if on else 0.0)


def dropout_on(model) -> bool:
    """Whether any dropout layer of `model` drops anything now."""
    return any(float(keras.ops.convert_to_numpy(layer.on)) > 0 for layer in switched_layers(model)) or any(
        type(layer).__name__ == "Dropout" and layer.rate > 0 for layer in model.layers)


def dropout_switch(threshold: float = SWITCH_AT, record=None, undone: bool = False):
    """A callback that switches the model's dropout on once it reads `threshold` of its training or
    validation captchas, and logs it; a model without SwitchedDropout layers is left as it is. Where
    the training probe then falls below UNDONE of its level at the switch for UNDONE_EPOCHS epochs,
    dropout goes off for the rest of the run, recorded as `dropout-off-again` with
    `record(epoch, action, reason)`; `undone` says it has gone off so before (it stays off)."""
    import logging

    log = logging.getLogger(__name__)

    class DropoutSwitch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.level, self.epochs_undone = None, 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            layers = switched_layers(self.model)
            if not layers or undone:
                return
            if dropout_on(self.model):
                self._watch(epoch, logs)
                return
            if not reads(logs, threshold):
                return
            set_dropout(self.model, True)
            self.level = logs.get("accuracy", 0.0)
            log.info("train: the model reads %.0f%% of its captchas after epoch %d: dropout on from here",
                     100 * threshold, epoch + 1)

        def _watch(self, epoch: int, logs: dict) -> None:
            """Dropout off for good where it has undone what the training probe read (a resumed run,
            whose level at the switch is not known, is not watched)."""
            if self.level is None or record is None:
                return
            below = logs.get("accuracy", 0.0) < UNDONE * self.level
            self.epochs_undone = self.epochs_undone + 1 if below else 0
            if self.epochs_undone < UNDONE_EPOCHS:
                return
            nonlocal undone
            set_dropout(self.model, False)
            undone = True
            record(epoch + 1, "dropout-off-again",
                   f"the training probe read {logs.get('accuracy', 0.0):.0%} for {UNDONE_EPOCHS} epochs after "
                   f"dropout went on at {self.level:.0%}")

    return DropoutSwitch()
