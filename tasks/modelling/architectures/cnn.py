"""`cnn`: the reference tutorial's network: two conv/pool blocks, a 1000-unit dense layer and a softmax
per character position, trained with categorical_crossentropy on one-hot labels (`text2vec`)."""
from __future__ import annotations

from tasks.modelling.architectures.base import Architecture


class Cnn(Architecture):
    name = "cnn"
    description = "the tutorial's per-position softmax"

    def build(self, height: int, width: int, max_length: int, num_classes: int, train_images: int):
        import keras
        from keras import layers

        from tasks.modelling.augment import LAYER_NAME, Augmentation

        model = keras.Sequential([
            layers.Input((height, width, 1), name="image"),
            Augmentation(name=LAYER_NAME),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Flatten(), layers.Dense(1000, activation="relu"),
            layers.Dense(max_length * num_classes), layers.Reshape([max_length, num_classes]),
            layers.Softmax(dtype="float32"),
        ], name="cnn")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def targets(self, ids, num_classes: int):
        import tensorflow as tf

        return tf.one_hot(ids, num_classes)

    def decode(self, output) -> list[list[int]]:
        from tasks.modelling.decoding import decode_per_position

        return decode_per_position(output)
