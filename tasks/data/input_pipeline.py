"""The tf.data input pipeline that reads TFRecord shards into training batches.

Cached (the data set fits a quarter of the machine's memory): files -> interleave(TFRecordDataset,
AUTOTUNE) -> parse pairs of records into uint8 pixels and label ids -> cache -> [shuffle pairs] ->
rebatch -> [the architecture's targets] -> prefetch. After the first epoch a batch costs a copy: no
parsing, no decoding, no autotuning; the shuffle draws new batches every epoch. Streamed (larger
sets): files -> interleave -> [shuffle] -> batch -> parse_example vectorised over the batch -> the
same last steps, autotuned. Pixels stay uint8 (a quarter of float32's bytes); the model casts them,
and its first layer augments training batches.
"""
from __future__ import annotations

import os
from typing import Callable


def cache_limit_bytes() -> int:
    """Records are cached in memory only while they fit in a quarter of the machine's memory
    (docs/decisions.md#input-pipeline-cache)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def make_dataset(files: list[str], *, height: int, width: int, max_length: int, num_classes: int,
                 targets: Callable | None = None, batch_size: int, training: bool, seed: int = 0,
                 cache: bool = True, with_sha256: bool = False, count: int | None = None, float_pixels: bool = False):
    """Batches of (images (B, H, W, 1), uint8 0..255; targets).

    Targets are label ids padded with 0 to max_length, or what `targets(ids, num_classes)` makes of
    them (an architecture's `targets`: one-hot matrices for the per-position head, say).
    With `cache` (and `count` known and small enough, see cache_limit_bytes) the decoded records are
    kept in memory after the first pass; larger sets stream from the shard files every epoch. With
    `with_sha256`, each batch also carries the images' content hashes, for reports. `count`, the
    number of records, lets Keras know the epoch length (and is checked while reading). `float_pixels`
    casts pixels to float32 in the pipeline (needed under a multi-replica strategy, where Keras'
    own cast of uint8 inputs fails on a replica that gets an empty part of a short last batch).
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.VarLenFeature(tf.int64),
        "sha256": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(records):
        """uint8 pixels and int32 ids padded to max_length (and hashes if wanted) of a batch of records."""
        parsed = tf.io.parse_example(records, spec)
        images = tf.reshape(tf.io.decode_raw(parsed["image"], tf.uint8), [-1, height, width, 1])
        ids = tf.cast(tf.sparse.to_dense(parsed["label"], default_value=0), tf.int32)
        ids = tf.pad(ids, [[0, 0], [0, max_length - tf.shape(ids)[1]]])
        return (images, ids, parsed["sha256"]) if with_sha256 else (images, ids)

    def make_targets(images, ids, *hashes):
        return (images, targets(ids, num_classes), *hashes)

    files_ds = tf.data.Dataset.from_tensor_slices(list(files))
    if training:
        files_ds = files_ds.shuffle(len(files), seed=seed)
    records = files_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                  num_parallel_calls=autotune, deterministic=not training)
    if count is not None:
        records = records.apply(tf.data.experimental.assert_cardinality(count))
    cached = cache and count is not None and count * (height * width + 200) <= cache_limit_bytes()
    if cached:
        # Pairs of records halve tf.data's steps per image (docs/decisions.md#input-pipeline-cache); a
        # batch still draws its pairs afresh every epoch.
        pairs = records.batch(2).map(parse, num_parallel_calls=autotune).cache()
        if training:
            pairs = pairs.shuffle(5_000, seed=seed, reshuffle_each_iteration=True)
        # rebatch forgets the length; restated, Keras knows the epoch's steps from the first epoch on
        # (otherwise it warns that the input "ran out of data" at the end of it).
        batches = pairs.rebatch(batch_size).apply(
            tf.data.experimental.assert_cardinality(-(-count // batch_size)))
    else:
        if training:
            records = records.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
        batches = records.batch(batch_size).map(parse, num_parallel_calls=autotune)
    if targets is not None:
        batches = batches.map(make_targets, num_parallel_calls=autotune)
    if float_pixels:
        batches = batches.map(lambda images, *rest: (tf.cast(images, tf.float32), *rest), num_parallel_calls=autotune)
    options = tf.data.Options()
    # Cached, nothing is left to tune and autotuning costs: docs/decisions.md#input-pipeline-cache.
    options.autotune.enabled = not cached
    # Under a multi-worker strategy each worker reads its own shard files, never the same records.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    return batches.prefetch(autotune).with_options(options)
