"""Dropout that can be switched on during training: off while a CTC model searches for its alignment
(dropout holds it on that plateau: docs/decisions.md#dropout-bound), on once it reads, against
learning a small training set by heart (docs/decisions.md#dropout-after-reading)."""
from __future__ import annotations

import keras

from tasks.modelling.schedule import reads

SWITCH_AT = 0.5  # the share of captchas read (training or validation) at which dropout goes on


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


def dropout_switch(threshold: float = SWITCH_AT):
    """A callback that switches the model's dropout on once it reads `threshold` of its training or
    validation captchas, and logs it; a model without SwitchedDropout layers is left as it is."""
    import logging

    log = logging.getLogger(__name__)

    class DropoutSwitch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            layers = switched_layers(self.model)
            if not layers or dropout_on(self.model) or not reads(logs, threshold):
                return
            set_dropout(self.model, True)
            log.info("train: the model reads %.0f%% of its captchas after epoch %d: dropout on from here",
                     100 * threshold, epoch + 1)

    return DropoutSwitch()
