"""The model's input size follows the images' shapes and the longest label, unless the user sets it."""
import pytest

from conftest import make_config
from tasks.data.input_size import AspectRatios, choose_input_size, keep_earlier_width
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest
from tasks.store import LocalStore


def aspects(*shapes) -> AspectRatios:
    ratios = AspectRatios()
    for width, height, count in shapes:
        for _ in range(count):
            ratios.add(width, height)
    return ratios


@pytest.mark.parametrize("shapes, max_length, width", [
    ([(72, 24, 100)], 4, 152),  # small: 3 times as wide as high
    ([(200, 50, 100)], 6, 200),  # the tutorial's captchas keep their 50x200
    ([(140, 80, 10), (460, 80, 80), (780, 80, 10)], 8, 288),  # wide, of varying width: the 90th percentile
    ([(60, 60, 100)], 12, 96),  # square images of long labels: the labels need the columns
    ([(4000, 40, 100)], 4, 1024),  # a banner: capped
])
def test_the_width_follows_the_images_and_the_labels(shapes, max_length, width):
    chosen = choose_input_size(aspects(*shapes), max_length)
    assert (chosen["height"], chosen["width"]) == (50, width), chosen["reason"]


def test_what_the_user_sets_is_kept():
    ratios = aspects((72, 24, 10))
    assert choose_input_size(ratios, 4, height=32, width=96) == {"height": 32, "width": 96,
                                                                 "reason": "set by the user"}
    assert choose_input_size(ratios, 4, height=32)["width"] == 96  # 32 x 3, from the images


def test_encode_labels_chooses_and_records_the_size_for_three_shapes(tmp_path):
    specs = {
        "synthetic://?count=48&length=4&style=plain&width=72&height=24&seed=1": 152,
        "synthetic://?count=48&length=4&seed=2": 136,  # the captcha package's 160x60
        "synthetic://?count=48&length=6-8&style=colour&mode=rgba&width=0&height=80&seed=3": None,
    }
    for number, (spec, width) in enumerate(specs.items()):
        store = LocalStore(tmp_path / f"store{number}")
        cfg = make_config(store, source=spec, height=0, width=0)
        ingest(cfg, store)
        encoded = encode_labels(cfg, store)
        assert encoded["height"] == 50 and encoded["preprocessing"] == "ink"
        if width:
            assert encoded["width"] == width, encoded["input_size"]
        else:  # images 80 high and about 5 to 8 times as wide
            assert 250 <= encoded["width"] <= 450 and "90% are at most" in encoded["input_size"]


def test_an_earlier_width_is_kept_only_when_close_of_the_same_height_and_long_enough():
    chosen = {"height": 50, "width": 200, "reason": "from the images"}
    kept = keep_earlier_width(chosen, {"height": 50, "width": 224}, 5, "the champion v1")
    assert kept["width"] == 224 and kept["reason"].startswith("the champion v1's width, kept for a warm start")
    for earlier, longest in (({"height": 50, "width": 240}, 5),  # 20% wider
                             ({"height": 40, "width": 208}, 5),  # another height
                             ({"height": 50, "width": 184}, 24),  # too narrow for 24 characters
                             ({"height": 50}, 5)):
        assert keep_earlier_width(chosen, earlier, longest, "the champion v1") == chosen
