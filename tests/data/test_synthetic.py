import io

import pytest
from PIL import Image

from tasks.data.sources import label_from_name
from tasks.data.synthetic import SyntheticSpec, SyntheticSpecError, generate


def test_same_spec_gives_the_same_images():
    spec = SyntheticSpec.parse("synthetic://?count=6&length=3-5&alphabet=ABC123&width=120&height=40&seed=3")
    first, second = list(generate(spec, workers=1)), list(generate(spec, workers=1))
    assert first == second and len(first) == 6
    for name, data in first:
        label = label_from_name(name)
        assert 3 <= len(label) <= 5 and set(label) <= set("ABC123")
        assert Image.open(io.BytesIO(data)).size == (120, 40)


def test_parallel_generation_matches_serial():
    spec = SyntheticSpec.parse("synthetic://?count=210&seed=1")
    assert list(generate(spec, workers=2)) == list(generate(spec, workers=1))


def test_other_seed_other_images():
    a = list(generate(SyntheticSpec.parse("synthetic://?count=3&seed=1"), workers=1))
    b = list(generate(SyntheticSpec.parse("synthetic://?count=3&seed=2"), workers=1))
    assert a != b


@pytest.mark.parametrize("uri, message", [
    ("synthetic://?count=abc", "whole numbers"),
    ("synthetic://?length=5-3", "length must be"),
    ("synthetic://?alphabet=a", "alphabet must be"),
    ("synthetic://?alphabet=a_b", "alphabet must be"),
    ("synthetic://?width=5", "width must be"),
    ("synthetic://?fonts=x", "unknown key"),
])
def test_bad_specs(uri, message):
    with pytest.raises(SyntheticSpecError, match=message):
        SyntheticSpec.parse(uri)


@pytest.mark.parametrize("query, mode, fmt", [("mode=grey", "L", "PNG"), ("mode=rgba", "RGBA", "PNG"),
                                              ("format=jpeg", "RGB", "JPEG"), ("", "RGB", "PNG")])
def test_styles(query, mode, fmt):
    [(name, data)] = generate(SyntheticSpec.parse(f"synthetic://?count=1&{query}"), workers=1)
    image = Image.open(io.BytesIO(data))
    assert image.mode == mode and image.format == fmt
    if mode == "RGBA":
        alpha = image.getchannel("A")
        assert alpha.getextrema() == (0, 255)  # transparent background, opaque text


def test_rgba_jpeg_is_refused():
    with pytest.raises(SyntheticSpecError, match="jpeg has no transparency"):
        SyntheticSpec.parse("synthetic://?mode=rgba&format=jpeg")


@pytest.mark.parametrize("query, size, mode", [
    ("style=plain&width=72&height=24&length=4", (72, 24), "RGB"),
    ("style=noisy&width=70&height=30&format=jpeg&alphabet=0123456789", (70, 30), "RGB"),
])
def test_font_styles_render_at_the_size_asked(query, size, mode):
    import io

    from PIL import Image

    for name, data in generate(SyntheticSpec.parse(f"synthetic://?count=4&{query}"), workers=1):
        image = Image.open(io.BytesIO(data))
        assert image.size == size and image.mode == mode
        assert min(image.convert("L").getextrema()) < 100  # there is dark text on it


def test_the_colour_style_sizes_each_image_to_its_label():
    import io

    from PIL import Image

    spec = SyntheticSpec.parse("synthetic://?count=12&style=colour&mode=rgba&width=0&height=80&length=4-8")
    widths = {}
    for name, data in generate(spec, workers=1):
        image = Image.open(io.BytesIO(data))
        assert image.mode == "RGBA" and image.height == 80
        assert image.getextrema()[3] == (0, 255)  # a transparent background under opaque characters
        widths.setdefault(len(name.split("_")[0]), []).append(image.width)
    assert max(widths[min(widths)]) < min(widths[max(widths)])  # longer labels, wider images
    assert all(120 <= w <= 800 for ws in widths.values() for w in ws)


def test_the_mixed_style_draws_every_image_its_own_way_and_the_same_way_again():
    import io

    from PIL import Image

    spec = SyntheticSpec.parse("synthetic://?count=40&style=mixed&width=0&height=60&length=3-8&alphabet=abcXYZ123")
    images = list(generate(spec, workers=1))
    assert images == list(generate(spec, workers=1))  # reproducible
    sizes, inks = set(), set()
    for name, data in images:
        image = Image.open(io.BytesIO(data)).convert("L")
        assert min(image.getextrema()) < 200  # something is drawn on it
        sizes.add(image.size)
        inks.add(min(image.getextrema()))
    assert len({h for _, h in sizes}) > 5 and len({w for w, _ in sizes}) > 20  # sizes vary, not only with length
    assert len(inks) > 10


def test_width_0_is_for_the_font_styles_only():
    with pytest.raises(SyntheticSpecError, match="0: sized to the label"):
        SyntheticSpec.parse("synthetic://?width=0")
    with pytest.raises(SyntheticSpecError, match="style must be one of"):
        SyntheticSpec.parse("synthetic://?style=fancy")


