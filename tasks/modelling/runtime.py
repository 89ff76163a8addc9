"""TensorFlow start-up for the stages that need it: quiet logs, the device strategy, precision."""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)
# TensorFlow's C++ notices that TF_CPP_MIN_LOG_LEVEL does not reach (they are printed before its
# logging starts, by oneDNN, or by the graph optimiser when it gives up on a loop whose shapes vary,
# as CTC's does with labels of several lengths): a task log would show them as errors.
NATIVE_NOISE = re.compile(r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
                          r"oneDNN supports DT_BOOL only|'tfg\.While' op body function argument .* is not compatible")


@contextmanager
def native_noise_filtered():
    """While inside, whatever is written to file descriptor 2 passes through a filter that drops the
    lines NATIVE_NOISE matches; everything else reaches stderr unchanged."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not NATIVE_NOISE.search(line.decode(errors="replace")):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, name="native-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's write end: the pump reads to the end and stops
        thread.join()
        os.close(saved)


def import_tensorflow():
    """Import TensorFlow with its C++ and Python start-up chatter kept below WARNING."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import absl.logging

    with native_noise_filtered():
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
