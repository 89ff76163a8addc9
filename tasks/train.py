"""Stage 4, train: fit the model on the shards, checkpointing every epoch so a killed run resumes.

Writes runs/<run key>/model.keras, model.json (what inference needs to know), history.json and
checkpoint.keras / checkpoint.json (the last finished epoch, for resuming).
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

from tasks.data.shards import default_cache_dir, local_shard_files, read_shard_index
from tasks.pipeline.records import read_stage_result, run_prefix, write_stage_result
from tasks.store import ObjectStore

log = logging.getLogger(__name__)


def model_metadata(index: dict, arch: str) -> dict:
    """What inference needs besides the weights: input size, alphabet, label length, head."""
    return {"arch": arch, "height": index["height"], "width": index["width"], "alphabet": index["alphabet"],
            "max_length": index["max_length"], "num_classes": index["num_classes"],
            "data_version": index["data_version"], "shards": index["cache_key"]}


def _epoch_record(store: ObjectStore, prefix: str, settings: str, history: dict, workdir: Path):
    """A callback that logs one line per epoch and stores the checkpoint and history after each."""
    import keras

    class EpochRecord(keras.callbacks.Callback):
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

    return EpochRecord()


def _resume_point(store: ObjectStore, prefix: str, settings: str, workdir: Path):
    """(checkpoint path, epoch, history) of a matching checkpoint of this run, or None."""
    from tasks.store import MissingObjectError

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
    from tasks.modelling.runtime import import_tensorflow, native_noise_filtered, training_strategy

    import_tensorflow()
    import keras

    from tasks.data.input_pipeline import make_dataset
    from tasks.modelling.architectures import TrainingData, get_architecture
    from tasks.modelling.augment import augmentation_switch
    from tasks.modelling.saving import load_model
    from tasks.modelling.schedule import training_schedule

    started = time.perf_counter()
    shards = read_stage_result(store, cfg.run_key, "build_shards")
    index = read_shard_index(store, shards["cache_key"])
    files = local_shard_files(store, index, cache_dir or default_cache_dir())
    meta = model_metadata(index, cfg.arch)
    architecture = get_architecture(cfg.arch)
    keras.utils.set_random_seed(cfg.seed)
    strategy = strategy or training_strategy()
    batch_size = cfg.batch_size * strategy.num_replicas_in_sync
    shape = dict(height=index["height"], width=index["width"], max_length=index["max_length"],
                 num_classes=index["num_classes"], targets=architecture.targets, batch_size=batch_size,
                 float_pixels=strategy.num_replicas_in_sync > 1)
    counts = index["counts"]
    data = TrainingData(
        train=make_dataset(files["train"], training=True, seed=cfg.seed, count=counts["train"], **shape),
        val=make_dataset(files["val"], training=False, count=counts["val"], **shape),
        probe=make_dataset(files["train"], training=False, cache=False, **shape).take(max(1, 512 // batch_size)))
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
                model = architecture.build(index["height"], index["width"], index["max_length"],
                                           index["num_classes"], counts["train"])
        initial_epoch, history = (resume[1], resume[2]) if resume else (0, {})
        callbacks = [*architecture.callbacks(data), _epoch_record(store, prefix, settings, history, workdir),
                     *training_schedule(cfg.max_train_minutes), augmentation_switch()]
        with native_noise_filtered():
            model.fit(data.train, validation_data=data.val, epochs=cfg.epochs, initial_epoch=initial_epoch,
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
