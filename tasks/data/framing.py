"""Whether a data set's text is framed before reading (preprocessing `auto`), and the input width
that framed text needs.

Framing (tasks.data.images.frame_text) makes a glyph look the same whatever the canvas, the text's
size and its place; where the text already fills its canvas at one size it changes nothing a model
needs and only adds a step that a noisy background can mislead. So `auto` frames a data set when, on
a sample of its images, the text's region covers little of the canvas, or its height or its place
varies a lot between images (docs/decisions.md#text-framing).
"""
from __future__ import annotations

import heapq

import numpy as np
from PIL import Image

from tasks.data.images import frame_text, text_box, to_ink
from tasks.data.input_size import AspectRatios

SAMPLE = 256  # images measured: the manifest entries with the smallest content hashes
FRAME_BELOW = 0.35  # the median share of the canvas the text's region covers, below which text is framed
SIZE_SPREAD = 1.8  # the ratio of the 90th to the 10th percentile of the region's height share, above which too
PLACE_SPREAD = 0.1  # the standard deviation of the region's middle, in canvas heights, above which too


def sample_entries(entries, count: int = SAMPLE) -> list[dict]:
    """The `count` manifest entries with the smallest sha256: the same sample whatever the order."""
    return heapq.nsmallest(count, entries, key=lambda entry: entry["sha256"])


def text_region(image: Image.Image) -> tuple[float, float, float]:
    """(share of the canvas's area, share of its height) that the text's region of `image` covers,
    and the height of the region's middle (in canvas heights)."""
    ink = np.asarray(to_ink(image), dtype=np.uint8)
    top, bottom, left, right = text_box(ink)
    height, width = ink.shape
    return (bottom - top) * (right - left) / (height * width), (bottom - top) / height, (top + bottom) / 2 / height


def choose_framing(images: list[Image.Image], setting: str) -> dict:
    """{"preprocessing", "reason", "aspects"}: `setting` resolved for these sample images (`auto`
    becomes `text` or `ink`), with the aspect ratios of their framed text (None unless `text`)."""
    if setting not in ("auto", "text"):
        return {"preprocessing": setting, "reason": "set by the user", "aspects": None}
    reason = "set by the user"
    if setting == "auto":
        regions = np.array([text_region(image) for image in images]) if images else np.ones((1, 3))
        area = float(np.median(regions[:, 0]))
        low, high = np.percentile(regions[:, 1], [10, 90])
        spread, place = float(high / max(low, 1e-6)), float(np.std(regions[:, 2]))
        framed = area < FRAME_BELOW or spread > SIZE_SPREAD or place > PLACE_SPREAD
        reason = (f"over {len(images)} images the text covers {100 * area:.0f}% of the canvas (median), its height "
                  f"varies {spread:.1f}-fold (10th to 90th percentile) and its middle by {place:.2f} of the "
                  "canvas height (standard deviation): " + ("framed to the text" if framed else "read as it is"))
        if not framed:
            return {"preprocessing": "ink", "reason": reason, "aspects": None}
    aspects = AspectRatios()
    for image in images:
        text = frame_text(image)
        aspects.add(text.width, text.height)
    return {"preprocessing": "text", "reason": reason, "aspects": aspects}
