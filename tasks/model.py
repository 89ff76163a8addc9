"""Model architectures.

- `cnn`: the reference tutorial's network: two conv/pool blocks, a 1000-unit dense layer and a softmax
  per character position, trained with categorical_crossentropy on one-hot labels.
- `crnn`: conv blocks, two bidirectional LSTMs over the image columns (dropout around them when the
  training set is small, see `wants_dropout`) and a CTC head that reads labels of any length up to the
  time steps available. It outputs logits (CTC needs them, not probabilities).

Both take raw grey pixels (0..255) of shape (height, width, 1) and scale them inside the model, so
inference feeds the preprocessed image as it is. Their first layer augments training batches
(tasks.augment) and passes images through unchanged at inference.
"""
from __future__ import annotations

ARCHITECTURES = ("crnn", "cnn")

# Dropout guards small training sets: without it, one of three seeds learned wilhelmy_v2's 741
# training captchas by heart and never generalised. On larger sets it only slows learning: on 7,007
# upper-case captchas the model with dropout first read at epoch 19 (without: epoch 8) and read 85.4%
# of the test captchas after 50 minutes (without: 98.1% after 40); on 4,216 mixed-case ones it still
# read nothing after 14 epochs. The bound lies between what was measured on both sides.
DROPOUT_BELOW_IMAGES = 2_000


def wants_dropout(train_images: int) -> bool:
    """Whether a crnn trained on `train_images` images is built with dropout around its LSTMs."""
    return train_images < DROPOUT_BELOW_IMAGES


def build_model(arch: str, height: int, width: int, max_length: int, num_classes: int, dropout: bool = True):
    """A compiled Keras model; `num_classes` counts class 0 ("no character"). `dropout` applies to
    crnn (see `wants_dropout`); the tutorial's cnn has none."""
    import keras

    if arch == "cnn":
        model = _build_cnn(height, width, max_length, num_classes)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                      metrics=["accuracy"])
    elif arch == "crnn":
        model = _build_crnn(height, width, num_classes, dropout)
        time_steps = model.output_shape[1]
        if time_steps < 2 * max_length:
            raise ValueError(f"crnn reads {time_steps} columns at width {width}, too few for labels of "
                             f"{max_length} characters; use a larger width")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ctc_loss)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
    return model


def _build_cnn(height: int, width: int, max_length: int, num_classes: int):
    import keras
    from keras import layers

    from tasks.augment import LAYER_NAME, Augmentation

    return keras.Sequential([
        layers.Input((height, width, 1), name="image"),
        Augmentation(name=LAYER_NAME),
        layers.Rescaling(1 / 255.0),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dense(1000, activation="relu"),
        layers.Dense(max_length * num_classes), layers.Reshape([max_length, num_classes]), layers.Softmax(dtype="float32"),
    ], name="cnn")


def _build_crnn(height: int, width: int, num_classes: int, dropout: bool):
    import keras
    from keras import layers

    from tasks.augment import LAYER_NAME, Augmentation

    inputs = layers.Input((height, width, 1), name="image")
    x = Augmentation(name=LAYER_NAME)(inputs)
    x = layers.Rescaling(1 / 255.0)(x)
    for filters, pool in ((16, (2, 2)), (32, (2, 2)), (64, (2, 1))):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        # A short memory for the running statistics: with the default 0.99 they lag far behind the
        # weights in the first epochs, and inference reads much worse than training.
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(pool)(x)
    x = layers.Permute((2, 1, 3))(x)  # columns become time steps
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)

    def regularised(x, rate):
        # Dropout outside the LSTMs, so cuDNN still runs them.
        return layers.Dropout(rate)(x) if dropout else x

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


def load_model(path, compile: bool = False):
    """Load a .keras model in Keras' safe mode (no arbitrary code); compile=True restores the optimizer."""
    import keras

    import tasks.augment  # noqa: F401  registers the Augmentation layer for deserialisation

    return keras.models.load_model(path, custom_objects={"ctc_loss": ctc_loss}, compile=compile, safe_mode=True)
