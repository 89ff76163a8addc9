"""Augmentation suited to captchas, applied inside the model while it trains.

Small affine jitter (shift, scale, rotation, shear), pixel noise and blur; never flips, which would
change what the text says. It is the model's first layer (`Augmentation`) and acts only in training
calls, on the device that trains (the accelerator of a GPU worker), so the input pipeline stays a
copy of cached batches and never holds the training step back. Inference calls, and the exported
ONNX and SavedModel graphs, pass images through unchanged.

Its strength is a weight of the layer that training turns up once the model has started to read
(see `augmentation_switch`): from the first step it would only slow down the search for an alignment
that CTC training has to make first.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import keras

from tasks.modelling.schedule import reads

LAYER_NAME = "augmentation"


def augment_batch(images, strength):
    """Augmented float32 copy of a batch of grey images (B, H, W, 1), values 0..255 (uint8 or float);
    strength 0 returns it as is."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    batch, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def uniform(limit):
        return tf.random.uniform([batch], -limit, limit) * strength

    # Strengths: docs/decisions.md#augmentation-strengths.
    angle = uniform(2.5 * math.pi / 180)
    shear = uniform(0.15)
    scale = 1.0 + uniform(0.06)
    shift_x, shift_y = uniform(0.04) * width, uniform(0.06) * height
    # Output pixel (x, y) samples the input at (a0 x + a1 y + a2, b0 x + b1 y + b2), about the centre.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1 = cos, -sin + shear
    b0, b1 = sin, cos
    cx, cy = width / 2.0, height / 2.0
    a2 = cx - a0 * cx - a1 * cy - shift_x
    b2 = cy - b0 * cx - b1 * cy - shift_y
    zeros = tf.zeros([batch])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3], fill_value=255.0,
        interpolation="BILINEAR", fill_mode="CONSTANT")

    kernel = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.reshape(tf.tensordot(kernel, kernel, axes=0), [3, 3, 1, 1])
    # Edges padded with their own pixels, not zeros: docs/decisions.md#augmentation-strengths.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
    blur = tf.cast(tf.random.uniform([batch, 1, 1, 1]) < 0.3 * strength, tf.float32)
    images = blur * blurred + (1.0 - blur) * images
    noise = tf.random.normal(tf.shape(images), stddev=6.0) * strength
    return tf.clip_by_value(images + noise, 0.0, 255.0)


@keras.saving.register_keras_serializable(package="captcha")
class Augmentation(keras.layers.Layer):
    """`augment_batch` at the layer's `strength` (a non-trainable weight, 0 at first) in training calls;
    a float32 cast otherwise. Always float32, whatever the model's precision policy."""

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        # The projective transform has no XLA kernel on every device; a model holding it is not jit-compiled.
        self.supports_jit = False
        self.strength = self.add_weight(shape=(), initializer="zeros", trainable=False, name="strength")

    def call(self, images, training=None):
        if not training:
            return keras.ops.cast(images, "float32")
        return augment_batch(images, self.strength)

    def compute_output_shape(self, input_shape):
        return input_shape


def augmentation_layer(model) -> Augmentation | None:
    """The model's Augmentation layer, or None for a model built without one."""
    try:
        layer = model.get_layer(LAYER_NAME)
    except ValueError:
        return None
    return layer if isinstance(layer, Augmentation) else None


@contextmanager
def augmentation_paused(model):
    """Training calls of `model` inside the block see clean images; the strength is restored after."""
    layer = augmentation_layer(model)
    if layer is None:
        yield
        return
    strength = float(keras.ops.convert_to_numpy(layer.strength))
    layer.strength.assign(0.0)
    try:
        yield
    finally:
        layer.strength.assign(strength)


def augmentation_switch(threshold: float = 0.5):
    """A callback that turns the model's augmentation strength to 1 once the model reads `threshold` of
    its training images (`accuracy`, read without augmentation) or of the validation images, and leaves
    it there (a resumed run keeps the strength its checkpoint saved). Watching the training images too
    matters: a model that learns the training captchas by heart never reaches the threshold on the
    validation ones, and without augmentation it never stops learning them by heart
    (docs/decisions.md#augmentation-strengths)."""

    class AugmentationSwitch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            layer = augmentation_layer(self.model)
            if layer is None or float(keras.ops.convert_to_numpy(layer.strength)) != 0.0:
                return
            if reads(logs, threshold):
                layer.strength.assign(1.0)

    return AugmentationSwitch()
