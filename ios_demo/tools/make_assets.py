"""Draw the demo's bundled images with Pillow (no downloads): the sample photo and the app icon.

Run from the repository root to regenerate them:

    python ios_demo/tools/make_assets.py

The sample is deliberately landscape (4:3), so the app's centre crop
(resize the shorter side, crop the centre square) is exercised on first launch.
It is a drawing, not a photo: what a model predicts for it says little.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ASSETS = Path(__file__).resolve().parent.parent / "ShuffleNetDemo" / "Assets.xcassets"
SAMPLE = ASSETS / "Sample.imageset" / "sample.png"
ICON = ASSETS / "AppIcon.appiconset" / "AppIcon.png"


def vertical_gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    return image


def draw_sample(path: Path) -> None:
    """A hot-air balloon over hills: 800x600, RGB, no alpha."""
    width, height = 800, 600
    image = vertical_gradient((width, height), (92, 158, 230), (200, 226, 248))
    draw = ImageDraw.Draw(image)
    # clouds
    for cx, cy, r in [(130, 110, 38), (175, 95, 48), (225, 115, 36), (610, 170, 30), (650, 155, 42), (695, 175, 30)]:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 250, 252))
    # hills
    draw.ellipse([-200, 470, 500, 900], fill=(86, 150, 74))
    draw.ellipse([300, 440, 1050, 920], fill=(66, 128, 60))
    # balloon envelope: vertical colour stripes clipped to an ellipse
    box = (300, 90, 500, 330)
    stripes = Image.new("RGB", image.size)
    stripe_draw = ImageDraw.Draw(stripes)
    colours = [(214, 48, 49), (253, 203, 110), (214, 48, 49), (9, 132, 227), (214, 48, 49), (253, 203, 110)]
    stripe_width = (box[2] - box[0]) / len(colours)
    for index, colour in enumerate(colours):
        x0 = box[0] + index * stripe_width
        stripe_draw.rectangle([x0, box[1], x0 + stripe_width, box[3]], fill=colour)
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    ImageDraw.Draw(mask).polygon([(330, 290), (470, 290), (425, 365), (375, 365)], fill=255)
    stripe_draw.polygon([(330, 290), (470, 290), (425, 365), (375, 365)], fill=(200, 40, 40))
    image.paste(stripes, (0, 0), mask)
    # ropes and basket
    for x_top, x_bottom in [(378, 385), (422, 415)]:
        draw.line([(x_top, 365), (x_bottom, 400)], fill=(60, 40, 30), width=3)
    draw.rectangle([380, 398, 420, 430], fill=(139, 94, 52), outline=(90, 60, 30), width=3)
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    image.save(path, optimize=True)


def draw_icon(path: Path) -> None:
    """1024x1024 opaque icon: three channel groups, shuffled (the ShuffleNet idea)."""
    size = 1024
    image = vertical_gradient((size, size), (38, 50, 86), (18, 24, 44))
    draw = ImageDraw.Draw(image)
    colours = [(235, 87, 87), (242, 201, 76), (86, 204, 242)]
    left, right = 200, 824
    top_y, bottom_y = 300, 724
    slots = [left + i * (right - left) / 8 for i in range(9)]
    for group, colour in enumerate(colours):
        for member in range(3):
            x_top = slots[group * 3 + member]
            x_bottom = slots[member * 3 + group]
            draw.line([(x_top, top_y), (x_bottom, bottom_y)], fill=colour, width=26)
            draw.ellipse([x_top - 30, top_y - 30, x_top + 30, top_y + 30], fill=colour)
            draw.ellipse([x_bottom - 30, bottom_y - 30, x_bottom + 30, bottom_y + 30], fill=colour)
    image.convert("RGB").save(path, optimize=True)


if __name__ == "__main__":
    draw_sample(SAMPLE)
    draw_icon(ICON)
    print(f"wrote {SAMPLE} and {ICON}")
