"""Captcha styles drawn with fonts, for the synthetic source beside the `captcha` package's own style.

- `plain`: clean text, black on white, one font per image from the machine's fonts, tightly framed
  (small images such as 72x24 read like a site's simple captcha);
- `colour`: each character in its own colour (pale ones too: light cyan, yellow, pink), widely and
  unevenly spaced, slightly rotated, on a transparent background; the width follows the label
  (`width=0` in the spec), so 4 to 8 characters at height 80 give images 140 to 780 wide;
- `noisy`: dark characters over grey speckle noise and a few lines, for small JPEGs;
- `varied`: a new look drawn for every image from what captchas are made of: any font and size,
  characters crowded until they touch or spread apart, rotated and shifted, in one ink or many,
  on white, flat, graded or speckled backgrounds, struck through by lines and curves, sprinkled
  with dots, waved, blurred and grainy. A base model learns from it what captchas have in common
  (tasks.registry.bases);
- `placed`: text placed anywhere on a wide canvas (`width=0`: 1.75 to 9.75 times the height, so 140
  to 780 wide at height 80), some images mostly empty around a short line of small characters: the
  size varies threefold between images, each character in one of a few fonts and its own colour
  (some very pale), wide and uneven gaps, thin dark lines across the text, transparent background;
- `touching`: narrow dark characters crowded until they touch and overlap their neighbours, on white,
  framed like `plain` (small images such as 72x24 too).

`lines=N` (render's `lines`) replaces a style's own lines by N thin dark lines across the text;
without it, `noisy`, `varied` and `placed` draw their own and the others none.

Fonts are the TrueType files of the machine's font packages (DejaVu, Liberation, FreeFont; Debian's
`fonts-dejavu-core` and `fonts-liberation`) and the DroidSansMono font the `captcha` package ships,
so a style renders anywhere; a machine with other fonts renders other images from the same spec.
"""
from __future__ import annotations

import colorsys
import functools
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_FOLDERS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation",
                "/usr/share/fonts/truetype/liberation2", "/usr/share/fonts/truetype/freefont")
# Regular and bold faces only: italics and condensed faces make characters of another shape.
_SKIPPED_FACES = ("Oblique", "Italic", "Condensed", "ExtraLight", "Mono-", "Narrow")


@functools.lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """The TrueType files styles draw with, sorted, always holding the `captcha` package's font."""
    import captcha

    files = {str(Path(captcha.__file__).parent / "data" / "DroidSansMono.ttf")}
    for folder in FONT_FOLDERS:
        files.update(str(p) for p in Path(folder).glob("*.ttf") if not any(s in p.name for s in _SKIPPED_FACES))
    return tuple(sorted(files))


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def render(style: str, label: str, width: int, height: int, rng: random.Random,
           lines: int | None = None) -> Image.Image:
    """An image of `label` in `style`; `width` 0 sizes it to the label; `lines` (None: the style's
    own) thin dark lines across the text."""
    draw = {"plain": _plain, "colour": _colour, "noisy": _noisy, "varied": _varied, "placed": _placed,
            "touching": _touching}[style]
    return draw(label, width, height, rng, lines)


def strike(image: Image.Image, count: int, rng: random.Random,
           box: tuple[float, float, float, float] | None = None) -> None:
    """Draw `count` thin dark lines across `box` (where the text is; default: the whole image), each
    entering left of it and leaving right of it at heights of its own, so it crosses characters."""
    left, top, right, bottom = box or (0, 0, image.width, image.height)
    reach = 0.1 * (right - left)
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        level = rng.randrange(0, 80)
        fill = {"L": level, "RGB": (level,) * 3, "RGBA": (level,) * 3 + (255,)}[image.mode]
        start = (left - rng.uniform(0, reach), rng.uniform(top, bottom))
        end = (right + rng.uniform(0, reach), rng.uniform(top, bottom))
        draw.line([start, end], fill=fill, width=max(1, round(image.height * rng.uniform(0.008, 0.025))))


def _fitted_font(path: str, text: str, width: int, height: int, fill: float) -> ImageFont.FreeTypeFont:
    """The largest size of the font at which `text` fits `fill` of the box."""
    size = max(6, int(height * fill))
    while size > 6:
        left, top, right, bottom = _font(path, size).getbbox(text)
        if right - left <= width * fill and bottom - top <= height * fill:
            break
        size -= 1
    return _font(path, size)


