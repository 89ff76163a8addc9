"""Other captcha styles (sizes, grey / RGBA / JPEG, mixed case, several label lengths) through every stage.

Shards hold grey pixels of the run's input size whatever the images were, so past build_shards a style
differs only in its alphabet and label lengths: the style with labels of several lengths and the most
characters is also trained and evaluated; fixed-length labels are, as the session's `trained` store is."""
import numpy as np
import pytest
from conftest import make_config

from tasks.build_shards import build_shards
from tasks.data.shards import read_shard_index
from tasks.encode_labels import encode_labels
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.store import LocalStore
from tasks.train import train

SEVERAL_LENGTHS = "synthetic://?count=40&length=3-6&alphabet=ABCDEFGHJKLMNPQRSTUVWXYZ&width=250&height=80&mode=grey"


def shards_of(spec: str, alphabet: str, root) -> tuple:
    """A store holding `spec`'s images through build_shards, checked on the way: (config, store, encoded)."""
    from tasks.data.synthetic import SyntheticSpec

    store = LocalStore(root / "store")
    cfg = make_config(store, source=spec, alphabet=alphabet)
    ingested = ingest(cfg, store)
    assert ingested["stored"] == 40 and ingested["refused"] == 0
    encoded = encode_labels(cfg, store)
    wanted = SyntheticSpec.parse(spec)
    assert set(encoded["alphabet"]) <= set(wanted.alphabet)
    assert encoded["max_length"] <= wanted.max_length and min(encoded["label_lengths"]) >= wanted.min_length
    built = build_shards(cfg, store)
    index = read_shard_index(store, built["cache_key"])
    import tensorflow as tf

    record = next(iter(tf.data.TFRecordDataset(str(store.root / index["files"]["train"][0]["key"]))))
    pixels = np.frombuffer(tf.train.Example.FromString(record.numpy()).features.feature["image"]
                           .bytes_list.value[0], dtype=np.uint8).reshape(32, 96)
    assert pixels[0, 0] > 200  # background (transparent or padded) is light
    return cfg, store, encoded


@pytest.mark.parametrize("spec, alphabet", [
    (SEVERAL_LENGTHS, ""),
    ("synthetic://?count=40&length=5&alphabet=abcdefXYZ234&width=120&height=40&mode=rgba", ""),
    ("synthetic://?count=40&length=4&alphabet=0123456789&format=jpeg", "0123456789"),
])
def test_other_captcha_styles_become_shards(tmp_path, spec, alphabet):
    """Other sizes, grey / RGBA / JPEG, mixed case, labels of several lengths: ingested, encoded, sharded."""
    shards_of(spec, alphabet, tmp_path)


def test_labels_of_several_lengths_train_and_evaluate(tmp_path):
    cfg, store, encoded = shards_of(SEVERAL_LENGTHS, "", tmp_path)
    assert len(set(encoded["label_lengths"])) > 1
    train(cfg, store, cache_dir=tmp_path / "cache")
    assert evaluate(cfg, store, tmp_path / "cache")["test_images"] == encoded["splits"]["test"]
