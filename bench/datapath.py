"""Data-path benchmark: ingest, shard building, the training input pipeline and a 1% incremental night.

    python -m bench.datapath --data ../shared/datasets/wilhelmy_v2
    python -m bench.datapath --synthetic 200000        # generated in parallel into a temporary folder

Prints one JSON object per line as each figure is measured; the last line holds every figure:
- ingest_file_images_per_s / ingest_s3_images_per_s: ingest into a file:// store, and into an s3://
  store on the test S3 server (moto, over HTTP; on the first --s3-images images);
- build_shards_images_per_s, and the CPU use of both stages (1.0 = every core busy);
- input_images_per_s: the training input pipeline (TFRecord shards -> batches of 16), beside
  tutorial_images_per_s, the tutorial's path-based pipeline (read, decode, resize per image, batch 16,
  prefetch) on the same images, and their ratio; both consumed in the graph, as a training loop
  does (python_loop: the same consumed batch by batch from Python, whose own overhead per batch
  then dominates);
- steps: training steps per second fed by the real pipeline and by the same batches held in memory,
  and their ratio (the best of 7 alternating rounds, the median ratio beside it), with the model's
  augmentation on (as in training); steps_unaugmented: the same with it off;
- peak_rss_mb_ingest / peak_rss_mb_build_shards: each stage's peak memory, run in its own process
  (and the largest of its worker processes, *_workers);
- incremental: ingest + encode_labels + build_shards after 1% new images arrive, against the full
  build of the other 99%.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tasks.pipeline.config import PipelineConfig
from tasks.store import LocalStore

BATCH = 16
STAGE_SCRIPT = """
import json, resource, sys, time
from tasks.pipeline.config import PipelineConfig
from tasks.store import open_store
stage, settings, s3_options = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
cfg = PipelineConfig(**settings)
store = open_store(cfg.store, s3_options)
if stage == "ingest":
    from tasks.ingest import ingest as run
elif stage == "encode_labels":
    from tasks.encode_labels import encode_labels as run
else:
    from tasks.modelling.runtime import import_tensorflow
    from tasks.build_shards import build_shards as run
    import_tensorflow()  # a fixed cost of the process, not of the work measured
def cpu_seconds():  # this process and its finished worker processes
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
def peak_mb():
    # VmHWM is this program's own peak. ru_maxrss is not: Linux carries the peak of the memory a
    # process had before exec into it, and a process started by vfork had its parent's.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started, cpu = time.perf_counter(), cpu_seconds()
result = run(cfg, store)
workers = resource.getrusage(resource.RUSAGE_CHILDREN)
print("RESULT", json.dumps({"result": result, "wall_s": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu,
                            "peak_rss_mb": peak_mb(), "peak_rss_mb_workers": workers.ru_maxrss / 1024}))
"""


def emit(figures: dict, **new) -> None:
    figures.update(new)
    print(json.dumps(new), flush=True)


def run_stage(stage: str, cfg: PipelineConfig, s3_options: dict | None = None) -> dict:
    """Run one stage in a fresh process; its result, wall and CPU seconds and peak memory."""
    done = subprocess.run([sys.executable, "-c", STAGE_SCRIPT, stage, json.dumps(cfg.to_dict()),
                           json.dumps(s3_options or {})], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{stage} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def cpu_use(run: dict) -> float:
    """CPU seconds per wall second per core: 1.0 when every core is busy."""
    return round(run["cpu_s"] / run["wall_s"] / (os.cpu_count() or 1), 2)


def tutorial_dataset(paths: list[str], height: int, width: int):
    """The tutorial's path-based pipeline: read, decode and resize each image, batch 16, prefetch."""
    import tensorflow as tf

    def load(path):
        image = tf.image.decode_image(tf.io.read_file(path), channels=1, expand_animations=False)
        return tf.image.resize(image, [height, width]) / 255.0

    return tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE) \
        .batch(BATCH).prefetch(tf.data.AUTOTUNE)


ROUNDS = 5  # of each images/s measurement
STEP_ROUNDS = 7  # of each steps/s measurement: a round's steps/s on this kind of machine jumps by a fifth


