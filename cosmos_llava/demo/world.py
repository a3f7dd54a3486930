"""The shape world: small procedurally drawn scenes with exact symbolic ground truth.

A scene holds 1 to 5 shapes (the count is uniform, so counting answers 1-5 are balanced). The image is
cut into a 3 x 3 grid and only five cells are used, one per position word:

    +-----+-----+-----+
    |     | üst |     |      sol = left-middle, sağ = right-middle, üst = top-middle,
    +-----+-----+-----+      alt = bottom-middle, orta = centre
    | sol |orta | sağ |
    +-----+-----+-----+      At most one shape per cell, drawn inside it with a one-pixel margin,
    |     | alt |     |      so shapes never overlap and a position word names exactly one shape.
    +-----+-----+-----+

No two shapes of a scene share (kind, colour), so "the red circle" is always one shape. Colours are
saturated and far apart in RGB; backgrounds are light and nearly grey (plain, or per-pixel noise whose
channels move together), so no background pixel is mistaken for a shape colour and i.i.d. noise never
forms a shape. Everything about a scene's image (jitter, sizes, background tint, noise) follows from
`Scene.seed`, so `draw` and `boxes` agree and the same seed always gives the same bytes.

Records (`record`, `write_world`) follow annotate's scene format ({"id", "image", "captions", "boxes"}
with boxes normalised to 0..1, as in annotate/examples/scenes.json) plus "shapes" and "background",
the ground truth the teacher reads instead of parsing text.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .turkish import capitalize, join_and, locative, number_word

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "KINDS",
    "REGIONS",
    "SIZES",
    "Scene",
    "Shape",
    "boxes",
    "captions",
    "draw",
    "layout",
    "make_scene",
    "make_scenes",
    "PATCH_TARGET_CLASSES",
    "patch_targets",
    "record",
    "write_world",
]

KINDS = ("daire", "kare", "üçgen", "yıldız")
COLOURS = {
    "kırmızı": (215, 35, 35),
    "mavi": (35, 75, 215),
    "yeşil": (30, 150, 50),
    "sarı": (235, 200, 20),
    "mor": (130, 50, 175),
    "turuncu": (245, 125, 20),
}
SIZES = ("küçük", "büyük")
# Region -> (column, row) in the 3 x 3 grid. Tuple order is reading order (top, left, centre, right,
# bottom), used wherever shapes are listed.
REGIONS = {"üst": (1, 0), "sol": (0, 1), "orta": (1, 1), "sağ": (2, 1), "alt": (1, 2)}
BACKGROUNDS = ("düz", "gürültülü")

# Shape side as a share of the image side. The gap between the ranges keeps "small" and "big" apart
# even for a star, whose ink covers less of its box than a square's.
_SIDE = {"küçük": (0.14, 0.16), "büyük": (0.24, 0.28)}
_MARGIN = 1  # pixels kept free at each cell edge: shapes in neighbouring cells never touch

# Words for the background in captions (the first is the canonical one).
_BACKGROUND_WORDS = {"düz": ("düz", "sade"), "gürültülü": ("gürültülü", "benekli")}
# "Görselin X" phrases for captions: "görselin üstünde" would read as "on top of the image".
_IMAGE_PARTS = {"üst": "üst kısmında", "sol": "sol tarafında", "orta": "ortasında", "sağ": "sağ tarafında",
                "alt": "alt kısmında"}


@dataclass(frozen=True)
class Shape:
    kind: str  # KINDS
    colour: str  # COLOURS
    size: str  # SIZES
    region: str  # REGIONS

    @property
    def label(self) -> str:
        """"kırmızı daire": unique within a scene."""
        return f"{self.colour} {self.kind}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "colour": self.colour, "size": self.size, "region": self.region}


@dataclass(frozen=True)
class Scene:
    id: str
    shapes: tuple[Shape, ...]
    background: str  # BACKGROUNDS
    seed: int  # drives everything drawn: jitter, exact sizes, background tint and noise


def make_scene(rng: random.Random, scene_id: str) -> Scene:
    """A random scene: 1-5 shapes (uniform), distinct regions, distinct (kind, colour) pairs, random
    sizes and background."""
    count = rng.randint(1, 5)
    regions = rng.sample(list(REGIONS), count)
    pairs = rng.sample([(k, c) for k in KINDS for c in COLOURS], count)
    shapes = tuple(Shape(kind, colour, rng.choice(SIZES), region) for (kind, colour), region in zip(pairs, regions))
    return Scene(scene_id, shapes, rng.choice(BACKGROUNDS), rng.getrandbits(31))


def make_scenes(n: int, seed: int, prefix: str = "scene") -> list[Scene]:
    """`n` scenes with ids "<prefix>-00000", ...; the same seed gives the same scenes (and the first k
    of a longer list equal a list of k)."""
    rng = random.Random(seed)
    return [make_scene(rng, f"{prefix}-{i:05d}") for i in range(n)]


# ------------------------------------------------------------------------------------------ drawing


def _cell(region: str, size: int) -> tuple[int, int, int, int]:
    col, row = REGIONS[region]
    edges = [round(i * size / 3) for i in range(4)]
    return edges[col], edges[row], edges[col + 1], edges[row + 1]


def layout(scene: Scene, size: int = 96) -> tuple[tuple[int, int, int], list[tuple[int, int, int, int]]]:
    """(background RGB, one pixel box (x0, y0, x1, y1) per shape, x1/y1 exclusive), from scene.seed.

    Each box is square, inside its cell with `_MARGIN` pixels to spare, at a random offset.
    """
    rng = random.Random(scene.seed)
    grey = rng.randint(222, 246)
    background = tuple(min(255, grey + rng.randint(-6, 6)) for _ in range(3))  # nearly grey tint
    out = []
    for shape in scene.shapes:
        x0, y0, x1, y1 = _cell(shape.region, size)
        room = min(x1 - x0, y1 - y0) - 2 * _MARGIN
        low, high = _SIDE[shape.size]
        side = max(2, min(room, round(size * rng.uniform(low, high))))
        left = x0 + _MARGIN + rng.randint(0, x1 - x0 - 2 * _MARGIN - side)
        top = y0 + _MARGIN + rng.randint(0, y1 - y0 - 2 * _MARGIN - side)
        out.append((left, top, left + side, top + side))
    return background, out


def _star(box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """A five-pointed star, point up, stretched to fill the box (the stretch is a few per cent)."""
    points = []
    for i in range(10):
        radius = 1.0 if i % 2 == 0 else 0.4
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0, x1, y1 = box
    w, h = x1 - 1 - x0, y1 - 1 - y0
    return [(x0 + (x - min(xs)) / (max(xs) - min(xs)) * w, y0 + (y - min(ys)) / (max(ys) - min(ys)) * h)
            for x, y in points]


def draw(scene: Scene, size: int = 96) -> Image.Image:
    """The scene as an RGB image of size x size pixels (deterministic given the scene)."""
    background, shape_boxes = layout(scene, size)
    if scene.background == "gürültülü":
        noise = np.random.default_rng(scene.seed)
        # Mostly luminance noise (the same offset on every channel) plus a little per-channel jitter:
        # stays light and nearly grey, far from any shape colour.
        grey = noise.normal(0.0, 9.0, (size, size, 1))
        tint = noise.normal(0.0, 2.5, (size, size, 3))
        pixels = np.clip(np.array(background, dtype=float) + grey + tint, 190, 255).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB")
    else:
        image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    for shape, box in zip(scene.shapes, shape_boxes):
        colour = COLOURS[shape.colour]
        x0, y0, x1, y1 = box
        inclusive = (x0, y0, x1 - 1, y1 - 1)  # PIL includes the end pixel
        if shape.kind == "daire":
            pen.ellipse(inclusive, fill=colour)
        elif shape.kind == "kare":
            pen.rectangle(inclusive, fill=colour)
        elif shape.kind == "üçgen":
            pen.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), ((x0 + x1 - 1) / 2, y0)], fill=colour)
        else:
            pen.polygon(_star(box), fill=colour)
    return image


def boxes(scene: Scene, size: int = 96) -> list[dict]:
    """[{"label": "kırmızı daire", "bbox": [x0, y0, x1, y1]}] normalised to 0..1, one per shape in order."""
    _, shape_boxes = layout(scene, size)
    return [{"label": shape.label, "bbox": [round(v / size, 4) for v in box]}
            for shape, box in zip(scene.shapes, shape_boxes)]


# ----------------------------------------------------------------------------------------- captions


def _phrase(shape: Shape, with_size: bool = True) -> str:
    """"büyük kırmızı bir daire" (indefinite noun phrase; size first, as Turkish prefers)."""
    return f"{shape.size} {shape.colour} bir {shape.kind}" if with_size else f"{shape.colour} bir {shape.kind}"


def _count_phrase(n: int) -> str:
    return "tek bir şekil" if n == 1 else f"{number_word(n)} şekil"


def _caption(template: int, scene: Scene, rng: random.Random) -> str:
    shapes = list(scene.shapes)
    rng.shuffle(shapes)
    ground = rng.choice(_BACKGROUND_WORDS[scene.background])
    if template == 0:  # "Düz bir zeminde solda büyük kırmızı bir daire ve sağda ... var."
        body = join_and([f"{locative(s.region)} {_phrase(s)}" for s in shapes])
        return f"{capitalize(ground)} bir zeminde {body} var."
    if template == 1:  # "Görselde iki şekil var: büyük kırmızı bir daire ve küçük mavi bir kare."
        return f"Görselde {_count_phrase(len(shapes))} var: {join_and([_phrase(s) for s in shapes])}."
    if template == 2:  # "Solda kırmızı bir daire, ortada mavi bir kare görülüyor."
        body = join_and([f"{locative(s.region)} {_phrase(s, with_size=False)}" for s in shapes])
        return f"{capitalize(body)} görülüyor."
    if template == 3:  # "Gürültülü bir zemin üzerinde büyük sarı bir yıldız bulunuyor."
        return f"{capitalize(ground)} bir zemin üzerinde {join_and([_phrase(s) for s in shapes])} bulunuyor."
    # "Görselin sol tarafında büyük kırmızı bir daire, ortasında küçük mavi bir kare var."
    body = join_and([f"{_IMAGE_PARTS[s.region]} {_phrase(s)}" for s in shapes])
    return f"Görselin {body} var."


def captions(scene: Scene, rng: random.Random) -> list[str]:
    """Three captions from three different templates (shape order shuffled in each)."""
    return [_caption(t, scene, rng) for t in rng.sample(range(5), 3)]


# ------------------------------------------------------------------------------------------ records


def record(scene: Scene, size: int = 96) -> dict:
    """The scene's record: {"id", "image": "images/<id>.png", "captions", "boxes", "shapes",
    "background"}; captions are seeded from the scene, so the record is deterministic too."""
    return {
        "id": scene.id,
        "image": f"images/{scene.id}.png",
        "captions": captions(scene, random.Random(scene.seed ^ 0x5EED)),
        "boxes": boxes(scene, size),
        "shapes": [s.to_dict() for s in scene.shapes],
        "background": scene.background,
    }


# How many classes each position of a `patch_targets` tuple takes: every kind, colour and size, plus 0
# (empty); every region, plus 0 (a corner cell, where no shape is ever drawn).
PATCH_TARGET_CLASSES = (len(KINDS) + 1, len(COLOURS) + 1, len(SIZES) + 1, len(REGIONS) + 1)


def patch_targets(record: dict, grid: int) -> list[tuple[int, int, int, int]]:
    """Per patch of a `grid` x `grid` patch grid (row-major), the (kind, colour, size) of the shape in
    the patch's cell, as 1-based indices into KINDS, COLOURS and SIZES, (0, 0, 0) for an empty cell,
    then the cell's region (1-based into REGIONS, 0 for a corner). A patch belongs to the cell its
    centre falls in.

    Why the region, which a patch's position alone decides: without it the encoder let the place fade
    from its tokens. Measured at 32 px patches, a linear probe read a shape token's cell from the
    projector's output 31% of the time (chance 20%), and the model answered "where is the circle?"
    at chance while it named the colour at a named place 44 of 44 times."""
    by_cell = {REGIONS[s["region"]]: s for s in record["shapes"]}
    region_of = {cell: i + 1 for i, cell in enumerate(REGIONS.values())}
    colours = list(COLOURS)
    targets = []
    for row in range(grid):
        for col in range(grid):
            cell = (int((col + 0.5) * 3 / grid), int((row + 0.5) * 3 / grid))
            shape = by_cell.get(cell)
            content = (KINDS.index(shape["kind"]) + 1, colours.index(shape["colour"]) + 1,
                       SIZES.index(shape["size"]) + 1) if shape else (0, 0, 0)
            targets.append((*content, region_of.get(cell, 0)))
    return targets


def write_world(folder, n: int, seed: int, size: int = 96, prefix: str = "scene") -> list[dict]:
    """Draw `n` scenes into `folder`/images/<id>.png and return their records (image paths are
    relative to `folder`)."""
    images = Path(folder) / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for scene in make_scenes(n, seed, prefix):
        draw(scene, size).save(images / f"{scene.id}.png")
        records.append(record(scene, size))
    return records
