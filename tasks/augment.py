"""Augmentation suited to captchas, applied to training batches in the input pipeline.

Small affine jitter (shift, scale, rotation, shear), pixel noise and blur; never flips, which would
change what the text says. Its strength is a variable that training turns up once the model has
started to read (see `AugmentationSwitch`): from the first step it would only slow down the search
for an alignment that CTC training has to make first.
"""
from __future__ import annotations

import math


def augment_batch(images, strength):
    """Augmented float32 copy of a batch of grey images (B, H, W, 1), values 0..255 (uint8 or float);
    strength 0 returns it as is."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    batch, height, width = shape[0], tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def uniform(limit):
        return tf.random.uniform([batch], -limit, limit) * strength

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
    blurred = tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "SAME")
    blur = tf.cast(tf.random.uniform([batch, 1, 1, 1]) < 0.3 * strength, tf.float32)
    images = blur * blurred + (1.0 - blur) * images
    noise = tf.random.normal(tf.shape(images), stddev=6.0) * strength
    return tf.clip_by_value(images + noise, 0.0, 255.0)


def augmentation_switch(strength, threshold: float = 0.5):
    """A callback that turns `strength` (a tf.Variable) to 1 once validation accuracy reaches
    `threshold`, and leaves it there."""
    import keras

    class AugmentationSwitch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if float(strength.numpy()) == 0.0 and (logs or {}).get("val_accuracy", 0.0) >= threshold:
                strength.assign(1.0)

    return AugmentationSwitch()
