"""The training input pipeline on real TFRecord files: every record once per epoch, batches reshuffled
every epoch, labels padded, and the cached and streamed paths agreeing."""
import numpy as np
import pytest

from tasks.data.shards import serialize_example

HEIGHT, WIDTH, MAX_LENGTH, CLASSES = 4, 6, 3, 5
RECORDS = 45  # three files of 15; batches of 4 leave a short last batch


@pytest.fixture
def shard_files(tmp_path):
    import tensorflow as tf

    files = []
    for part in range(3):
        path = tmp_path / f"train-{part}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i in range(part * 15, part * 15 + 15):
                pixels = bytes([i]) * (HEIGHT * WIDTH)  # each image's pixels say which record it is
                ids = [1 + i % 4] * (1 + i % MAX_LENGTH)  # lengths 1..3
                writer.write(serialize_example(pixels, ids, f"{i:064x}"))
        files.append(str(path))
    return files


def dataset(files, **overrides):
    from tasks.data.input_pipeline import make_dataset

    settings = dict(height=HEIGHT, width=WIDTH, max_length=MAX_LENGTH, num_classes=CLASSES,
                    batch_size=4, training=True, seed=3, count=RECORDS)
    settings.update(overrides)
    return make_dataset(files, **settings)


def epoch(ds) -> list[list[int]]:
    """The record numbers of each batch of one pass, checking each image against its label."""
    batches = []
    for images, ids in ds:
        images, ids = images.numpy(), ids.numpy()
        assert images.dtype == np.uint8 and images.shape[1:] == (HEIGHT, WIDTH, 1)
        numbers = [int(image[0, 0, 0]) for image in images]
        for number, image, row in zip(numbers, images, ids):
            assert (image == number).all()
            length = 1 + number % MAX_LENGTH
            assert list(row) == [1 + number % 4] * length + [0] * (MAX_LENGTH - length)
        batches.append(numbers)
    return batches


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "streamed"])
def test_each_epoch_reads_every_record_once_in_new_batches(shard_files, cache):
    ds = dataset(shard_files, cache=cache)
    assert int(ds.cardinality()) == 12  # Keras knows the epoch's length before the first one ends
    first, second = epoch(ds), epoch(ds)
    for batches in (first, second):
        assert sorted(n for batch in batches for n in batch) == list(range(RECORDS))
        assert len(batches) == 12 and sorted(len(b) for b in batches)[0] == 1
    assert {frozenset(b) for b in first} != {frozenset(b) for b in second}  # not the same batches reordered


def test_evaluation_batches_keep_their_order_and_carry_hashes(shard_files):
    from tasks.modelling.architectures import get_architecture

    ds = dataset(shard_files, training=False, with_sha256=True, targets=get_architecture("cnn").targets)

    def one_pass():
        numbers = []
        for images, one_hot, hashes in ds:
            assert one_hot.shape[1:] == (MAX_LENGTH, CLASSES)
            batch = [int(image[0, 0, 0]) for image in images.numpy()]
            assert [int(h, 16) for h in hashes.numpy()] == batch
            numbers.append(batch)
        return numbers

    first = one_pass()
    assert sorted(n for batch in first for n in batch) == list(range(RECORDS))
    assert one_pass() == first
