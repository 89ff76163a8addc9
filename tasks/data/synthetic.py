"""Synthetic labelled captchas, reproducible from a `synthetic://` spec.

Spec: `synthetic://?count=4000&length=4&alphabet=0123456789&width=160&height=60&seed=0`; `length` may
be a range (`4-6`); `style` is `captcha` (default: the `captcha` package's distorted text on noise)
or one drawn with fonts (`plain`, `colour`, `noisy`, `varied`, `placed`, `touching`: see
tasks.data.captcha_styles), where `width=0` sizes each image to its label (`placed`: a canvas of
random width); `mixed` draws each image in one of all of these, mostly `varied` (MIXED_STYLES);
`mode` is `rgb` (default), `grey` or `rgba` (transparent background) and `format` `png` (default)
or `jpeg`. The same spec always gives the same images on one machine, so ingesting it twice stores
nothing new.

Three keys add what some real captchas have; left out, every image is drawn as before they existed:
- `doubles=0.2`: that share of labels (of two or more characters) has two identical adjacent
  characters (`33AG`, `ULLK`) and the others none; 0 (default) leaves doubles to chance;
- `caps=0.5`: that share of images draws its letters as capitals while the label keeps them lower
  case, as some fonts do (an `R` drawn is `r` in the label); the alphabet must have no capitals;
- `lines=2`: that many thin dark lines across the text, instead of the style's own lines (for
  `captcha`, on top of the package's curve); left out, each style draws its own or none.
"""
from __future__ import annotations

import io
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qsl, urlparse

from PIL import Image

from tasks.data.captcha_styles import render, strike
from tasks.data.parallel import bounded_map

MAX_COUNT = 10_000_000
STYLES = ("captcha", "plain", "colour", "noisy", "varied", "placed", "touching", "mixed")
MAX_LINES = 20
# What share of a `mixed` spec's images each style draws.
MIXED_STYLES = {"varied": 0.45, "captcha": 0.2, "noisy": 0.1, "placed": 0.1, "plain": 0.05, "colour": 0.05,
                "touching": 0.05}


class SyntheticSpecError(ValueError):
    """A `synthetic://` spec cannot be understood; the message says which part."""


@dataclass(frozen=True)
class SyntheticSpec:
    count: int = 4000
    min_length: int = 4
    max_length: int = 4
    alphabet: str = "0123456789"
    width: int = 160
    height: int = 60
    seed: int = 0
    mode: str = "rgb"
    format: str = "png"
    style: str = "captcha"
    doubles: float = 0.0
    caps: float = 0.0
    lines: int | None = None  # None: each style's own lines

    @classmethod
    def parse(cls, uri: str) -> "SyntheticSpec":
        """Parse `synthetic://?key=value&...`; unknown keys and bad values raise SyntheticSpecError."""
        parsed = urlparse(uri)
        if parsed.scheme != "synthetic":
            raise SyntheticSpecError(f"{uri!r} is not a synthetic:// spec")
        fields = dict(parse_qsl(parsed.query or parsed.netloc, keep_blank_values=True, strict_parsing=False))
        known = {"count", "length", "alphabet", "width", "height", "seed", "mode", "format", "style", "doubles",
                 "caps", "lines"}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise SyntheticSpecError(f"synthetic spec {uri!r}: unknown key(s) {unknown}; known: {sorted(known)}")
        values = {}
        try:
            for key in ("count", "width", "height", "seed", "lines"):
                if key in fields:
                    values[key] = int(fields[key])
            if "length" in fields:
                low, _, high = fields["length"].partition("-")
                values["min_length"], values["max_length"] = int(low), int(high or low)
        except ValueError:
            raise SyntheticSpecError(f"synthetic spec {uri!r}: count, length, width, height, seed and lines must "
                                     "be whole numbers (length may be a range like 4-6)") from None
        for key in ("doubles", "caps"):
            if key in fields:
                try:
                    values[key] = float(fields[key])
                except ValueError:
                    raise SyntheticSpecError(f"synthetic spec {uri!r}: {key} must be a number 0..1") from None
        for key in ("alphabet", "mode", "format", "style"):
            if key in fields:
                values[key] = fields[key]
        spec = cls(**values)
        spec._validate(uri)
        return spec

    def _validate(self, uri: str) -> None:
        problems = []
        if not 1 <= self.count <= MAX_COUNT:
            problems.append(f"count must be 1..{MAX_COUNT}")
        if not 1 <= self.min_length <= self.max_length <= 32:
            problems.append("length must be 1..32 (a range low-high with low <= high)")
        if len(self.alphabet) < 2 or not self.alphabet.isalnum() or len(set(self.alphabet)) != len(self.alphabet):
            problems.append("alphabet must be 2 or more distinct letters or digits")
        if not ((20 <= self.width <= 2000 or (self.width == 0 and self.style != "captcha"))
                and 20 <= self.height <= 1000):
            problems.append("width must be 20..2000 (0: sized to the label, for the font styles) and height 20..1000")
        if self.style not in STYLES:
            problems.append(f"style must be one of {', '.join(STYLES)}")
        if self.mode not in ("rgb", "grey", "rgba"):
            problems.append("mode must be rgb, grey or rgba")
        if self.format not in ("png", "jpeg"):
            problems.append("format must be png or jpeg")
        if not 0 <= self.doubles <= 1:  # also refuses nan
            problems.append("doubles must be a number 0..1 (the share of labels with a doubled character)")
        elif self.doubles and self.max_length < 2:
            problems.append("doubles needs labels of 2 or more characters")
        if not 0 <= self.caps <= 1:
            problems.append("caps must be a number 0..1 (the share of images drawing letters as capitals)")
        elif self.caps and any(c.isupper() for c in self.alphabet):
            problems.append("caps draws lower-case letters as capitals: the alphabet must have no capitals")
        if self.lines is not None and not 0 <= self.lines <= MAX_LINES:
            problems.append(f"lines must be 0..{MAX_LINES}")
        if self.mode == "rgba" and self.format == "jpeg":
            problems.append("jpeg has no transparency: use mode=rgba with format=png")
        if problems:
            raise SyntheticSpecError(f"synthetic spec {uri!r}: " + "; ".join(problems))


