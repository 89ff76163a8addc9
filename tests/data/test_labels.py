import numpy as np
import pytest

from tasks.data.labels import Alphabet, LabelError, split_of, text2vec, vec2text


def test_alphabet_from_labels_and_round_trip():
    alphabet = Alphabet.from_labels(["b2a", "c1"])
    assert alphabet.chars == "12abc" and alphabet.num_classes == 6
    assert alphabet.encode("a1c") == [3, 1, 5]
    assert alphabet.decode([3, 1, 0, 5]) == "a1c"


def test_characters_outside_the_alphabet_are_named():
    with pytest.raises(LabelError, match="outside the alphabet: 'Z'"):
        Alphabet("abc").encode("aZ")


def test_text2vec_is_the_tutorials_one_hot_with_padding():
    alphabet = Alphabet("0123456789")
    vector = text2vec("42", 3, alphabet)
    assert vector.shape == (3, 11) and vector.sum() == 3
    assert vector[0, 5] == 1 and vector[1, 3] == 1 and vector[2, 0] == 1
    assert vec2text(vector, alphabet) == "42"
    with pytest.raises(LabelError, match="longer than 1"):
        text2vec("42", 1, alphabet)


def test_split_is_fixed_by_hash_and_follows_fractions():
    import hashlib

    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    splits = [split_of(h, 0.1, 0.2) for h in hashes]
    assert splits == [split_of(h, 0.1, 0.2) for h in hashes]
    fractions = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert abs(fractions["test"] - 0.2) < 0.03 and abs(fractions["val"] - 0.1) < 0.03
    assert np.isclose(sum(fractions.values()), 1)