def _plain(label: str, width: int, height: int, rng: random.Random, lines: int | None) -> Image.Image:
    width = width or int(height * 0.75 * len(label)) + height
    font = _fitted_font(rng.choice(font_files()), label, width, height, rng.uniform(0.75, 0.92))
    image = Image.new("RGB", (width, height), "white")
    box = _draw_centred(ImageDraw.Draw(image), label, font, (width, height), (0.04, 0.06), (0, 0, 0), rng)
    if lines:
        strike(image, lines, rng, box)
    return image


def _draw_centred(draw, text: str, font, size: tuple[int, int], jitter: tuple[float, float], fill,
                  rng: random.Random) -> tuple[float, float, float, float]:
    """Draw `text` centred in an image of `size`, moved at random by up to `jitter` of each side;
    return the box it covers."""
    width, height = size
    left, top, right, bottom = font.getbbox(text)
    x = (width - (right - left)) / 2 - left + rng.uniform(-jitter[0], jitter[0]) * width
    y = (height - (bottom - top)) / 2 - top + rng.uniform(-jitter[1], jitter[1]) * height
    draw.text((x, y), text, font=font, fill=fill)
    return x + left, y + top, x + right, y + bottom


def _bright(rng: random.Random, palest: float = 0.85) -> tuple[int, int, int, int]:
    """An opaque saturated colour: mostly mid to dark, a third of the time pale (light cyan, yellow,
    pink: up to `palest` lightness)."""
    hue, pale = rng.random(), rng.random() < 0.35
    rgb = colorsys.hls_to_rgb(hue, rng.uniform(0.72, palest) if pale else rng.uniform(0.25, 0.5), 1.0)
    return tuple(int(255 * c) for c in rgb) + (255,)


