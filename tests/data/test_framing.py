"""preprocessing=auto: text framed where its size or place varies or it covers little of the canvas,
read as it is where it fills its canvas at one size; the width then follows the framed text."""
import random

from conftest import make_config

from tasks.data.framing import choose_framing, sample_entries
from tasks.data.images import decode_image
from tasks.data.synthetic import SyntheticSpec, generate
from tasks.encode_labels import encode_labels
from tasks.ingest import ingest

PLACED = "synthetic://?count=40&style=placed&width=0&height=80&length=4-6&alphabet=0123456789abc&seed=2"
PLAIN = "synthetic://?count=40&style=plain&width=120&height=40&length=4&alphabet=0123456789&seed=2"


def images(spec: str) -> list:
    return [decode_image(data)[0] for _, data in generate(SyntheticSpec.parse(spec), workers=1)]


def test_auto_frames_text_placed_anywhere_at_any_size_and_leaves_text_that_fills_its_canvas():
    placed, plain = choose_framing(images(PLACED), "auto"), choose_framing(images(PLAIN), "auto")
    assert placed["preprocessing"] == "text" and placed["reason"].endswith("framed to the text")
    assert sum(placed["aspects"].counts.values()) == 40
    assert plain["preprocessing"] == "ink" and plain["aspects"] is None and plain["reason"].endswith("as it is")
    assert choose_framing(images(PLAIN), "text")["preprocessing"] == "text"  # the user's word
    assert choose_framing([], "grey") == {"preprocessing": "grey", "reason": "set by the user", "aspects": None}


def test_the_sample_is_the_same_whatever_the_manifest_order():
    entries = [{"sha256": f"{i:064x}"} for i in range(600)]
    shuffled = random.Random(1).sample(entries, len(entries))
    assert sample_entries(shuffled) == sample_entries(entries) == entries[:256]


def test_encode_labels_frames_placed_text_and_sizes_the_input_to_it(local_store):
    cfg = make_config(local_store, source=PLACED, height=0, width=0)
    ingest(cfg, local_store)
    encoded = encode_labels(cfg, local_store)
    assert encoded["preprocessing"] == "text" and "framed to the text" in encoded["preprocessing_reason"]
    unframed = encode_labels(make_config(local_store, source=PLACED, height=0, width=0, preprocessing="ink"),
                             local_store)
    # Framed, the text's region is much less wide than the canvases: a narrower input.
    assert encoded["width"] < unframed["width"] and unframed["preprocessing_reason"] == "set by the user"
