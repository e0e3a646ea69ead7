"""Draws the app package's two icons: `color.png` (192x192) and `outline.png` (32x32).

The picture is a help-desk switchboard in a chat bubble: a panel of jacks with patch cords
connecting them, as an operator connects a caller to the right department.

    .venv/bin/python -m manifest.make_icons [OUT_DIR]

Shapes are drawn at 8x and scaled down, for smooth edges. The outline icon is built from a
coverage mask, so every pixel is pure white and only its alpha varies: Teams wants a white
outline on a transparent background.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SCALE = 8

BACKGROUND = (63, 81, 181)  # the manifest's default accent colour, #3F51B5
PANEL = (255, 255, 255)
JACK = (40, 53, 147)
JACK_RING = (197, 202, 233)
CORDS = ((255, 152, 0), (38, 198, 218), (236, 64, 122))

Point = tuple[float, float]


def _bezier(p0: Point, p1: Point, p2: Point, p3: Point, steps: int = 64) -> list[Point]:
    out = []
    for i in range(steps + 1):
        t = i / steps
        u = 1 - t
        out.append((
            u**3 * p0[0] + 3 * u**2 * t * p1[0] + 3 * u * t**2 * p2[0] + t**3 * p3[0],
            u**3 * p0[1] + 3 * u**2 * t * p1[1] + 3 * u * t**2 * p2[1] + t**3 * p3[1],
        ))
    return out


def _cord(a: Point, b: Point, sag: float) -> list[Point]:
    """A patch cord hanging between two jacks."""
    return _bezier(a, (a[0], a[1] + sag), (b[0], b[1] + sag), b)


def _scaled(points: Iterable[Point], k: float) -> list[Point]:
    return [(x * k, y * k) for x, y in points]


def _bubble(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], radius: float,
            tail: list[Point], fill=None, outline=None, width: int = 0) -> None:
    draw.rounded_rectangle(box, radius=radius, fill=fill, outline=outline, width=width)
    draw.polygon(tail, fill=fill if fill is not None else outline)


def color_icon(size: int = 192) -> Image.Image:
    k = size * SCALE / 192
    img = Image.new("RGB", (size * SCALE, size * SCALE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    # the panel: a chat bubble with its tail at the bottom left
    _bubble(draw, (28 * k, 30 * k, 164 * k, 140 * k), 22 * k,
            _scaled([(50, 132), (46, 166), (86, 136)], k), fill=PANEL)
    # three rows of three jacks
    jacks = [(56 + 40 * c, 56 + 29 * r) for r in range(3) for c in range(3)]
    for x, y in jacks:
        draw.ellipse(((x - 11) * k, (y - 11) * k, (x + 11) * k, (y + 11) * k), fill=JACK_RING)
        draw.ellipse(((x - 6) * k, (y - 6) * k, (x + 6) * k, (y + 6) * k), fill=JACK)
    # patch cords between departments, each ending in a plug on its jack
    pairs = [((56, 56), (136, 85), 34), ((96, 56), (56, 114), 30), ((96, 85), (136, 114), 22)]
    for (a, b, sag), colour in zip(pairs, CORDS, strict=True):
        draw.line(_scaled(_cord(a, b, sag), k), fill=colour, width=int(7 * k), joint="curve")
        for x, y in (a, b):
            draw.ellipse(((x - 7) * k, (y - 7) * k, (x + 7) * k, (y + 7) * k), fill=colour)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def outline_icon(size: int = 32) -> Image.Image:
    k = size * SCALE / 32
    mask = Image.new("L", (size * SCALE, size * SCALE), 0)
    draw = ImageDraw.Draw(mask)
    # the bubble's outline
    _bubble(draw, (3 * k, 4 * k, 29 * k, 23 * k), 5 * k,
            _scaled([(8, 21.5), (7, 29), (14.5, 21.5)], k), outline=255, width=int(2.2 * k))
    # four jacks and one cord connecting two of them
    for x, y in ((10, 10.5), (22, 10.5), (10, 17), (22, 17)):
        draw.ellipse(((x - 2.2) * k, (y - 2.2) * k, (x + 2.2) * k, (y + 2.2) * k), fill=255)
    draw.line(_scaled(_cord((10, 10.5), (22, 17), 5), k), fill=255, width=int(1.8 * k),
              joint="curve")
    # area averaging: exact coverage, no ringing halo of faint pixels around the strokes
    mask = mask.resize((size, size), Image.Resampling.BOX)
    img = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    img.putalpha(mask)
    return img


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else HERE
    out.mkdir(parents=True, exist_ok=True)
    color_icon().save(out / "color.png", optimize=True)
    outline_icon().save(out / "outline.png", optimize=True)
    print(f"wrote {out / 'color.png'} and {out / 'outline.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
