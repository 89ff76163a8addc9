"""Stage 4, train: fit the model on the shards, checkpointing every epoch so a killed run resumes.

Writes runs/<run key>/model.keras, model.json (what inference needs to know), history.json and
checkpoint.keras / checkpoint.json (the last finished epoch, for resuming) with best.keras (the best
weights so far). A run whose setup is the champion's starts from the champion's weights and
fine-tunes (tasks.modelling.warm_start), else a run with a `base` starts from the base's weights
(tasks.registry.bases); the result names the parent version or base, or why there is none.
An interrupted try resumes where it stopped: its weights, optimizer and
learning rate, the schedule's patience and best weights, and the time already spent, so all the
tries of a run together train for at most `max_train_minutes`. A training that finished marks its
checkpoint complete: running the task again (clearing it in Airflow) trains again instead of resuming.
"""
from __future__ import annotations

import dataclasses
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
    """What inference needs besides the weights: input size and preprocessing, alphabet, label length, head."""
    return {"arch": arch, "height": index["height"], "width": index["width"],
            "preprocessing": index.get("preprocessing", "grey"), "alphabet": index["alphabet"],
            "max_length": index["max_length"], "num_classes": index["num_classes"],
            "data_version": index["data_version"], "shards": index["cache_key"]}


def _epoch_record(store: ObjectStore, prefix: str, settings: str, state: dict, workdir: Path, schedule,
                  clock_started: float):
    """A callback that logs one line per epoch and stores the checkpoint and `state` (epoch, history,
    architecture and course changes, the schedule's state, training time so far) after each, the
    weights as best.keras when they are the schedule's best so far, and the epoch's figures as
    TensorBoard events (runs/<run>/tensorboard/). It must come after the schedule's
    callbacks, so that what it stores includes the epoch just ended."""
    import keras

    class EpochRecord(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            import tensorflow as tf

            self.events = workdir / "tensorboard"
            self.writer = tf.summary.create_file_writer(str(self.events))

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            logs = dict(logs or {})
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            log.info("epoch %d/%d: %s (%.1f s)", epoch + 1, self.params["epochs"],
                     " ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())), seconds)
            logs["epoch_seconds"] = seconds  # for time-to-accuracy figures
            for name, value in logs.items():
                state["history"].setdefault(name, []).append(float(value))
            state["epoch"] = epoch + 1
            state["elapsed_seconds"] = time.monotonic() - clock_started
            state["schedule"] = schedule.state()
            local = workdir / "checkpoint.keras"
            self.model.save(local)
            store.upload_file(local, f"{prefix}checkpoint.keras")
            if schedule.improved(epoch):
                store.upload_file(local, f"{prefix}best.keras")
            store.put_json(f"{prefix}checkpoint.json", {**state, "settings": settings})
            self.write_events(epoch + 1, logs)

        def write_events(self, step: int, logs: dict) -> None:
            """The epoch's figures as TensorBoard scalars, in the run's tensorboard/ folder of the store."""
            import tensorflow as tf
            from tensorflow.core.framework.summary_pb2 import SummaryMetadata

            # TensorBoard's scalar format, written with TensorFlow's own op: the viewer is not needed here.
            scalar = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
            with self.writer.as_default(step=step):
                for name, value in logs.items():
                    tf.summary.write(name, tf.constant(float(value), tf.float32), metadata=scalar)
            self.writer.flush()
            for path in self.events.iterdir():
                store.upload_file(path, f"{prefix}tensorboard/{path.name}")

    return EpochRecord()


def _resume_point(store: ObjectStore, prefix: str, settings: str, workdir: Path):
    """(checkpoint path, its state, best weights or None) of an interrupted training of this run
    with the same settings, or None. The state holds the epoch reached, the history, the
    architecture trained, the course changes made, the schedule's state and the time spent so far."""
    from tasks.modelling.saving import load_model
    from tasks.store import MissingObjectError

    try:
        state = store.get_json(f"{prefix}checkpoint.json")
        if state.get("settings") != settings:
            return None
        if state.get("complete"):
            log.info("train: this run's training finished before (%d epochs): training again, not resuming it",
                     state["epoch"])
            return None
        local = workdir / "resume.keras"
        store.download_file(f"{prefix}checkpoint.keras", local)
        best = None
        # best.keras holds the schedule's best weights once it has some (a fresh start or a change of
        # course starts a schedule without, and best.keras is rewritten at its first best).
        if _best_epoch(state.get("schedule")) is not None:
            store.download_file(f"{prefix}best.keras", workdir / "best.keras")
            best = load_model(workdir / "best.keras").get_weights()
    except MissingObjectError:
        return None
    return local, state, best


def _best_epoch(schedule_state: dict | None) -> int | None:
    """The epoch (from 1) whose weights the schedule keeps as its best, or None before it has any."""
    stopping = [c for c in (schedule_state or {}).get("callbacks", []) if "best_epoch" in c]
    return stopping[0]["best_epoch"] + 1 if stopping and stopping[0].get("best") is not None else None


def train(cfg, store: ObjectStore, cache_dir: Path | None = None, strategy=None) -> dict:
    """Train on this run's shards; resume from the run's checkpoint when one with the same settings exists.

    A model that does not start to read within `cfg.stall_epochs` epochs changes course (see
    tasks.modelling.course), within the same time limit. `strategy` (a tf.distribute strategy)
    defaults to `training_strategy()`: mirrored over the GPUs of a multi-GPU worker. The global batch
    is `batch_size` per replica times the replicas."""
    from tasks.modelling.runtime import import_tensorflow, native_noise_filtered, training_strategy

    import_tensorflow()
    import keras

    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.augment import augmentation_switch
    from tasks.modelling.dropout import dropout_switch
    from tasks.modelling.course import generalisation_watch, patience_before, restarted, stall_watch
    from tasks.modelling.saving import load_model
    from tasks.modelling.schedule import training_schedule

    started = time.perf_counter()
    shards = read_stage_result(store, cfg.run_key, "build_shards")
    label_lengths = read_stage_result(store, cfg.run_key, "encode_labels")["label_lengths"]
    index = read_shard_index(store, shards["cache_key"])
    files = local_shard_files(store, index, cache_dir or default_cache_dir())
    keras.utils.set_random_seed(cfg.seed)
    strategy = strategy or training_strategy()
    batch_size = cfg.batch_size * strategy.num_replicas_in_sync
    prefix = run_prefix(cfg.run_key)
    meta = model_metadata(index, cfg.arch)
    settings = hashlib.sha256(json.dumps([meta, batch_size, cfg.seed]).encode()).hexdigest()[:16]

    with tempfile.TemporaryDirectory(prefix="train-") as tmp:
        workdir = Path(tmp)
        resume = _resume_point(store, prefix, settings, workdir)
        state = resume[1] if resume else {"epoch": 0, "history": {}, "arch": cfg.arch, "course": []}
        state.setdefault("arch", cfg.arch)
        state.setdefault("course", [])
        # The time limit counts every try of this run: a resumed try has what the others left.
        clock_started = time.monotonic() - state.get("elapsed_seconds", 0.0)
        schedule_state, best_weights = (state.get("schedule"), resume[2]) if resume else (None, None)
        architecture = get_architecture(state["arch"])
        data = _training_data(files, index, architecture, batch_size, cfg.seed, strategy)
        with strategy.scope():
            if resume:
                model = load_model(resume[0], compile=True)
                log.info("resuming from the checkpoint of epoch %d (%.0f s of training spent, %s)", state["epoch"],
                         state.get("elapsed_seconds", 0.0), "no best weights yet" if best_weights is None
                         else f"with the best weights so far, of epoch {_best_epoch(schedule_state)}")
            else:
                model = architecture.build(index["height"], index["width"], index["max_length"],
                                           index["num_classes"], index["counts"]["train"])
                state["parent"] = _start_from_parent(store, model, meta, cfg, workdir)
        parent = state.get("parent") or {}
        start = "fine-tuning" if parent.get("version") else "from a base" if parent.get("base") else "from scratch"
        initial_epoch = state["epoch"]
        while True:
            out_of_time = cfg.max_train_minutes and time.monotonic() >= clock_started + 60 * cfg.max_train_minutes
            if out_of_time:
                log.info("train: the %.1f minutes of training time are spent; keeping the best weights so far",
                         cfg.max_train_minutes)
                if best_weights is not None:
                    model.set_weights(best_weights)
                break
            watch = stall_watch(patience_before(model, architecture.name, state["course"], label_lengths,
                                                cfg.stall_epochs))
            schedule = training_schedule(cfg.max_train_minutes, clock_started, schedule_state, best_weights,
                                         start="from scratch" if restarted(state["course"]) else start,
                                         all_read_epochs=cfg.all_read_epochs)
            record = _course_recorder(state, architecture.name)
            done = {change["action"] for change in state["course"]}
            callbacks = [*architecture.callbacks(data), *schedule, augmentation_switch(),
                         dropout_switch(record=record, undone="dropout-off-again" in done),
                         generalisation_watch(record, done="stronger-augmentation" in done), watch,
                         _epoch_record(store, prefix, settings, state, workdir, schedule[0], clock_started)]
            if not model.optimizer.built:  # its variables made now, not in the first step, which is then traced once
                with strategy.scope():
                    model.optimizer.build(model.trainable_variables)
            with native_noise_filtered():
                model.fit(data.train, validation_data=data.val, epochs=cfg.epochs, initial_epoch=state["epoch"],
                          callbacks=callbacks, verbose=0, shuffle=False)  # the dataset shuffles itself
            schedule_state, best_weights = None, None  # a change of course starts a new schedule
            out_of_time = cfg.max_train_minutes and time.monotonic() >= clock_started + 60 * cfg.max_train_minutes
            if not watch.stalled or out_of_time or state["epoch"] >= cfg.epochs:
                break
            change = _change_course(model, architecture, state, label_lengths, index, cfg, strategy,
                                    time.perf_counter() - started, watch.epochs_without_reading)
            if change is None:
                log.info("train: the model still reads nothing after epoch %d and every change of course "
                         "has been tried; training goes on as it is", state["epoch"])
                cfg = dataclasses.replace(cfg, stall_epochs=0)
                continue
            model, architecture = change
            data = _training_data(files, index, architecture, batch_size, cfg.seed, strategy)
        local = workdir / "model.keras"
        model.save(local)
        store.upload_file(local, f"{prefix}model.keras")
    # Done: running the task again trains again instead of resuming.
    store.put_json(f"{prefix}checkpoint.json", {**state, "settings": settings, "complete": True})
    history = state["history"]
    store.put_json(f"{prefix}model.json", model_metadata(index, architecture.name))
    store.put_json(f"{prefix}history.json", history)
    seconds = time.perf_counter() - started
    epochs_run = len(next(iter(history.values()), []))
    log.info("train: %d epochs in %.1f s, model at %s", epochs_run, seconds, store.url(f"{prefix}model.keras"))
    return write_stage_result(store, cfg.run_key, "train", {
        "model": f"{prefix}model.keras", "metadata": f"{prefix}model.json", "history": f"{prefix}history.json",
        "epochs": epochs_run, "resumed_from_epoch": initial_epoch, "seconds": round(seconds, 1),
        "training_seconds_all_tries": round(state.get("elapsed_seconds", 0.0), 1),
        "replicas": strategy.num_replicas_in_sync, "global_batch_size": batch_size, "arch": architecture.name,
        "course": state["course"], "best_epoch": _best_epoch(state.get("schedule")),
        "parent": state.get("parent") or {"version": None, "why": "trained before lineage was recorded"},
        "final": {k: round(v[-1], 4) for k, v in history.items()},
    })


def _start_from_parent(store: ObjectStore, model, meta: dict, cfg, workdir: Path) -> dict:
    """Give `model` the champion's weights where its setup is this run's (and lower its learning rate
    for fine-tuning), else the weights of the base `cfg.base` resolves to (tasks.registry.bases.resolve_base),
    if any; return the lineage:
    {"version": the parent version or None, "base": the base version (when started from one), "why"}."""
    from tasks.modelling.saving import load_model
    from tasks.modelling.schedule import FINE_TUNING_RATE
    from tasks.modelling.warm_start import transfer_weights, warm_start_parent

    champion, why = warm_start_parent(store, meta, cfg.warm_start)
    if champion is not None:
        store.download_file(champion["model"], workdir / "parent.keras")
        _, kept = transfer_weights(model, load_model(workdir / "parent.keras"), all_or_nothing=True)
        if kept:
            champion, why = None, f"the champion {champion['version']}'s layers {kept} do not fit this model"
    if champion is not None:
        model.optimizer.learning_rate.assign(FINE_TUNING_RATE)
        log.info("train: fine-tuning from the champion %s: %s", champion["version"], why)
        return {"version": champion["version"], "why": why}
    from tasks.registry.bases import resolve_base

    base, base_why = resolve_base(cfg, store)
    if base:
        return _start_from_base(store, model, meta, base, f"{why}; {base_why}", workdir)
    why = f"{why}; {base_why}"
    log.info("train: from scratch: %s", why)
    return {"version": None, "why": why}


def _start_from_base(store: ObjectStore, model, meta: dict, base: dict, why: str, workdir: Path) -> dict:
    """Give `model` the weights of the base `base` (its record) that fit it, the head by character;
    return the lineage."""
    from tasks.modelling.saving import load_model
    from tasks.modelling.warm_start import transfer_weights

    store.download_file(base["model"], workdir / "base.keras")
    copied, kept = transfer_weights(model, load_model(workdir / "base.keras"),
                                    alphabets=(base["alphabet"], meta["alphabet"]))
    why = (f"{why}; from the base {base['version']}: {copied} layers copied"
           + (f", kept as built: {', '.join(kept)}" if kept else ""))
    log.info("train: %s", why)
    return {"version": None, "base": base["version"], "why": why}


def _training_data(files: dict, index: dict, architecture, batch_size: int, seed: int, strategy):
    """The datasets one architecture trains on (its own targets)."""
    from tasks.data.input_pipeline import make_dataset
    from tasks.modelling.architectures import TrainingData

    shape = dict(height=index["height"], width=index["width"], max_length=index["max_length"],
                 num_classes=index["num_classes"], targets=architecture.targets, batch_size=batch_size,
                 float_pixels=strategy.num_replicas_in_sync > 1)
    counts = index["counts"]
    return TrainingData(
        train=make_dataset(files["train"], training=True, seed=seed, count=counts["train"], **shape),
        val=make_dataset(files["val"], training=False, count=counts["val"], **shape),
        probe=make_dataset(files["train"], training=False, cache=False, **shape).take(max(1, 512 // batch_size)))


def _course_recorder(state: dict, arch: str):
    """record(epoch, action, reason): a change of course made during an epoch's end, kept in `state`
    (and so in the checkpoint, the stage's result and the model card) and logged."""
    def record(epoch: int, action: str, reason: str) -> None:
        state["course"].append({"epoch": epoch, "action": action, "reason": reason, "arch": arch})
        log.info("train: changing course after epoch %d: %s, because of %s", epoch, action, reason)

    return record


def _change_course(model, architecture, state: dict, label_lengths: list[int], index: dict, cfg, strategy,
                   seconds: float, epochs_without_reading: int):
    """Apply the next recovery to a stalled model: (new model, its architecture), recorded in `state`
    and logged; None when none is left."""
    import keras

    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.course import next_recovery, without_dropout

    tried = [change["action"] for change in state["course"]]
    action = next_recovery(model, architecture.name, tried, label_lengths)
    if action is None:
        return None
    reason = (f"no reading after {epochs_without_reading} epochs of {architecture.name} "
              f"(epoch {state['epoch']}, {seconds / 60:.1f} min into training)")
    with strategy.scope():
        if action == "without-dropout":
            model = without_dropout(model)
        else:
            if action == "per-position-head":
                architecture = get_architecture("cnn")
            keras.utils.set_random_seed(cfg.seed + 1 + len(tried))
            model = architecture.build(index["height"], index["width"], index["max_length"], index["num_classes"],
                                       index["counts"]["train"])
            model = without_dropout(model) if action == "fresh-start" else model
    state["course"].append({"epoch": state["epoch"], "action": action, "reason": reason, "arch": architecture.name})
    state["arch"] = architecture.name
    log.info("train: changing course after epoch %d: %s, because of %s", state["epoch"], action, reason)
    return model, architecture

