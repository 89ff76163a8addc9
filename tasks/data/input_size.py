"""The model's input size, chosen from the images unless the user sets it.

Images are resized to the input keeping their aspect ratio and padded, so an input much wider than
the images wastes columns and one much narrower shrinks the text. The height is fixed
(DEFAULT_HEIGHT, or the user's); the width follows the images' shapes: their 90th-percentile
aspect ratio at that height, at least what the longest label needs (CTC reads one character per
4 columns at most, and needs a blank between repeats), rounded up to a multiple of 8
(docs/decisions.md#input-size).
"""
from __future__ import annotations

import math
from collections import Counter

# How images become the model's grey input (tasks.data.images): `auto` by default, resolved per data
# set to `text` (ink framed to the text) or `ink` (tasks.data.framing); `grey` is what models trained
# before `ink` expect.
PREPROCESSING_METHODS = ("auto", "text", "ink", "grey")
DEFAULT_HEIGHT = 50
MAX_WIDTH = 1024
ASPECT_QUANTILE = 0.9
COLUMNS_PER_CHARACTER = 8
# An earlier model's width this close to the chosen one is kept (keep_earlier_width).
WIDTH_TOLERANCE = 0.15


class AspectRatios:
    """A histogram of image aspect ratios (width / height, to 0.01), built one image at a time."""

    def __init__(self):
        self.counts: Counter = Counter()

    def add(self, width: int, height: int) -> None:
        self.counts[round(width / height, 2)] += 1

    def quantile(self, q: float) -> float:
        """The aspect ratio below which a fraction `q` of the images lie (1.0 with no image)."""
        total = sum(self.counts.values())
        seen = 0
        for aspect in sorted(self.counts):
            seen += self.counts[aspect]
            if seen >= q * total:
                return aspect
        return 1.0


def choose_input_size(aspects: AspectRatios, max_length: int, height: int = 0, width: int = 0) -> dict:
    """{"height", "width", "reason"}: the user's values where given (non-zero), else chosen from the
    images' aspect ratios and the longest label."""
    height = height or DEFAULT_HEIGHT
    if width:
        return {"height": height, "width": width, "reason": "set by the user"}
    aspect = aspects.quantile(ASPECT_QUANTILE)
    needed = COLUMNS_PER_CHARACTER * max_length
    chosen = min(MAX_WIDTH, max(needed, 8 * math.ceil(height * aspect / 8)))
    columns = math.ceil(height * aspect)
    reason = (f"width from the images' shapes: 90% are at most {aspect:.2f} times as wide as high, "
              f"{columns} columns at height {height}")
    if chosen == needed and needed > columns:
        reason = f"width for labels of up to {max_length} characters (the images would need {columns})"
    elif chosen == MAX_WIDTH:
        reason += f", capped at {MAX_WIDTH}"
    return {"height": height, "width": chosen, "reason": reason}


def keep_earlier_width(size: dict, earlier: dict, max_length: int, whose: str) -> dict:
    """`size` (chosen from the images) with the width of an earlier model's input `earlier`
    ({"height", "width"}, `whose` it is) where its height is the same, it holds the longest label and
    it is within WIDTH_TOLERANCE of the chosen width: a warm start needs the same input size, and a
    few columns either way change the images' scale little (docs/decisions.md#input-size)."""
    width, chosen = earlier.get("width") or 0, size["width"]
    if (earlier.get("height") != size["height"] or width == chosen or width > MAX_WIDTH
            or width < COLUMNS_PER_CHARACTER * max_length or abs(width - chosen) > WIDTH_TOLERANCE * chosen):
        return size
    return {**size, "width": width,
            "reason": f"{whose}'s width, kept for a warm start (the images would choose {chosen}: {size['reason']})"}