def _colour(label: str, width: int, height: int, rng: random.Random, lines: int | None) -> Image.Image:
    path = rng.choice(font_files())
    size = int(height * rng.uniform(0.55, 0.7))
    glyphs = []
    for char in label:
        left, top, right, bottom = _font(path, size).getbbox(char)
        glyph = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((4 - left, 4 - top), char, font=_font(path, size), fill=_bright(rng))
        glyphs.append(glyph.rotate(rng.uniform(-15, 15), resample=Image.BICUBIC, expand=True))
    gaps = [int(height * rng.uniform(0.2, 0.6)) for _ in label]
    natural = sum(g.width for g in glyphs) + sum(gaps) + height // 2
    width = width or natural
    image = Image.new("RGBA", (max(width, natural), height), (0, 0, 0, 0))
    x = height // 4
    for glyph, gap in zip(glyphs, gaps):
        y = (height - glyph.height) // 2 + int(rng.uniform(-0.1, 0.1) * height)
        image.alpha_composite(glyph, (x, max(0, min(height - glyph.height, y))))
        x += glyph.width + gap
    if lines:
        strike(image, lines, rng, (height // 4, 0.25 * height, x - gaps[-1], 0.75 * height))
    return image.resize((width, height), Image.BICUBIC) if image.width != width else image


def _noisy(label: str, width: int, height: int, rng: random.Random, lines: int | None) -> Image.Image:
    width = width or int(height * 0.6 * len(label)) + height
    image = Image.new("L", (width, height), 255)
    pixels = image.load()
    for _ in range(width * height // 4):
        pixels[rng.randrange(width), rng.randrange(height)] = rng.randrange(90, 230)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 3) if lines is None else 0):  # light lines under the text
        draw.line([(rng.randrange(width), rng.randrange(height)), (rng.randrange(width), rng.randrange(height))],
                  fill=rng.randrange(60, 160), width=1)
    font = _fitted_font(rng.choice(font_files()), label, width, height, rng.uniform(0.7, 0.85))
    ink = rng.randrange(0, 60)
    box = _draw_centred(draw, label, font, (width, height), (0.05, 0.08), ink, rng)
    if lines:
        strike(image, lines, rng, box)
    return image.convert("RGB")


def _ink(rng: random.Random) -> tuple[int, int, int]:
    """A colour text is drawn in: mostly near black or dark grey, sometimes a dark or vivid colour."""
    if rng.random() < 0.6:
        level = rng.randrange(0, 100)
        return level, level, level
    rgb = colorsys.hls_to_rgb(rng.random(), rng.uniform(0.15, 0.5), rng.uniform(0.4, 1.0))
    return tuple(int(255 * c) for c in rgb)


def _background(width: int, height: int, rng: random.Random, noise: np.random.Generator) -> Image.Image:
    """White, a flat light colour, a light gradient or light speckle."""
    kind = rng.choice(("white", "flat", "gradient", "gradient", "speckle"))
    if kind == "white":
        return Image.new("RGB", (width, height), "white")
    light = [tuple(rng.randrange(170, 256) for _ in range(3)) for _ in range(2)]
    if kind == "flat":
        return Image.new("RGB", (width, height), light[0])
    if kind == "speckle":
        pixels = noise.integers(150, 256, (height, width, 1)).repeat(3, axis=2)
        return Image.fromarray(pixels.astype(np.uint8), "RGB")
    along = np.linspace(0, 1, width if rng.random() < 0.7 else height)
    ramp = np.outer(along, np.subtract(light[1], light[0])) + light[0]
    pixels = np.broadcast_to(ramp[None], (height, width, 3)) if len(along) == width else \
        np.broadcast_to(ramp[:, None], (height, width, 3))
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _wave(image: Image.Image, rng: random.Random) -> Image.Image:
    """The image's columns shifted up and down along a sine wave."""
    pixels = np.asarray(image)
    amplitude, period, phase = rng.uniform(1, 0.08 * image.height), rng.uniform(30, 120), rng.uniform(0, 2 * math.pi)
    out = np.empty_like(pixels)
    for x in range(image.width):
        out[:, x] = np.roll(pixels[:, x], int(round(amplitude * math.sin(2 * math.pi * x / period + phase))), axis=0)
    return Image.fromarray(out, image.mode)


def _varied(label: str, width: int, height: int, rng: random.Random, lines: int | None) -> Image.Image:
    noise = np.random.default_rng(rng.getrandbits(32))
    height = int(height * rng.uniform(0.75, 1.3))  # the size varies too: the model sees every input resized
    path, size = rng.choice(font_files()), int(height * rng.uniform(0.5, 0.8))
    ink, many_inks = _ink(rng), rng.random() < 0.25
    turn = rng.choice((3, 12, 25))
    glyphs = []
    for char in label:
        font = _font(path, max(8, int(size * rng.uniform(0.9, 1.1))))
        left, top, right, bottom = font.getbbox(char)
        glyph = Image.new("RGBA", (right - left + 6, bottom - top + 6), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((3 - left, 3 - top), char, font=font,
                                   fill=(_ink(rng) if many_inks else ink) + (255,))
        glyphs.append(glyph.rotate(rng.uniform(-turn, turn), resample=Image.BICUBIC, expand=True))
    # From crowded (characters touching, a quarter overlapping) to spread apart.
    spacing = rng.uniform(-0.25, 0.45)
    gaps = [int(g.width * (spacing + rng.uniform(-0.08, 0.08))) for g in glyphs]
    margin = int(height * rng.uniform(0.1, 0.4))
    natural = 2 * margin + sum(g.width for g in glyphs) + sum(gaps[:-1])
    image = _background(max(natural, 1), height, rng, noise).convert("RGBA")
    x = margin
    for glyph, gap in zip(glyphs, gaps):
        y = (height - glyph.height) // 2 + int(rng.uniform(-0.12, 0.12) * height)
        image.alpha_composite(glyph, (max(0, x), max(0, min(height - glyph.height, y))))
        x += glyph.width + gap
    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3)) if lines is None else 0):  # lines or curves through the text
        colour = ink if rng.random() < 0.6 else _ink(rng)
        points = [(int(image.width * t), int(height * (0.5 + rng.uniform(-0.3, 0.3))))
                  for t in np.linspace(rng.uniform(0, 0.2), rng.uniform(0.8, 1), rng.choice((2, 3, 5)))]
        draw.line(points, fill=colour, width=rng.choice((1, 1, 2, 3, 4)), joint="curve")
    if lines:
        strike(image, lines, rng, (margin, 0.25 * height, image.width - margin, 0.75 * height))
    if rng.random() < 0.3:
        for _ in range(int(image.width * height * rng.uniform(0.005, 0.03))):
            x, y, r = rng.randrange(image.width), rng.randrange(height), rng.choice((0, 1, 1, 2))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink if rng.random() < 0.5 else _ink(rng))
    if rng.random() < 0.3:
        image = _wave(image, rng)
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.3)))
    if rng.random() < 0.3:
        grain = noise.normal(0, rng.uniform(5, 25), (height, image.width, 1))
        image = Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8), "RGB")
    return image.resize((width, image.height), Image.BICUBIC) if width else image


