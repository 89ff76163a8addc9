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
