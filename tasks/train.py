"""Stage 4, train: fit the model on the shards, checkpointing every epoch so a killed run resumes.

Writes runs/<run key>/model.keras, model.json (what inference needs to know), history.json and
checkpoint.keras / checkpoint.json (the last finished epoch, for resuming).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from tasks.runs import read_stage_result, run_prefix, write_stage_result
from tasks.shards import local_shard_files, read_shard_index
from tasks.storage import ObjectStore

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Local cache of downloaded shards: CAPTCHA_CACHE_DIR, else ~/.cache/captcha-training."""
    return Path(os.environ.get("CAPTCHA_CACHE_DIR") or Path.home() / ".cache" / "captcha-training")


def model_metadata(index: dict, arch: str) -> dict:
    """What inference needs besides the weights: input size, alphabet, label length, head."""
    return {"arch": arch, "height": index["height"], "width": index["width"], "alphabet": index["alphabet"],
            "max_length": index["max_length"], "num_classes": index["num_classes"],
            "data_version": index["data_version"], "shards": index["cache_key"]}


def _epoch_callbacks(store: ObjectStore, prefix: str, settings: str, history: dict, val_ds, probe_ds,
                     meta: dict, workdir: Path):
    import keras
    import numpy as np

    from tasks.augment import augmentation_paused
    from tasks.decoding import predict_dataset

    class RecalibrateNormalization(keras.callbacks.Callback):
        """Re-estimate the batch-normalisation statistics on clean training images before each
        validation: the running averages gathered during the epoch follow augmented batches and
        weights that kept moving, and inference with them can read far worse than training."""

        def on_train_begin(self, logs=None):
            import tensorflow as tf

            self.forward = tf.function(lambda images: self.model(images, training=True))

        def on_test_begin(self, logs=None):
            with augmentation_paused(self.model):
                for images, _ in probe_ds:
                    self.forward(images)

    class SequenceAccuracy(keras.callbacks.Callback):
        """Full-captcha accuracy as `accuracy` (on a fixed sample of training images, read without
        augmentation) and `val_accuracy` (the validation split): the crnn head has no per-position
        accuracy for Keras to report."""

        def on_epoch_end(self, epoch, logs=None):
            for name, dataset in (("accuracy", probe_ds), ("val_accuracy", val_ds)):
                predicted, true = predict_dataset(self.model, dataset, meta["arch"])
                logs[name] = float(np.mean([p == t for p, t in zip(predicted, true)]))

    class EpochRecord(keras.callbacks.Callback):
        """One log line per epoch; the checkpoint and history stored after each."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            for name, value in logs.items():
                history.setdefault(name, []).append(float(value))
            log.info("epoch %d/%d: %s (%.1f s)", epoch + 1, self.params["epochs"],
                     " ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())), time.perf_counter() - self.started)
            local = workdir / "checkpoint.keras"
            self.model.save(local)
            store.upload_file(local, f"{prefix}checkpoint.keras")
            store.put_json(f"{prefix}checkpoint.json", {"epoch": epoch + 1, "settings": settings,
                                                        "history": history})

    callbacks = [EpochRecord()]
    if meta["arch"] == "crnn":
        callbacks[:0] = [RecalibrateNormalization(), SequenceAccuracy()]
    return callbacks


def _resume_point(store: ObjectStore, prefix: str, settings: str, workdir: Path):
    """(checkpoint path, epoch, history) of a matching checkpoint of this run, or None."""
    from tasks.storage import MissingObjectError

    try:
        state = store.get_json(f"{prefix}checkpoint.json")
        if state.get("settings") != settings:
            return None
        local = workdir / "resume.keras"
        store.download_file(f"{prefix}checkpoint.keras", local)
    except MissingObjectError:
        return None
    return local, int(state["epoch"]), state["history"]


def train(cfg, store: ObjectStore, cache_dir: Path | None = None, strategy=None) -> dict:
    """Train on this run's shards; resume from the run's checkpoint when one with the same settings exists.

    `strategy` (a tf.distribute strategy) defaults to `training_strategy()`: mirrored over the GPUs of a
    multi-GPU worker. The global batch is `batch_size` per replica times the replicas."""
    from tasks.runtime import import_tensorflow, native_noise_filtered, training_strategy

    import_tensorflow()
    import keras

    from tasks.augment import augmentation_switch
    from tasks.dataset import make_dataset
    from tasks.model import build_model, load_model, wants_dropout
    from tasks.schedule import training_schedule

    started = time.perf_counter()
    shards = read_stage_result(store, cfg.run_key, "build_shards")
    index = read_shard_index(store, shards["cache_key"])
    files = local_shard_files(store, index, cache_dir or default_cache_dir())
    meta = model_metadata(index, cfg.arch)
    keras.utils.set_random_seed(cfg.seed)
    strategy = strategy or training_strategy()
    batch_size = cfg.batch_size * strategy.num_replicas_in_sync
    shape = dict(height=index["height"], width=index["width"], max_length=index["max_length"],
                 num_classes=index["num_classes"], arch=cfg.arch, batch_size=batch_size,
                 float_pixels=strategy.num_replicas_in_sync > 1)
    counts = index["counts"]
    train_ds = make_dataset(files["train"], training=True, seed=cfg.seed, count=counts["train"], **shape)
    val_ds = make_dataset(files["val"], training=False, count=counts["val"], **shape)
    probe_ds = make_dataset(files["train"], training=False, cache=False, **shape).take(max(1, 512 // batch_size))
    prefix = run_prefix(cfg.run_key)
    settings = hashlib.sha256(json.dumps([meta, batch_size, cfg.seed]).encode()).hexdigest()[:16]

    with tempfile.TemporaryDirectory(prefix="train-") as tmp:
        workdir = Path(tmp)
        resume = _resume_point(store, prefix, settings, workdir)
        with strategy.scope():
            if resume:
                model = load_model(resume[0], compile=True)
                log.info("resuming from the checkpoint of epoch %d", resume[1])
            else:
                dropout = wants_dropout(counts["train"])
                model = build_model(cfg.arch, index["height"], index["width"], index["max_length"],
                                    index["num_classes"], dropout=dropout)
                if cfg.arch == "crnn":
                    log.info("crnn %s dropout: %d training images", "with" if dropout else "without", counts["train"])
        initial_epoch, history = (resume[1], resume[2]) if resume else (0, {})
        callbacks = _epoch_callbacks(store, prefix, settings, history, val_ds, probe_ds, meta, workdir) + [
            *training_schedule(cfg.max_train_minutes), augmentation_switch()]
        with native_noise_filtered():
            model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
                      callbacks=callbacks, verbose=0, shuffle=False)  # the dataset shuffles itself
        local = workdir / "model.keras"
        model.save(local)
        store.upload_file(local, f"{prefix}model.keras")
    store.put_json(f"{prefix}model.json", meta)
    store.put_json(f"{prefix}history.json", history)
    seconds = time.perf_counter() - started
    epochs_run = len(next(iter(history.values()), []))
    log.info("train: %d epochs in %.1f s, model at %s", epochs_run, seconds, store.url(f"{prefix}model.keras"))
    return write_stage_result(store, cfg.run_key, "train", {
        "model": f"{prefix}model.keras", "metadata": f"{prefix}model.json", "history": f"{prefix}history.json",
        "epochs": epochs_run, "resumed_from_epoch": initial_epoch, "seconds": round(seconds, 1),
        "replicas": strategy.num_replicas_in_sync, "global_batch_size": batch_size,
        "final": {k: round(v[-1], 4) for k, v in history.items()},
    })
