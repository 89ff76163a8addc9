"""Dropout that starts when the model first reads.

A CTC model first searches for an alignment of its image columns with the characters; dropout noise
on the features it searches with makes that search several times longer (on 7,000 upper-case JPEG
captchas, 20 epochs instead of a handful). Once the model reads, dropout is what keeps it from learning
a thousand training captchas by heart. So the model's dropout layers start inactive and the training
schedule turns them on at the first reading (tasks.schedule).
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="captcha")
class ScheduledDropout(keras.layers.Layer):
    """Dropout at `rate` in training calls once `active` (a non-trainable weight, 0 at first) is 1;
    the identity before that and at inference."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.active = self.add_weight(shape=(), initializer="zeros", trainable=False, name="active")

    def call(self, inputs, training=None):
        if not training:
            return inputs
        rate = keras.ops.cast(self.rate * self.active, inputs.dtype)
        kept = keras.random.uniform(keras.ops.shape(inputs), seed=self.seed_generator) >= rate
        return inputs * keras.ops.cast(kept, inputs.dtype) / (1 - rate)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def start_dropout(model) -> int:
    """Turn on every ScheduledDropout layer of `model`; return how many there are."""
    layers = [layer for layer in model.layers if isinstance(layer, ScheduledDropout)]
    for layer in layers:
        layer.active.assign(1.0)
    return len(layers)


def dropout_starter():
    """A callback that turns the model's dropout on at its first epoch end; the training schedule
    passes it epoch ends only from the first reading on."""

    class DropoutStarter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            start_dropout(self.model)

    return DropoutStarter()
