"""Seconds per training epoch of the default crnn, with its dropout layers in each form side by side:

    python -m bench.epoch_time [--height 32] [--width 128] [--images 1120] [--epochs 4] [--batch-size 16]

- `switched-off`: SwitchedDropout layers switched off (how a model searches its alignment),
- `switched-on`: the same layers switched on (after it reads),
- `keras-dropout`: keras' own Dropout layers at the same rates (the baseline),
- `none`: no dropout layers at all.

Every variant trains the same network on the same random images and labels (Adam, CTC), one
after another in one process; the first epoch (tracing) is left out and the median of the rest printed.
"""
from __future__ import annotations

import argparse
import statistics
import time

VARIANTS = ("switched-off", "switched-on", "keras-dropout", "none")


def network(variant: str, height: int, width: int, num_classes: int):
    """The crnn network with its dropout layers in the form `variant`, compiled as training does."""
    import keras

    from tasks.modelling.architectures.crnn import build_network, ctc_loss
    from tasks.modelling.dropout import SwitchedDropout, set_dropout

    model = build_network(height, width, num_classes, dropout=variant == "switched-on")
    if variant in ("keras-dropout", "none"):
        def replace(layer):
            if not isinstance(layer, SwitchedDropout):
                return layer.__class__.from_config(layer.get_config())
            rate = layer.rate if variant == "keras-dropout" else 0.0
            return keras.layers.Dropout(rate) if rate else keras.layers.Identity()

        model = keras.models.clone_model(model, clone_function=replace)
    else:
        set_dropout(model, variant == "switched-on")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ctc_loss)
    return model


def epoch_seconds(model, images, labels, epochs: int, batch_size: int = 16) -> list[float]:
    """Wall seconds of each of `epochs` training epochs of `model`."""
    import keras

    seconds, started = [], []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - started[-1])

    model.fit(images, labels, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[Clock()])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--images", type=int, default=1120)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16, help="the pipeline's default: 16")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args()

    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.height, args.width, 1)).astype("float32")
    labels = rng.integers(1, 33, (args.images, 6)).astype("int32")
    print(f"{args.images} images {args.height}x{args.width}, batch {args.batch_size}, {args.epochs} epochs, "
          "first left out")
    print(f"{'variant':<14} {'s/epoch (median)':>16} {'all epochs':>30}")
    for variant in args.variants:
        seconds = epoch_seconds(network(variant, args.height, args.width, 34), images, labels, args.epochs,
                                args.batch_size)
        steady = seconds[1:] or seconds
        print(f"{variant:<14} {statistics.median(steady):>16.2f} {' '.join(f'{s:.2f}' for s in seconds):>30}",
              flush=True)


if __name__ == "__main__":
    main()
