"""`crnn`, the default: conv blocks, two bidirectional LSTMs over the image columns (dropout around them
when the training set is small, see `wants_dropout`) and a CTC head that reads labels of any length up
to the time steps available. It outputs logits (CTC needs them, not probabilities)."""
from __future__ import annotations

import logging

from tasks.modelling.architectures.base import Architecture, TrainingData

log = logging.getLogger(__name__)

# Small training sets only: docs/decisions.md#dropout-bound.
DROPOUT_BELOW_IMAGES = 1_000
# More time steps per character than this only slow the LSTMs: docs/decisions.md#time-steps.
MAX_STEPS_PER_CHARACTER = 12


def wants_dropout(train_images: int) -> bool:
    """Whether a crnn trained on `train_images` images is built with dropout around its LSTMs."""
    return train_images < DROPOUT_BELOW_IMAGES


def columns_per_step(width: int, max_length: int) -> int:
    """Image columns per LSTM time step: 4, or 8 where 4 would give more than
    MAX_STEPS_PER_CHARACTER steps per character of the longest label (wide images, short labels)."""
    return 8 if width // 4 > MAX_STEPS_PER_CHARACTER * max_length else 4


class Crnn(Architecture):
    name = "crnn"
    description = "CNN + BiLSTM + CTC, any label length"

    def build(self, height: int, width: int, max_length: int, num_classes: int, train_images: int):
        import keras

        dropout = wants_dropout(train_images)
        columns = columns_per_step(width, max_length)
        log.info("crnn %s dropout (%d training images), one time step per %d columns (%d steps for labels of "
                 "up to %d characters)", "with" if dropout else "without", train_images, columns, width // columns,
                 max_length)
        model = build_network(height, width, num_classes, dropout, columns)
        time_steps = model.output_shape[1]
        if time_steps < 2 * max_length:
            raise ValueError(f"crnn reads {time_steps} columns at width {width}, too few for labels of "
                             f"{max_length} characters; use a larger width")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ctc_loss)
        return model

    def decode(self, output) -> list[list[int]]:
        from tasks.modelling.decoding import decode_ctc_greedy

        return decode_ctc_greedy(output)

    def callbacks(self, data: TrainingData) -> list:
        from tasks.modelling.callbacks import RecalibrateNormalization, SequenceAccuracy

        # Keras has no per-position accuracy for a CTC head: full-captcha accuracy stands in for it.
        return [RecalibrateNormalization(data.probe), SequenceAccuracy(data.probe, data.val, self.decode)]

    def custom_objects(self) -> dict:
        return {"ctc_loss": ctc_loss}


def build_network(height: int, width: int, num_classes: int, dropout: bool, columns: int = 4):
    """The uncompiled crnn network, with dropout around its LSTMs on from the start or switched off,
    reading one time step per `columns` (4 or 8) image columns."""
    import keras
    from keras import layers

    from tasks.modelling.augment import LAYER_NAME, Augmentation
    from tasks.modelling.dropout import SwitchedDropout

    inputs = layers.Input((height, width, 1), name="image")
    x = Augmentation(name=LAYER_NAME)(inputs)
    x = layers.Rescaling(1 / 255.0)(x)
    for filters, pool in ((16, (2, 2)), (32, (2, 2)), (64, (2, columns // 4))):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        # Short memory for the running statistics: docs/decisions.md#batch-normalisation-momentum.
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(pool)(x)
    x = layers.Permute((2, 1, 3))(x)  # columns become time steps
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)

    def regularised(x, rate):
        # Outside the LSTMs, so cuDNN still runs them: docs/decisions.md#dropout-outside-the-lstms.
        # On from the start for small sets, else once the model reads (tasks.modelling.dropout).
        return SwitchedDropout(rate, on=dropout)(x)

    x = regularised(layers.Dense(128, activation="relu")(x), 0.2)
    x = regularised(layers.Bidirectional(layers.LSTM(128, return_sequences=True))(x), 0.25)
    x = regularised(layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x), 0.25)
    logits = layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="crnn")


def ctc_loss(y_true, y_pred):
    """CTC loss of logits `y_pred` (batch, time, classes) against ids `y_true` padded with 0."""
    from keras import ops

    y_true = ops.cast(y_true, "int32")
    label_length = ops.sum(ops.cast(y_true > 0, "int32"), axis=1)
    batch, time_steps = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
    logit_length = ops.full((batch,), time_steps, dtype="int32")
    return ops.ctc_loss(y_true, y_pred, label_length, logit_length, mask_index=0)
