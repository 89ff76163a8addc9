"""Decoding and preprocessing of captcha images, shared by ingest, shard building and prediction.

One preprocessing for training and inference, named in the model's metadata: the image turned grey
(`ink`, the default, or `grey`, the brightness of the image flattened on white, which models trained
before `ink` use), resized to fit the target size keeping its aspect ratio, and padded with white.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp"}
MIN_SIDE = 8
MAX_SIDE = 4096
MAX_PIXELS = 4096 * 1024


class ImageRejected(ValueError):
    """The bytes are not an image the pipeline can use; the message is the reason."""


def decode_image(data: bytes) -> tuple[Image.Image, str]:
    """Decode and check an image; return it (fully loaded) and its file extension.

    Dimensions are checked from the header before any pixel is decoded, so a decompression bomb is
    refused without being expanded.
    """
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in FORMATS:
                raise ImageRejected(f"unsupported image format {image.format}")
            width, height = image.size
            if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
                raise ImageRejected(f"image size {width}x{height} is outside {MIN_SIDE}..{MAX_SIDE} pixels a side"
                                    f" or over {MAX_PIXELS} pixels")
            image.load()
    except ImageRejected:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(f"not a readable image ({type(error).__name__})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageRejected(f"corrupt or truncated image ({error})") from None
    return image, FORMATS[image.format]


def to_grey(image: Image.Image) -> Image.Image:
    """Grey-scale version of `image`, with any transparency flattened on white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L")


def to_ink(image: Image.Image) -> Image.Image:
    """Dark ink on white, whatever the colours: where most of the image is transparent, its opacity
    (the colour of a character, pale or dark, then does not matter); otherwise each pixel's largest
    channel difference from the background colour (the image's median), so pale yellow on white or
    light text on a dark background is as visible as black on white. Then the strongest ink is
    stretched to black (docs/decisions.md#ink-preprocessing)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        if (alpha < 16).mean() > 0.05:
            return _stretched(255 - alpha.astype(np.int16))
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    background = np.median(rgb.reshape(-1, 3), axis=0).astype(np.int16)
    return _stretched(255 - np.abs(rgb - background).max(axis=-1))


def _stretched(ink: np.ndarray) -> Image.Image:
    """The ink (int array, 255 = none) scaled so that its strongest 0.5% reaches 0."""
    strongest = float(np.percentile(ink, 0.5))
    if strongest < 223:  # only where there is ink to stretch, not on a blank image
        ink = 255 - (255 - ink) * (255.0 / (255.0 - strongest))
    return Image.fromarray(np.clip(ink, 0, 255).astype(np.uint8), mode="L")


PREPROCESSINGS = {"ink": to_ink, "grey": to_grey}  # the names of tasks.data.input_size.PREPROCESSING_METHODS


def preprocess(image: Image.Image, height: int, width: int, method: str = "grey") -> np.ndarray:
    """uint8 array (height, width): the image made grey by `method` (`ink` or `grey`, the pixels'
    brightness), resized keeping the aspect ratio, centred on white."""
    grey = PREPROCESSINGS[method](image)
    scale = min(width / grey.width, height / grey.height)
    size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
    if size != grey.size:
        grey = grey.resize(size, Image.BILINEAR)
    canvas = Image.new("L", (width, height), 255)
    canvas.paste(grey, ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def preprocess_bytes(data: bytes, height: int, width: int, method: str = "grey") -> np.ndarray:
    """decode_image then preprocess."""
    image, _ = decode_image(data)
    return preprocess(image, height, width, method)
