"""Checks of the two icons Teams requires, with a message that says how to fix each mistake.

- color: a PNG of 192x192 pixels (full colour).
- outline: a PNG of 32x32 pixels, white on a transparent background: every pixel is either
  transparent or white (anti-aliased edges are white with partial alpha).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

HERE = Path(__file__).resolve().parent
DEFAULT_COLOR = HERE / "color.png"
DEFAULT_OUTLINE = HERE / "outline.png"

COLOR_SIZE = (192, 192)
OUTLINE_SIZE = (32, 32)
# a channel at least this bright counts as white (anti-aliasing may round 255 down a little)
WHITE_MIN = 250
# the outline must leave at least this share of its pixels fully transparent
MIN_TRANSPARENT_SHARE = 0.2

_REMAKE = "`python -m manifest.make_icons` draws valid ones"


def rgba_pixels(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """Every pixel as (r, g, b, a)."""
    raw = image.convert("RGBA").tobytes()
    return [(raw[i], raw[i + 1], raw[i + 2], raw[i + 3]) for i in range(0, len(raw), 4)]


def _open(data: bytes, what: str) -> tuple[Image.Image | None, list[str]]:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return None, [f"{what}: not an image Pillow can read: save it as a PNG ({_REMAKE})"]
    if image.format != "PNG":
        return None, [f"{what}: is a {image.format} image; Teams accepts PNG only: save it as PNG"]
    return image, []


def check_color(data: bytes, name: str = "color.png") -> list[str]:
    what = f"icons.color ({name})"
    image, problems = _open(data, what)
    if image is None:
        return problems
    if image.size != COLOR_SIZE:
        problems.append(
            f"{what}: is {image.width}x{image.height} pixels; Teams needs exactly "
            f"{COLOR_SIZE[0]}x{COLOR_SIZE[1]}: resize it ({_REMAKE})"
        )
    return problems


def check_outline(data: bytes, name: str = "outline.png") -> list[str]:
    what = f"icons.outline ({name})"
    image, problems = _open(data, what)
    if image is None:
        return problems
    if image.size != OUTLINE_SIZE:
        problems.append(
            f"{what}: is {image.width}x{image.height} pixels; Teams needs exactly "
            f"{OUTLINE_SIZE[0]}x{OUTLINE_SIZE[1]}: resize it ({_REMAKE})"
        )
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ) or (image.mode in ("RGB", "L") and "transparency" in image.info)
    if not has_alpha:
        problems.append(
            f"{what}: has no transparency ({image.mode} image): Teams needs a white outline "
            f"on a transparent background: save it as RGBA with a transparent background"
        )
        return problems
    pixels = rgba_pixels(image)
    transparent = sum(1 for p in pixels if p[3] == 0)
    if transparent < MIN_TRANSPARENT_SHARE * len(pixels):
        problems.append(
            f"{what}: its background is not transparent (only {transparent} of {len(pixels)} "
            f"pixels are): make everything but the outline fully transparent"
        )
    coloured = [p for p in pixels if p[3] > 0 and min(p[:3]) < WHITE_MIN]
    if coloured:
        r, g, b, _ = coloured[0]
        problems.append(
            f"{what}: {len(coloured)} visible pixels are not white (e.g. #{r:02X}{g:02X}{b:02X}): "
            f"Teams shows only white outlines: draw it in white (#FFFFFF) only"
        )
    return problems
