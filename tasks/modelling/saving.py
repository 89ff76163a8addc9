"""Loading saved .keras models, whatever their architecture."""
from __future__ import annotations


def load_model(path, compile: bool = False):
    """Load a .keras model in Keras' safe mode (no arbitrary code); compile=True restores the optimizer."""
    import keras

    import tasks.modelling.augment  # noqa: F401  registers the Augmentation layer for deserialisation
    import tasks.modelling.dropout  # noqa: F401  and the SwitchedDropout layer
    from tasks.modelling.architectures import custom_objects

    return keras.models.load_model(path, custom_objects=custom_objects(), compile=compile, safe_mode=True)