def _placed(label: str, width: int, height: int, rng: random.Random, lines: int | None) -> Image.Image:
    """Characters of a few fonts, each its own colour, unevenly spaced, somewhere on a transparent canvas."""
    size = max(8, int(height * rng.uniform(0.25, 0.75)))  # a threefold range of text sizes
    fonts = rng.sample(font_files(), min(3, len(font_files())))
    glyphs = []
    for char in label:
        font = _font(rng.choice(fonts), size)
        left, top, right, bottom = font.getbbox(char)
        glyph = Image.new("RGBA", (right - left + 6, bottom - top + 6), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((3 - left, 3 - top), char, font=font, fill=_bright(rng, palest=0.9))
        glyphs.append(glyph.rotate(rng.uniform(-12, 12), resample=Image.BICUBIC, expand=True))
    text = _row(glyphs, [int(size * rng.uniform(0.05, 1.0)) for _ in glyphs], int(0.15 * size), rng)
    # Mostly a canvas wider than the text, up to 9.75 heights: short labels often sit in empty space.
    width = width or min(int(height * 9.75), max(int(height * rng.uniform(1.75, 9.75)), text.width + 4))
    scale = min(1.0, 0.96 * width / text.width, 0.96 * height / text.height)
    if scale < 1:
        text = text.resize((max(1, int(text.width * scale)), max(1, int(text.height * scale))), Image.LANCZOS)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    x, y = rng.randint(0, width - text.width), rng.randint(0, height - text.height)
    image.alpha_composite(text, (x, y))
    strike(image, rng.randint(0, 3) if lines is None else lines, rng,
           (x, y + 0.2 * text.height, x + text.width, y + 0.8 * text.height))
    return image


def _row(glyphs: list[Image.Image], gaps: list[int], jitter: int, rng: random.Random) -> Image.Image:
    """The glyphs side by side on a transparent strip, `gaps` apart (negative: overlapping), each moved
    up or down by up to `jitter`, the strip cropped to what is drawn."""
    tallest = max(g.height for g in glyphs) + 2 * jitter
    strip = Image.new("RGBA", (sum(g.width + max(0, gap) for g, gap in zip(glyphs, gaps)), tallest), (0, 0, 0, 0))
    x = 0
    for glyph, gap in zip(glyphs, gaps):
        strip.alpha_composite(glyph, (max(0, x), (tallest - glyph.height) // 2 + rng.randint(-jitter, jitter)))
        x += glyph.width + gap
    return strip.crop(strip.getbbox() or (0, 0, 1, 1))


def _touching(label: str, width: int, height: int, rng: random.Random, lines: int | None) -> Image.Image:
    """Squeezed characters of one ink overlapping their neighbours, centred on white."""
    font = _font(rng.choice(font_files()), max(16, height))  # drawn large, then fitted
    ascent, descent = font.getmetrics()
    ink, squeeze, overlap = _ink(rng) + (255,), rng.uniform(0.5, 0.75), rng.uniform(0.02, 0.25)
    glyphs = []
    for char in label:
        # Each glyph as wide as its ink and as tall as the font's line, so characters keep a common
        # baseline and a negative gap makes them overlap; upright, as such captchas draw them.
        left, _, right, _ = font.getbbox(char)
        glyph = Image.new("RGBA", (max(1, right - left), ascent + descent), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((-left, 0), char, font=font, fill=ink)
        glyphs.append(glyph.resize((max(1, int(glyph.width * squeeze)), glyph.height), Image.LANCZOS))
    text = _row(glyphs, [-int(g.width * (overlap + rng.uniform(-0.02, 0.05))) for g in glyphs], 1, rng)
    fill = rng.uniform(0.7, 0.9)
    width = width or int(text.width * fill * height / text.height) + height // 2
    scale = min(0.92 * width / text.width, fill * height / text.height)
    text = text.resize((max(1, int(text.width * scale)), max(1, int(text.height * scale))), Image.LANCZOS)
    image = Image.new("RGBA", (width, height), (255, 255, 255, 255))
    x = max(0, min(width - text.width, (width - text.width) // 2 + int(rng.uniform(-0.04, 0.04) * width)))
    y = max(0, min(height - text.height, (height - text.height) // 2 + int(rng.uniform(-0.06, 0.06) * height)))
    image.alpha_composite(text, (x, y))
    image = image.convert("RGB")
    if lines:
        strike(image, lines, rng, (x, y + 0.2 * text.height, x + text.width, y + 0.8 * text.height))
    return image