class _SeededSecrets:
    """Stands in for the `secrets` module inside `captcha.image`, so images are reproducible."""

    def __init__(self, seed: int):
        self._random = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._random.randrange(n)

    def randbits(self, k: int) -> int:
        return self._random.getrandbits(k)

    def choice(self, seq):
        return self._random.choice(seq)


def _label(spec: SyntheticSpec, rng: random.Random) -> str:
    """A label of the spec's lengths and alphabet. With `doubles`, that share of labels gets one
    character repeated next to itself and the rest have no two adjacent characters alike; without,
    the characters are drawn independently, as before the key existed."""
    length = rng.randint(spec.min_length, spec.max_length)
    if not spec.doubles:
        return "".join(rng.choice(spec.alphabet) for _ in range(length))
    chars = [rng.choice(spec.alphabet)]
    for _ in range(length - 1):
        chars.append(rng.choice(spec.alphabet.replace(chars[-1], "")))
    if length > 1 and rng.random() < spec.doubles:
        at = rng.randrange(length - 1)
        chars[at + 1] = chars[at]
    return "".join(chars)


def _render(args: tuple[SyntheticSpec, int]) -> tuple[str, bytes]:
    import captcha.image

    spec, index = args
    rng = random.Random(spec.seed * 1_000_003 + index)
    label = _label(spec, rng)
    # The rng is only asked when caps is set, so specs without it draw the images they always did.
    text = label.upper() if spec.caps and rng.random() < spec.caps else label
    style = spec.style
    if style == "mixed":
        style = rng.choices(list(MIXED_STYLES), weights=list(MIXED_STYLES.values()))[0]
    if style == "captcha":
        captcha.image.secrets = _SeededSecrets(rng.getrandbits(64))
        width = spec.width or int(spec.height * (0.45 * len(label) + 0.5))
        image = captcha.image.ImageCaptcha(width=width, height=spec.height).generate_image(text)
        if spec.lines:
            strike(image, spec.lines, rng)
    else:
        image = render(style, text, spec.width, spec.height, rng, spec.lines)
    if image.mode == "RGBA" and spec.mode != "rgba":
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    if spec.mode == "grey":
        image = image.convert("L")
    elif spec.mode == "rgba" and image.mode != "RGBA":
        # The light background becomes transparent; text, dots and curve stay opaque.
        image.putalpha(image.convert("L").point(lambda v: 0 if v > 225 else 255))
    buffer = io.BytesIO()
    image.save(buffer, format=spec.format.upper())
    return f"{label}_{index:07d}.{'jpg' if spec.format == 'jpeg' else 'png'}", buffer.getvalue()


CHUNK = 64  # images one worker renders per task


def generate(spec: SyntheticSpec, workers: int | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield (file name, PNG bytes) for every image of the spec, in index order, rendered in parallel.
    At most two chunks per worker are in flight, so memory stays flat however large `count` is."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or spec.count < 200:
        yield from map(_render, ((spec, i) for i in range(spec.count)))
        return
    with ProcessPoolExecutor(workers) as pool:
        starts = ((spec, start) for start in range(0, spec.count, CHUNK))
        for chunk in bounded_map(pool, _render_chunk, starts, 2 * workers):
            yield from chunk


def _render_chunk(args: tuple[SyntheticSpec, int]) -> list[tuple[str, bytes]]:
    spec, start = args
    return [_render((spec, i)) for i in range(start, min(start + CHUNK, spec.count))]