def images_per_s(dataset, images: int) -> dict:
    """Images per second, consumed in the graph (as a training loop consumes batches; the figure
    compared): the best of ROUNDS rounds of enough passes to read at least 30,000 images (3 at least),
    after one warm-up pass, with the rounds' median beside it; and, for reference, from a Python loop
    (one pass)."""
    epochs = max(3, math.ceil(30_000 / images))
    import tensorflow as tf

    def count(ds):
        return int(ds.reduce(tf.constant(0, tf.int64), lambda n, batch: n + tf.shape(batch[0], tf.int64)[0]))

    count(dataset)
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        rates.append(count(dataset.repeat(epochs)) / (time.perf_counter() - started))
    started, images = time.perf_counter(), 0
    for batch in dataset:
        images += int(batch[0].shape[0])
    return {"in_graph": round(max(rates), 1), "in_graph_median": round(statistics.median(rates), 1),
            "python_loop": round(images / (time.perf_counter() - started), 1)}


def steps_per_s(model, dataset, steps: int) -> float:
    """Training steps per second over `steps` steps, after a warm-up epoch of the same length."""
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps / (time.perf_counter() - started)


def measure_input(store: LocalStore, cfg: PipelineConfig, image_paths: list[str], figures: dict,
                  steps: int) -> None:
    """Input pipeline against the tutorial's, and training steps fed by it against batches in memory."""
    from tasks.modelling.runtime import import_tensorflow

    import_tensorflow()
    from tasks.data.input_pipeline import make_dataset
    from tasks.data.shards import local_shard_files, read_shard_index
    from tasks.modelling.architectures import get_architecture
    from tasks.modelling.augment import augmentation_layer, augmentation_paused
    from tasks.pipeline.records import read_stage_result

    index = read_shard_index(store, read_stage_result(store, cfg.run_key, "build_shards")["cache_key"])
    files = local_shard_files(store, index, Path(tempfile.gettempdir()))
    shape = dict(height=index["height"], width=index["width"], max_length=index["max_length"],
                 num_classes=index["num_classes"], batch_size=BATCH)
    ours = make_dataset(files["train"], training=True, count=index["counts"]["train"], **shape)
    train_images = index["counts"]["train"]
    mine = images_per_s(ours, train_images)
    tutorial = images_per_s(tutorial_dataset(image_paths, index["height"], index["width"]), len(image_paths))
    emit(figures, input_images_per_s=mine["in_graph"], tutorial_images_per_s=tutorial["in_graph"],
         ratio=round(mine["in_graph"] / tutorial["in_graph"], 2),
         medians={"input_images_per_s": mine["in_graph_median"], "tutorial_images_per_s": tutorial["in_graph_median"],
                  "ratio": round(mine["in_graph_median"] / tutorial["in_graph_median"], 2)},
         python_loop={"input_images_per_s": mine["python_loop"], "tutorial_images_per_s": tutorial["python_loop"],
                      "ratio": round(mine["python_loop"] / tutorial["python_loop"], 2)})
    model = get_architecture("crnn").build(index["height"], index["width"], index["max_length"], index["num_classes"],
                                           train_images)
    augmentation_layer(model).strength.assign(1.0)
    emit(figures, steps=steps_ratio(model, ours, steps))
    with augmentation_paused(model):
        emit(figures, steps_unaugmented=steps_ratio(model, ours, steps))


