"""Model architectures as plug-ins: each one module, everything the pipeline needs from it behind one
interface (`Architecture`), found by name through one registry.

Built in: `crnn` (the default: conv blocks, two bidirectional LSTMs and a CTC head; any label length)
and `cnn` (the reference tutorial's per-position softmax). Another architecture is an Architecture
subclass registered with `register_architecture` (or the entry-point group
`captcha_training.architectures`); train, evaluate, publish and predict then use it unchanged.

Every architecture takes raw grey pixels (0..255) of shape (height, width, 1) and scales them inside
the model, so inference feeds the preprocessed image as it is; its class 0 means "no character".
"""
from tasks.modelling.architectures.base import (
                                                Architecture,
                                                TrainingData,
                                                architecture_names,
                                                custom_objects,
                                                get_architecture,
                                                register_architecture,
)
from tasks.modelling.architectures.cnn import Cnn
from tasks.modelling.architectures.crnn import Crnn

register_architecture(Crnn())
register_architecture(Cnn())

__all__ = ["Architecture", "TrainingData", "architecture_names", "custom_objects", "get_architecture",
           "register_architecture", "Cnn", "Crnn"]
