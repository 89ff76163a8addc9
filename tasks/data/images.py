"""Decoding and preprocessing of captcha images, shared by ingest, shard building and prediction.

One preprocessing for training and inference, named in the model's metadata: the image turned grey
(`ink`; or `grey`, the brightness of the image flattened on white, which models trained before `ink`
use), with `text` also framed to the text's region (text_box, squeeze_gaps: the glyphs then look the
same whatever the canvas, the text's size and its place), resized to fit the target size keeping its
aspect ratio, and padded with white. `auto`, the setting's default, is resolved per data set to
`text` or `ink` by encode_labels (tasks.data.framing).
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


# Text framing (docs/decisions.md#text-framing). Ink darker than INK_LEVEL is a stroke candidate.
INK_LEVEL = 128
# Strokes are 2x2 blocks of ink where they are at least this share of the ink (thin lines and specks
# have none); fonts too thin for that (small images) keep the pixels with 3 or more inked neighbours.
BLOCK_SHARE = 0.2
# The share of stroke mass left out at each end of the rows and of the columns: a stray speck or the
# end of a crossing line does not stretch the region.
MASS_CUT = (0.003, 0.005)
MARGIN = 0.12  # of the region's height, on every side, at least MIN_MARGIN pixels
MIN_MARGIN = 2
GAP = 0.5  # stroke-free runs of columns wider than this share of the region's height are narrowed to it


def strokes(ink: np.ndarray) -> np.ndarray:
    """Boolean mask (the shape of `ink`, uint8, 255 = no ink) of the pixels that belong to glyph strokes."""
    dark = ink < INK_LEVEL
    blocks = np.zeros_like(dark)
    inner = dark[:-1, :-1] & dark[1:, :-1] & dark[:-1, 1:] & dark[1:, 1:]
    blocks[:-1, :-1] |= inner
    blocks[1:, 1:] |= inner
    if blocks.sum() >= BLOCK_SHARE * dark.sum():
        return blocks
    padded = np.pad(dark, 1).astype(np.int8)
    neighbours = sum(np.roll(np.roll(padded, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if dy or dx)[1:-1, 1:-1]
    return dark & (neighbours >= 3)


def _span(mass: np.ndarray, cut: float) -> tuple[int, int]:
    """(first, last + 1) index of `mass` (per row or column) between its `cut` and 1 - `cut` quantiles."""
    cumulative = np.cumsum(mass) / mass.sum()
    return int(np.searchsorted(cumulative, cut, side="right")), int(np.searchsorted(cumulative, 1 - cut)) + 1


def text_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the text in `ink`, with a margin; the whole image where it has no strokes."""
    mask = strokes(ink)
    height, width = ink.shape
    if mask.sum() == 0:
        return 0, height, 0, width
    top, bottom = _span(mask.sum(axis=1), MASS_CUT[0])
    left, right = _span(mask.sum(axis=0), MASS_CUT[1])
    margin = max(MIN_MARGIN, round(MARGIN * (bottom - top)))
    return max(0, top - margin), min(height, bottom + margin), max(0, left - margin), min(width, right + margin)


def squeeze_gaps(ink: np.ndarray, height: int) -> np.ndarray:
    """`ink` with every stroke-free run of columns between strokes narrowed to GAP * `height` (the
    text's height), cut from its middle: wide spacing then does not shrink the glyphs."""
    used = strokes(ink).any(axis=0)
    keep = np.ones(ink.shape[1], dtype=bool)
    inked = np.flatnonzero(used)
    if inked.size == 0:
        return ink
    allowed = max(1, round(GAP * height))
    start = None
    for column in range(inked[0], inked[-1] + 1):
        if not used[column] and start is None:
            start = column
        elif used[column] and start is not None:
            extra = column - start - allowed
            if extra > 0:
                first = start + (column - start - extra) // 2
                keep[first:first + extra] = False
            start = None
    return ink[:, keep]


def frame_text(image: Image.Image) -> Image.Image:
    """The ink of `image` cut to its text's region, gaps between characters narrowed."""
    ink = np.asarray(to_ink(image), dtype=np.uint8)
    top, bottom, left, right = text_box(ink)
    framed = squeeze_gaps(ink[top:bottom, left:right], bottom - top)
    return Image.fromarray(np.ascontiguousarray(framed), mode="L")


PREPROCESSINGS = {"text": frame_text, "ink": to_ink, "grey": to_grey}


def preprocess(image: Image.Image, height: int, width: int, method: str = "grey") -> np.ndarray:
    """uint8 array (height, width): the image made grey by `method` (`text`, `ink` or `grey`, the
    pixels' brightness), resized keeping the aspect ratio, centred on white."""
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
