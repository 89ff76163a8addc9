"""Captcha styles drawn with fonts, for the synthetic source beside the `captcha` package's own style.

- `plain`: clean text, black on white, one font per image from the machine's fonts, tightly framed
  (small images such as 72x24 read like a site's simple captcha);
- `colour`: each character in its own colour (pale ones too: light cyan, yellow, pink), widely and
  unevenly spaced, slightly rotated, on a transparent background; the width follows the label
  (`width=0` in the spec), so 4 to 8 characters at height 80 give images 140 to 780 wide;
- `noisy`: dark characters over grey speckle noise and a few lines, for small JPEGs.

Fonts are the TrueType files of the machine's font packages (DejaVu, Liberation, FreeFont; Debian's
`fonts-dejavu-core` and `fonts-liberation`) and the DroidSansMono font the `captcha` package ships,
so a style renders anywhere; a machine with other fonts renders other images from the same spec.
"""
from __future__ import annotations

import colorsys
import functools
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

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


def render(style: str, label: str, width: int, height: int, rng: random.Random) -> Image.Image:
    """An image of `label` in `style`; `width` 0 sizes it to the label."""
    return {"plain": _plain, "colour": _colour, "noisy": _noisy}[style](label, width, height, rng)


def _fitted_font(path: str, text: str, width: int, height: int, fill: float) -> ImageFont.FreeTypeFont:
    """The largest size of the font at which `text` fits `fill` of the box."""
    size = max(6, int(height * fill))
    while size > 6:
        left, top, right, bottom = _font(path, size).getbbox(text)
        if right - left <= width * fill and bottom - top <= height * fill:
            break
        size -= 1
    return _font(path, size)


def _plain(label: str, width: int, height: int, rng: random.Random) -> Image.Image:
    width = width or int(height * 0.75 * len(label)) + height
    font = _fitted_font(rng.choice(font_files()), label, width, height, rng.uniform(0.75, 0.92))
    image = Image.new("RGB", (width, height), "white")
    _draw_centred(ImageDraw.Draw(image), label, font, (width, height), (0.04, 0.06), (0, 0, 0), rng)
    return image


def _draw_centred(draw, text: str, font, size: tuple[int, int], jitter: tuple[float, float], fill,
                  rng: random.Random) -> None:
    """Draw `text` centred in an image of `size`, moved at random by up to `jitter` of each side."""
    width, height = size
    left, top, right, bottom = font.getbbox(text)
    x = (width - (right - left)) / 2 - left + rng.uniform(-jitter[0], jitter[0]) * width
    y = (height - (bottom - top)) / 2 - top + rng.uniform(-jitter[1], jitter[1]) * height
    draw.text((x, y), text, font=font, fill=fill)


def _colour(label: str, width: int, height: int, rng: random.Random) -> Image.Image:
    path = rng.choice(font_files())
    size = int(height * rng.uniform(0.55, 0.7))
    glyphs = []
    for char in label:
        left, top, right, bottom = _font(path, size).getbbox(char)
        glyph = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
        hue, pale = rng.random(), rng.random() < 0.35
        rgb = colorsys.hls_to_rgb(hue, rng.uniform(0.72, 0.85) if pale else rng.uniform(0.25, 0.5), 1.0)
        ImageDraw.Draw(glyph).text((4 - left, 4 - top), char, font=_font(path, size),
                                   fill=tuple(int(255 * c) for c in rgb) + (255,))
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
    return image.resize((width, height), Image.BICUBIC) if image.width != width else image


def _noisy(label: str, width: int, height: int, rng: random.Random) -> Image.Image:
    width = width or int(height * 0.6 * len(label)) + height
    image = Image.new("L", (width, height), 255)
    pixels = image.load()
    for _ in range(width * height // 4):
        pixels[rng.randrange(width), rng.randrange(height)] = rng.randrange(90, 230)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 3)):
        draw.line([(rng.randrange(width), rng.randrange(height)), (rng.randrange(width), rng.randrange(height))],
                  fill=rng.randrange(60, 160), width=1)
    font = _fitted_font(rng.choice(font_files()), label, width, height, rng.uniform(0.7, 0.85))
    ink = rng.randrange(0, 60)
    _draw_centred(draw, label, font, (width, height), (0.05, 0.08), ink, rng)
    return image.convert("RGB")
