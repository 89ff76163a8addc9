"""The tf.data input pipeline that reads TFRecord shards into training batches.

files -> interleave(TFRecordDataset, AUTOTUNE) -> [cache] -> [shuffle] -> batch -> parse_example and
reshape, vectorised over the batch, AUTOTUNE -> prefetch(AUTOTUNE).
"""
from __future__ import annotations

CACHE_BYTES = 1 << 30  # records are cached in memory only while they fit in this


def make_dataset(files: list[str], *, height: int, width: int, max_length: int, num_classes: int, arch: str,
                 batch_size: int, training: bool, seed: int = 0, cache: bool = True, with_sha256: bool = False,
                 count: int | None = None, augment_strength=None):
    """Batches of (images float32 (B, H, W, 1) in 0..255, targets) for a model of architecture `arch`.

    Targets are label ids padded with 0 to max_length (crnn) or their one-hot matrices (cnn).
    Records are cached in memory after the first pass when `cache` is set and they fit CACHE_BYTES;
    larger sets stream from the shard files every epoch. With `with_sha256`, each batch also carries the images' content hashes, for reports. `count`, the
    number of records, lets Keras know the epoch length (and is checked while reading).
    `augment_strength`, a tf.Variable, turns on tasks.augment for training batches.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.VarLenFeature(tf.int64),
        "sha256": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(records):
        parsed = tf.io.parse_example(records, spec)
        images = tf.io.decode_raw(parsed["image"], tf.uint8)
        images = tf.cast(tf.reshape(images, [-1, height, width, 1]), tf.float32)
        ids = tf.sparse.to_dense(parsed["label"], default_value=0)
        ids = tf.pad(ids, [[0, 0], [0, max_length - tf.shape(ids)[1]]])
        ids = tf.cast(tf.reshape(ids, [-1, max_length]), tf.int32)
        targets = tf.one_hot(ids, num_classes) if arch == "cnn" else ids
        return (images, targets, parsed["sha256"]) if with_sha256 else (images, targets)

    files_ds = tf.data.Dataset.from_tensor_slices(list(files))
    if training:
        files_ds = files_ds.shuffle(len(files), seed=seed)
    records = files_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                  num_parallel_calls=autotune, deterministic=not training)
    if count is not None:
        records = records.apply(tf.data.experimental.assert_cardinality(count))
    if cache and count is not None and count * (height * width + 100) <= CACHE_BYTES:
        records = records.cache()
    if training:
        records = records.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    batches = records.batch(batch_size).map(parse, num_parallel_calls=autotune)
    if training and augment_strength is not None:
        from tasks.augment import augment_batch

        batches = batches.map(lambda images, *rest: (augment_batch(images, augment_strength), *rest),
                              num_parallel_calls=autotune)
    options = tf.data.Options()
    # Under a multi-worker strategy each worker reads its own shard files, never the same records.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    return batches.prefetch(autotune).with_options(options)
