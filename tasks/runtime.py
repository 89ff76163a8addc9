"""TensorFlow start-up for the stages that need it: quiet logs, the device strategy, precision."""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def import_tensorflow():
    """Import TensorFlow with its C++ and Python start-up chatter kept below WARNING."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import absl.logging
    import tensorflow as tf

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def training_strategy():
    """Mirrored over all GPUs when there are several, the default device otherwise.

    On a GPU, mixed precision (float16 compute, float32 weights and outputs) is turned on.
    """
    tf = import_tensorflow()
    import keras

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    log.info("training on %s (%d replica(s))", f"{len(gpus)} GPU(s)" if gpus else "CPU",
             strategy.num_replicas_in_sync)
    return strategy