def steps_ratio(model, dataset, steps: int) -> dict:
    """Training steps per second fed by `dataset` and by the same batches held in memory."""
    import tensorflow as tf

    real = dataset.repeat()
    full_batches = real.filter(lambda images, targets: tf.shape(images)[0] == BATCH).take(steps)
    in_memory = tf.data.Dataset.from_tensor_slices(tuple(tf.stack(part) for part in zip(*full_batches))).repeat()
    # Alternating rounds; on a shared machine a round can only be slowed, so the best of each is compared.
    rounds = [(steps_per_s(model, real, steps), steps_per_s(model, in_memory, steps)) for _ in range(STEP_ROUNDS)]
    real_rate = max(r for r, _ in rounds)
    memory_rate = max(m for _, m in rounds)
    return {"real": round(real_rate, 2), "memory": round(memory_rate, 2), "ratio": round(real_rate / memory_rate, 3),
            "median_ratio": round(statistics.median(r for r, _ in rounds) / statistics.median(m for _, m in rounds), 3),
            "rounds": [[round(r, 2), round(m, 2)] for r, m in rounds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a folder of labelled captcha images")
    source.add_argument("--synthetic", type=int, help="generate this many synthetic captchas instead")
    parser.add_argument("--s3-images", type=int, default=5000, help="images ingested into the s3:// store")
    parser.add_argument("--steps", type=int, default=50, help="training steps per steps/s measurement")
    parser.add_argument("--height", type=int, default=50)
    parser.add_argument("--width", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    figures: dict = {"machine": f"{os.cpu_count()} CPU cores", "batch_size": BATCH}
    with tempfile.TemporaryDirectory(prefix="bench-datapath-") as tmp:
        work = Path(tmp)
        landing, later = work / "landing", work / "later"
        if args.data:
            figures["dataset"] = args.data.name
            shutil.copytree(args.data, landing, ignore=shutil.ignore_patterns(".*", "README*"))
        else:
            from tasks.data.synthetic import SyntheticSpec, generate

            figures["dataset"] = f"synthetic {args.synthetic}"
            landing.mkdir()
            started = time.perf_counter()
            for name, data in generate(SyntheticSpec.parse(f"synthetic://?count={args.synthetic}&seed=5")):
                (landing / name).write_bytes(data)
            emit(figures, generate_images_per_s=round(args.synthetic / (time.perf_counter() - started), 1))
        images = sorted(p for p in landing.iterdir() if p.is_file())
        figures["images"] = len(images)
        # 1% arrives later: held back from the first, full build.
        later.mkdir()
        for path in images[::100]:
            path.rename(later / path.name)
        base = dict(source=str(landing), height=args.height, width=args.width, max_refused_fraction=0.5)

        store = LocalStore(work / "store")
        cfg = PipelineConfig(run_key="full", store=store.uri, **base)
        full = {stage: run_stage(stage, cfg) for stage in ("ingest", "encode_labels", "build_shards")}
        emit(figures, ingest_file_images_per_s=round(full["ingest"]["result"]["seen"] / full["ingest"]["wall_s"], 1),
             ingest_cpu_use=cpu_use(full["ingest"]), peak_rss_mb_ingest=round(full["ingest"]["peak_rss_mb"], 1),
             peak_rss_mb_ingest_workers=round(full["ingest"]["peak_rss_mb_workers"], 1))
        built = full["build_shards"]
        emit(figures, build_shards_images_per_s=round(built["result"]["images"] / built["wall_s"], 1),
             build_shards_cpu_use=cpu_use(built), peak_rss_mb_build_shards=round(built["peak_rss_mb"], 1),
             peak_rss_mb_build_shards_workers=round(built["peak_rss_mb_workers"], 1))

        for path in later.iterdir():
            path.rename(landing / path.name)
        grown = PipelineConfig(run_key="plus1pct", store=store.uri, **base)
        night = {stage: run_stage(stage, grown) for stage in ("ingest", "encode_labels", "build_shards")}
        full_s = sum(r["wall_s"] for r in full.values())
        night_s = sum(r["wall_s"] for r in night.values())
        emit(figures, incremental={
            "new_images": night["ingest"]["result"]["new_images"], "full_build_s": round(full_s, 2),
            "incremental_s": round(night_s, 2), "fraction_of_full": round(night_s / full_s, 3),
            "stages_s": {stage: round(r["wall_s"], 2) for stage, r in night.items()},
            "shard_files_written": night["build_shards"]["result"]["files_written"],
            "shard_files_reused": night["build_shards"]["result"]["files_reused"]})

        measure_input(store, grown, [str(p) for p in sorted(landing.iterdir())], figures, args.steps)
        emit(figures, ingest_s3_images_per_s=measure_s3_ingest(landing, work, base, args.s3_images))
    print(json.dumps({"summary": "datapath", **figures}), flush=True)


def measure_s3_ingest(landing: Path, work: Path, base: dict, count: int) -> float:
    """Ingest the first `count` images into an s3:// store on a local moto server; images per second."""
    import logging

    from moto.server import ThreadedMotoServer

    from tasks.store.s3 import make_s3_client

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    subset = work / "s3-subset"
    subset.mkdir()
    for path in sorted(landing.iterdir())[:count]:
        os.link(path, subset / path.name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1",
                   "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        make_s3_client(options).create_bucket(Bucket="bench")
        cfg = PipelineConfig(**{**base, "source": str(subset)}, run_key="s3", store="s3://bench/store")
        run = run_stage("ingest", cfg, options)
    finally:
        server.stop()
    return round(run["result"]["seen"] / run["wall_s"], 1)


if __name__ == "__main__":
    main()