def test_generation_holds_a_few_chunks_however_many_images_are_asked_for():
    """The first images of a spec of five million come with memory for a few chunks of them only."""
    import itertools
    import tracemalloc

    from tasks.data.synthetic import SyntheticSpec, generate

    tracemalloc.start()
    try:
        images = generate(SyntheticSpec.parse("synthetic://?count=5000000&length=4&style=plain&width=72&height=24"),
                          workers=2)
        first = list(itertools.islice(images, 300))
        images.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(first) == 300 and len({name for name, _ in first}) == 300
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("query, message", [
    ("doubles=x", "doubles must be a number 0..1"),
    ("doubles=1.5", "doubles must be a number 0..1"),
    ("doubles=nan", "doubles must be a number 0..1"),
    ("doubles=0.2&length=1", "doubles needs labels of 2"),
    ("caps=-0.1", "caps must be a number 0..1"),
    ("caps=half", "caps must be a number 0..1"),
    ("caps=0.5&alphabet=abcD", "caps draws lower-case letters as capitals"),
    ("lines=-1", "lines must be 0..20"),
    ("lines=99", "lines must be 0..20"),
    ("lines=two", "lines must be whole numbers"),
])
def test_bad_new_keys_are_refused_by_name(query, message):
    with pytest.raises(SyntheticSpecError, match=message):
        SyntheticSpec.parse(f"synthetic://?style=plain&{query}")


def labels(uri: str) -> list[str]:
    return [label_from_name(name) for name, _ in generate(SyntheticSpec.parse(uri), workers=1)]


def has_double(label: str) -> bool:
    return any(a == b for a, b in zip(label, label[1:]))


def test_doubles_gives_that_share_of_labels_a_doubled_character():
    drawn = labels("synthetic://?count=200&style=plain&width=72&height=24&length=4&alphabet=0123456789&doubles=0.2")
    share = sum(map(has_double, drawn)) / len(drawn)
    assert 0.12 <= share <= 0.3, share  # by chance, 4 of 10 digits would double in 27% of labels
    assert all(len(label) == 4 and set(label) <= set("0123456789") for label in drawn)
    assert all(map(has_double, labels("synthetic://?count=20&style=plain&width=72&height=24&doubles=1")))


def test_caps_draws_capitals_for_lower_case_labels():
    uri = "synthetic://?count=12&style=plain&width=120&height=40&length=5&alphabet=abdefgh&seed=2"
    drawn, capped = list(generate(SyntheticSpec.parse(uri), workers=1)), \
        list(generate(SyntheticSpec.parse(uri + "&caps=1"), workers=1))
    assert [label_from_name(n) for n, _ in capped] == [label_from_name(n) for n, _ in drawn]  # labels unchanged
    assert all(label_from_name(n).islower() for n, _ in capped)
    assert all(a != b for (_, a), (_, b) in zip(drawn, capped))  # drawn otherwise


def test_the_placed_style_puts_text_on_a_canvas_of_random_width():
    spec = SyntheticSpec.parse("synthetic://?count=30&style=placed&mode=rgba&width=0&height=80&length=4-8"
                               "&alphabet=0123456789abcdefghijklmnopqrstuvwxyz&lines=2")
    widths = []
    for name, data in generate(spec, workers=1):
        image = Image.open(io.BytesIO(data))
        assert image.mode == "RGBA" and image.height == 80
        assert image.getextrema()[3] == (0, 255)  # a transparent background under opaque characters
        widths.append(image.width)
    assert all(140 <= w <= 780 for w in widths) and max(widths) - min(widths) > 200
    half = SyntheticSpec.parse("synthetic://?count=10&style=placed&width=0&height=40&length=4-8")
    assert all(70 <= Image.open(io.BytesIO(d)).width <= 390 for _, d in generate(half, workers=1))


def test_the_touching_style_renders_small_images():
    uri = ("synthetic://?count=6&style=touching&width=72&height=24&length=4"
           "&alphabet=0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for name, data in generate(SyntheticSpec.parse(uri + "&doubles=0.2"), workers=1):
        image = Image.open(io.BytesIO(data))
        assert image.size == (72, 24) and image.mode == "RGB"
        grey = image.convert("L")
        assert min(grey.getextrema()) < 150 and grey.getpixel((0, 0)) == 255  # dark text on a clean background


@pytest.mark.parametrize("query", [
    "style=placed&width=0&height=60&caps=0.5&alphabet=abc123&doubles=0.5&lines=3",
    "style=touching&width=0&height=30&lines=1",
    "style=mixed&width=0&height=50&lines=2&alphabet=abc123&caps=0.3",
    "style=noisy&width=100&height=40&lines=0",
    "lines=2",
])
def test_the_new_keys_and_styles_draw_the_same_images_again(query):
    spec = SyntheticSpec.parse(f"synthetic://?count=5&seed=4&{query}")
    assert list(generate(spec, workers=1)) == list(generate(spec, workers=1))


@pytest.mark.parametrize("style", ["captcha", "plain", "colour", "noisy", "varied"])
def test_the_new_keys_left_at_their_defaults_change_nothing(style):
    """doubles=0 and caps=0 draw what a spec without them does, which is what specs drew before the keys."""
    uri = f"synthetic://?count=4&seed=9&style={style}&length=3-6&alphabet=abc123"
    assert list(generate(SyntheticSpec.parse(uri), workers=1)) == \
        list(generate(SyntheticSpec.parse(uri + "&doubles=0&caps=0"), workers=1))
