import io

import numpy as np
import pytest
from PIL import Image

from tasks.data.images import ImageRejected, decode_image, preprocess, preprocess_bytes


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("mode, fmt, ext", [("RGB", "PNG", "png"), ("L", "JPEG", "jpg"), ("RGBA", "PNG", "png"),
                                            ("P", "GIF", "gif"), ("RGB", "BMP", "bmp")])
def test_decode_supported_formats(mode, fmt, ext):
    image, found = decode_image(encode(Image.new(mode, (40, 20)), fmt))
    assert found == ext and image.size == (40, 20)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"this is text, not a png", "not a readable image"),
    (encode(Image.new("RGB", (40, 20)))[:60], "corrupt or truncated"),
    (encode(Image.new("L", (4, 40))), "outside"),
    (encode(Image.new("L", (5000, 10))), "outside"),
])
def test_unusable_bytes_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        decode_image(data)


def test_decompression_bomb_is_refused_without_decoding():
    bomb = encode(Image.new("1", (4000, 4000)))  # tiny file, 16 megapixels
    assert len(bomb) < 10_000
    with pytest.raises(ImageRejected, match="outside"):
        decode_image(bomb)


def test_preprocess_keeps_aspect_ratio_and_pads_white():
    image = Image.new("L", (100, 100), 0)  # square black image into a 20x80 frame
    pixels = preprocess(image, 20, 80)
    assert pixels.shape == (20, 80) and pixels.dtype == np.uint8
    assert (pixels[:, 30:50] == 0).all()
    assert (pixels[:, :30] == 255).all() and (pixels[:, 50:] == 255).all()


def test_transparency_is_flattened_on_white():
    rgba = Image.new("RGBA", (40, 10), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 0, 255))
    pixels = preprocess_bytes(encode(rgba), 10, 40)
    assert pixels[0, 0] == 0 and pixels[5, 20] == 255


def ink_of(image: Image.Image) -> np.ndarray:
    from tasks.data.images import to_ink

    return np.asarray(to_ink(image))


def test_ink_makes_pale_and_inverted_text_as_dark_as_black_text():
    pale = Image.new("RGB", (60, 20), "white")
    pale.paste((255, 255, 120), (10, 5, 50, 15))  # pale yellow "text": brightness 240 of 255
    assert np.asarray(pale.convert("L"))[10, 30] > 230
    assert ink_of(pale)[10, 30] == 0 and ink_of(pale)[1, 1] == 255
    inverted = Image.new("RGB", (60, 20), (20, 20, 20))
    inverted.paste((230, 230, 230), (10, 5, 50, 15))  # light text on a dark background
    assert ink_of(inverted)[10, 30] == 0 and ink_of(inverted)[1, 1] == 255


def test_ink_of_a_transparent_image_is_its_opacity_whatever_the_colour():
    image = Image.new("RGBA", (60, 20), (0, 0, 0, 0))
    image.paste((200, 255, 255, 255), (5, 5, 25, 15))  # light cyan
    image.paste((20, 20, 120, 255), (35, 5, 55, 15))  # dark blue
    ink = ink_of(image)
    assert ink[10, 15] == ink[10, 45] == 0 and ink[1, 1] == 255


def test_ink_leaves_a_blank_image_blank_and_black_on_white_as_it_is():
    assert (ink_of(Image.new("RGB", (30, 10), "white")) == 255).all()
    text = Image.new("L", (30, 10), 255)
    text.paste(0, (5, 2, 25, 8))
    assert (ink_of(text) == np.asarray(text)).all()


def test_the_preprocessing_names_agree_with_the_settings():
    from tasks.data.images import PREPROCESSINGS
    from tasks.data.input_size import PREPROCESSING_METHODS

    assert ("auto", *PREPROCESSINGS) == PREPROCESSING_METHODS


def text_like(scale: int = 1) -> np.ndarray:
    """Three thick 'glyphs' of different shapes, 20 px high at scale 1, ink (0) on white (255)."""
    glyphs = np.full((20, 44), 255, np.uint8)
    glyphs[:, 0:6] = 0  # a bar
    glyphs[0:6, 14:26] = glyphs[14:20, 14:26] = 0  # two plates
    glyphs[5:15, 34:44] = 0  # a block
    return np.kron(glyphs, np.ones((scale, scale), np.uint8))


def on_canvas(ink: np.ndarray, height: int, width: int, top: int, left: int) -> Image.Image:
    canvas = np.full((height, width), 255, np.uint8)
    canvas[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    return Image.fromarray(canvas, mode="L")


def test_the_text_box_leaves_out_thin_lines_and_specks():
    from tasks.data.images import MARGIN, text_box

    image = np.asarray(on_canvas(text_like(2), 120, 400, 30, 200)).copy()
    image[60, :] = 0  # a thin line across the whole canvas
    image[5, 10] = image[110, 390] = 0  # specks
    margin = round(MARGIN * 40)
    assert text_box(image) == (30 - margin, 70 + margin, 200 - margin, 288 + margin)
    assert text_box(np.full((30, 60), 255, np.uint8)) == (0, 30, 0, 60)  # nothing to find: all of it


def test_framed_text_looks_the_same_whatever_its_size_and_place():
    small_left = on_canvas(text_like(1), 80, 300, 5, 10)
    large_right = on_canvas(text_like(3), 160, 700, 90, 500)
    def overlap(method: str) -> float:
        """Intersection over union of the two images' ink after preprocessing by `method`."""
        first, second = (preprocess(image, 32, 96, method) < 128 for image in (small_left, large_right))
        return (first & second).sum() / (first | second).sum()

    assert overlap("text") > 0.8 and overlap("ink") < 0.1


def test_wide_gaps_between_characters_are_narrowed_to_half_the_text_height():
    from tasks.data.images import GAP, squeeze_gaps

    ink = np.full((20, 200), 255, np.uint8)
    ink[:, 0:10] = ink[:, 110:120] = ink[:, 125:135] = 0
    squeezed = squeeze_gaps(ink, 20)
    assert squeezed.shape == (20, 200 - (100 - round(GAP * 20)))
    columns = (squeezed < 128).any(axis=0)
    assert columns[:10].all() and not columns[10:20].any() and columns[20:30].all()
    assert not columns[30:35].any() and columns[35:45].all()  # a narrow gap is kept as it is
