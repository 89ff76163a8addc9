"""Training callbacks an architecture may ask for (see Architecture.callbacks)."""
from __future__ import annotations

import keras
import numpy as np

from tasks.modelling.augment import augmentation_paused
from tasks.modelling.decoding import predict_dataset


class RecalibrateNormalization(keras.callbacks.Callback):
    """Re-estimate the batch-normalisation statistics on clean training images (`probe`) before each
    validation: the running averages gathered during the epoch follow augmented batches and weights
    that kept moving (docs/decisions.md#batch-normalisation-recalibration)."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        self.forward = tf.function(lambda images: self.model(images, training=True))

    def on_test_begin(self, logs=None):
        with augmentation_paused(self.model):
            for images, _ in self.probe:
                self.forward(images)


class SequenceAccuracy(keras.callbacks.Callback):
    """Full-captcha accuracy as `accuracy` (on `probe`, training images read without augmentation)
    and `val_accuracy` (on `val`); both datasets yield (images, label ids), which `decode` reads the
    model's output into."""

    def __init__(self, probe, val, decode):
        super().__init__()
        self.datasets = {"accuracy": probe, "val_accuracy": val}
        self.decode = decode

    def on_epoch_end(self, epoch, logs=None):
        for name, dataset in self.datasets.items():
            predicted, true = predict_dataset(self.model, dataset, self.decode)
            logs[name] = float(np.mean([p == t for p, t in zip(predicted, true)]))
