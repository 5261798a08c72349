"""Drawing for synthcrowd: articulated figures, clutter shapes, backgrounds, compositing.

Pure rendering: given geometry and colours it fills rasters. Scene sampling and the
annotations live in :mod:`lla.data.synthcrowd`.

An image is built from two integer rasters of shape (H, W), painted back to front:

- the *object map* (uint16): 0 for background, ``k > 0`` where the k-th painted object
  (a person or a piece of clutter) is the front-most thing;
- the *part map* (uint8): which surface (``PART_*``) of that object the pixel shows.

Each object is first rasterised alone on a small canvas (a :class:`Raster`, its amodal
mask) and then pasted over the maps, so both the amodal extent (full box) and the visible
pixels (visible box) of every person are exact. The RGB image is composed at the end from
the two maps, per-object colours and a background (:func:`compose_rgb`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Surface codes of the part map (0 = nothing painted).
PART_HEAD = 1     # face / head skin
PART_HAIR = 2
PART_SKIN = 3     # hands
PART_TOP = 4      # torso and sleeves (textured)
PART_BOTTOM = 5   # legs (textured)
PART_SHOES = 6
PART_SOLID = 7    # main surface of clutter / posters
PART_DETAIL = 8   # secondary surface of clutter (windows, wheels, frames)
NUM_PARTS = 9
TEXTURED_PARTS = (PART_TOP, PART_BOTTOM)

# Body proportions in units of standing height (feet to top of head).
THIGH = 0.26
SHIN = 0.245
TORSO = 0.31
NECK = 0.035
HEAD_H = 0.13
HEAD_W = 0.10
UPPER_ARM = 0.17
FOREARM = 0.15
SHOULDER_HALF = 0.11
HIP_HALF = 0.08
LEG_WIDTH = 0.08
ARM_WIDTH = 0.055
HAND_R = 0.026
SHOE_W = 0.07
SHOE_H = 0.035


@dataclass(frozen=True)
class Pose:
    """Joint angles of a figure, in radians.

    Limb angles are absolute, measured from "straight down" towards +x: 0 hangs down,
    +pi/2 points right, pi points up. ``lean`` tilts the torso about the hips (+ to
    the right). Each pair is (left limb, right limb) as seen in the image.
    """

    lean: float
    upper_arm: tuple[float, float]
    forearm: tuple[float, float]
    thigh: tuple[float, float]
    shin: tuple[float, float]


@dataclass(frozen=True)
class Build:
    """Body shape factors of one figure (1.0 = average)."""

    shoulders: float = 1.0
    limbs: float = 1.0
    head: float = 1.0
    coat: float = 0.0      # a coat / dress hem this far (standing heights) below the hips


@dataclass
class Raster:
    """An object rasterised alone: ``parts`` (h, w) uint8 of PART_* codes (0 = empty);
    canvas pixel (0, 0) lies at image pixel (x0, y0)."""

    parts: np.ndarray
    x0: int
    y0: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Tight amodal box (x1, y1, x2, y2), inclusive pixel corners, in image coordinates."""
        rows = np.flatnonzero(self.parts.any(axis=1))
        cols = np.flatnonzero(self.parts.any(axis=0))
        return (self.x0 + int(cols[0]), self.y0 + int(rows[0]),
                self.x0 + int(cols[-1]), self.y0 + int(rows[-1]))


@dataclass
class FigureGeometry:
    """A rasterised figure plus the landmarks annotations need (image coordinates, float)."""

    raster: Raster
    head_box: tuple[float, float, float, float]   # x1, y1, x2, y2 of the head ellipse
    top_y: float                                   # top of the head
    bottom_y: float                                # lowest point of the feet
    axis_x: float                                  # mid-point of head centre and feet


# A drawing primitive: (kind, part, coordinates, width). Kinds: "poly" (points),
# "line" (points, width: a thick polyline with round joints), "ellipse" (x1, y1, x2, y2),
# "chord_top" (upper half of the ellipse x1, y1, x2, y2), "ring" (ellipse outline, width).
Primitive = tuple[str, int, list[tuple[float, float]], float]


def _along(point: tuple[float, float], angle: float, length: float) -> tuple[float, float]:
    """``point`` moved ``length`` in the limb direction ``angle`` (0 = down, pi/2 = +x)."""
    return point[0] + math.sin(angle) * length, point[1] + math.cos(angle) * length


def figure_primitives(height: float, pose: Pose, build: Build) -> tuple[list[Primitive], dict]:
    """Primitives of a figure standing with its feet at the origin (y grows downwards).

    Returns the primitives in drawing order (legs, torso, arms, head) and landmarks
    {"head": (x1, y1, x2, y2), "feet": (x, y)} in the same local frame.
    """
    h = height
    thigh, shin = THIGH * h, SHIN * h
    # The longer leg (vertically) sets how high the hips are above the feet.
    leg_drop = [thigh * math.cos(pose.thigh[i]) + shin * math.cos(pose.shin[i]) for i in (0, 1)]
    hip_y = -max(max(leg_drop), 0.2 * h)
    up = (math.sin(pose.lean), -math.cos(pose.lean))       # unit vector along the spine
    side = (math.cos(pose.lean), math.sin(pose.lean))      # unit vector across the shoulders

    def offset(p: tuple[float, float], d: tuple[float, float], k: float) -> tuple[float, float]:
        return p[0] + d[0] * k, p[1] + d[1] * k

    hip_centre = (0.0, hip_y)
    neck = offset(hip_centre, up, TORSO * h)
    head_c = offset(neck, up, (NECK + HEAD_H / 2) * h)
    shoulder_half = SHOULDER_HALF * h * build.shoulders
    hip_half = HIP_HALF * h * build.shoulders
    leg_w = LEG_WIDTH * h * build.limbs
    arm_w = ARM_WIDTH * h * build.limbs
    prims: list[Primitive] = []
    feet = []
    for i, sign in ((0, -1.0), (1, 1.0)):
        hip = offset(hip_centre, side, sign * hip_half * 0.55)   # joint inside the hip corner
        knee = _along(hip, pose.thigh[i], thigh)
        ankle = _along(knee, pose.shin[i], shin)
        feet.append(ankle)
        prims.append(("line", PART_BOTTOM, [hip, knee, ankle], leg_w))
        toe = 1.0 if pose.shin[i] >= 0 else -1.0
        ax, ay = ankle
        prims.append(("ellipse", PART_SHOES,
                      [(ax - SHOE_W * h * (0.5 - 0.4 * toe), ay - SHOE_H * h * 0.6),
                       (ax + SHOE_W * h * (0.5 + 0.4 * toe), ay + SHOE_H * h * 0.4)], 0.0))
    # torso: shoulders wider than hips, overlapping the top of the legs a little
    torso = [offset(offset(neck, side, -shoulder_half), up, 0.01 * h),
             offset(offset(neck, side, shoulder_half), up, 0.01 * h),
             offset(offset(hip_centre, side, hip_half), up, -0.04 * h),
             offset(offset(hip_centre, side, -hip_half), up, -0.04 * h)]
    prims.append(("poly", PART_TOP, torso, 0.0))
    if build.coat > 0:     # flared skirt of a coat or dress over the thighs
        flare = hip_half * (1.15 + 1.2 * build.coat)
        hem = (hip_centre[0], hip_centre[1] + build.coat * h)
        prims.append(("poly", PART_TOP, [offset(hip_centre, side, -hip_half),
                                         offset(hip_centre, side, hip_half),
                                         (hem[0] + flare, hem[1]), (hem[0] - flare, hem[1])], 0.0))
    hand_r = HAND_R * h * build.limbs
    for i, sign in ((0, -1.0), (1, 1.0)):
        shoulder = offset(neck, side, sign * (shoulder_half - 0.3 * arm_w))
        elbow = _along(shoulder, pose.upper_arm[i], UPPER_ARM * h)
        wx, wy = _along(elbow, pose.forearm[i], FOREARM * h)
        prims.append(("line", PART_TOP, [shoulder, elbow, (wx, wy)], arm_w))
        prims.append(("ellipse", PART_SKIN, [(wx - hand_r, wy - hand_r),
                                             (wx + hand_r, wy + hand_r)], 0.0))
    hw, hh = HEAD_W * h * build.head / 2, HEAD_H * h * build.head / 2
    head_box = (head_c[0] - hw, head_c[1] - hh, head_c[0] + hw, head_c[1] + hh)
    prims.append(("line", PART_HEAD, [offset(neck, up, -0.02 * h), head_c], 0.045 * h))
    prims.append(("ellipse", PART_HEAD, [head_box[:2], head_box[2:]], 0.0))
    prims.append(("chord_top", PART_HAIR,
                  [(head_box[0] - 0.004 * h, head_box[1] - 0.004 * h),
                   (head_box[2] + 0.004 * h, head_box[1] + 1.1 * hh)], 0.0))
    feet_x = (feet[0][0] + feet[1][0]) / 2
    feet_y = max(feet[0][1], feet[1][1])
    return prims, {"head": head_box, "feet": (feet_x, feet_y)}


def rasterise(prims: list[Primitive], origin_x: float, origin_y: float) -> Raster:
    """Draw primitives (local coordinates) translated by (origin_x, origin_y) on a tight canvas.

    Later primitives overwrite earlier ones. An empty primitive list gives a 1×1 empty raster.
    """
    xs: list[float] = []
    ys: list[float] = []
    pad = 2.0
    for _kind, _part, pts, width in prims:
        for x, y in pts:
            xs.append(x)
            ys.append(y)
        pad = max(pad, width / 2 + 2.0)
    if not xs:
        return Raster(np.zeros((1, 1), np.uint8), 0, 0)
    x0 = math.floor(min(xs) + origin_x - pad)
    y0 = math.floor(min(ys) + origin_y - pad)
    w = math.ceil(max(xs) + origin_x + pad) - x0 + 1
    h = math.ceil(max(ys) + origin_y + pad) - y0 + 1
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    dx, dy = origin_x - x0, origin_y - y0
    for kind, part, pts, width in prims:
        shifted = [(x + dx, y + dy) for x, y in pts]
        if kind == "poly":
            draw.polygon(shifted, fill=part)
        elif kind == "line":
            draw.line(shifted, fill=part, width=max(1, round(width)), joint="curve")
            r = width / 2  # round caps at both ends
            for x, y in (shifted[0], shifted[-1]):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=part)
        elif kind == "ellipse":
            (ax, ay), (bx, by) = shifted
            draw.ellipse([ax, ay, max(bx, ax + 1), max(by, ay + 1)], fill=part)
        elif kind == "chord_top":
            (ax, ay), (bx, by) = shifted
            draw.chord([ax, ay, max(bx, ax + 1), ay + 2 * max(by - ay, 1)], 180, 360, fill=part)
        elif kind == "ring":
            (ax, ay), (bx, by) = shifted
            draw.ellipse([ax, ay, max(bx, ax + 2), max(by, ay + 2)], outline=part,
                         width=max(1, round(width)))
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown primitive kind {kind!r}")
    return Raster(np.asarray(canvas), x0, y0)


def render_figure(feet_x: float, feet_y: float, height: float, pose: Pose,
                  build: Build) -> FigureGeometry:
    """Rasterise a figure whose feet touch the image point (feet_x, feet_y)."""
    prims, marks = figure_primitives(height, pose, build)
    fx, fy = marks["feet"]
    ox, oy = feet_x - fx, feet_y - fy
    raster = rasterise(prims, ox, oy)
    hx1, hy1, hx2, hy2 = marks["head"]
    head_box = (hx1 + ox, hy1 + oy, hx2 + ox, hy2 + oy)
    top_y = head_box[1]
    axis_x = ((hx1 + hx2) / 2 + ox + feet_x) / 2
    return FigureGeometry(raster=raster, head_box=head_box, top_y=top_y,
                          bottom_y=feet_y + SHOE_H * height * 0.4, axis_x=axis_x)


# --- clutter -------------------------------------------------------------------------

def clutter_primitives(kind: str, size: float, rng: np.random.Generator) -> list[Primitive]:
    """Primitives of a non-person object standing on the origin, ``size`` px tall.

    kinds: "pole", "bin", "sign", "crate", "car", "bicycle", "coat_stand" (person-like:
    a torso-shaped coat on a stand), "blob" (a rounded bush/bag).
    """
    s = size
    if kind == "pole":
        w = s * rng.uniform(0.03, 0.06)
        return [("poly", PART_SOLID, [(-w, 0), (w, 0), (w, -s), (-w, -s)], 0.0)]
    if kind == "bin":
        w = s * rng.uniform(0.3, 0.45)
        return [("poly", PART_SOLID, [(-w, 0), (w, 0), (w * 1.1, -s), (-w * 1.1, -s)], 0.0),
                ("ellipse", PART_DETAIL, [(-w * 1.15, -s * 1.08), (w * 1.15, -s * 0.95)], 0.0)]
    if kind == "sign":
        w = s * 0.03
        board = s * rng.uniform(0.15, 0.3)
        return [("poly", PART_SOLID, [(-w, 0), (w, 0), (w, -s), (-w, -s)], 0.0),
                ("poly", PART_DETAIL, [(-board, -s), (board, -s), (board, -s + 1.4 * board),
                                       (-board, -s + 1.4 * board)], 0.0)]
    if kind == "crate":
        w = s * rng.uniform(0.5, 1.0)
        return [("poly", PART_SOLID, [(-w, 0), (w, 0), (w, -s), (-w, -s)], 0.0),
                ("line", PART_DETAIL, [(-w, -s / 2), (w, -s / 2)], max(1.0, s * 0.05))]
    if kind == "car":
        length = s * rng.uniform(2.4, 3.2)
        half = length / 2
        wheel = s * 0.22
        return [("poly", PART_SOLID, [(-half, -wheel), (half, -wheel), (half, -s * 0.55),
                                      (half * 0.5, -s * 0.6), (half * 0.3, -s),
                                      (-half * 0.45, -s), (-half * 0.7, -s * 0.6),
                                      (-half, -s * 0.55)], 0.0),
                ("poly", PART_DETAIL, [(half * 0.25, -s * 0.62), (-half * 0.4, -s * 0.62),
                                       (-half * 0.38, -s * 0.92), (half * 0.2, -s * 0.92)], 0.0),
                ("ellipse", PART_DETAIL, [(-half * 0.7 - wheel, -2 * wheel),
                                          (-half * 0.7 + wheel, 0)], 0.0),
                ("ellipse", PART_DETAIL, [(half * 0.7 - wheel, -2 * wheel),
                                          (half * 0.7 + wheel, 0)], 0.0)]
    if kind == "bicycle":
        r = s * 0.22
        dx = s * 0.36
        lw = max(1.0, s * 0.025)
        return [("ring", PART_DETAIL, [(-dx - r, -2 * r), (-dx + r, 0)], lw),
                ("ring", PART_DETAIL, [(dx - r, -2 * r), (dx + r, 0)], lw),
                ("line", PART_SOLID, [(-dx, -r), (0, -r), (dx * 0.6, -2.2 * r), (-dx * 0.2, -2.2 * r),
                                      (0, -r)], lw * 1.5),
                ("line", PART_SOLID, [(dx, -r), (dx * 0.75, -2.6 * r)], lw * 1.5)]
    if kind == "coat_stand":
        w = s * 0.03
        coat = s * 0.16
        return [("poly", PART_DETAIL, [(-w, 0), (w, 0), (w, -s), (-w, -s)], 0.0),
                ("poly", PART_SOLID, [(-coat, -s * 0.9), (coat, -s * 0.9), (coat * 0.8, -s * 0.35),
                                      (-coat * 0.8, -s * 0.35)], 0.0),
                ("ellipse", PART_DETAIL, [(-s * 0.05, -s * 1.02), (s * 0.05, -s * 0.9)], 0.0)]
    if kind == "blob":
        w = s * rng.uniform(0.3, 0.6)
        return [("ellipse", PART_SOLID, [(-w, -s), (w, 0)], 0.0)]
    raise ValueError(f"unknown clutter kind {kind!r}")


CLUTTER_KINDS = ("pole", "bin", "sign", "crate", "coat_stand", "blob")


# --- painting and compositing ------------------------------------------------------

def paint(object_map: np.ndarray, part_map: np.ndarray, raster: Raster, object_id: int) -> None:
    """Paint ``raster`` over the (H, W) maps in place: its pixels take ``object_id``."""
    height, width = object_map.shape
    h, w = raster.parts.shape
    ix0, iy0 = max(raster.x0, 0), max(raster.y0, 0)
    ix1, iy1 = min(raster.x0 + w, width), min(raster.y0 + h, height)
    if ix0 >= ix1 or iy0 >= iy1:
        return
    local = raster.parts[iy0 - raster.y0:iy1 - raster.y0, ix0 - raster.x0:ix1 - raster.x0]
    covered = local > 0
    object_map[iy0:iy1, ix0:ix1][covered] = object_id
    part_map[iy0:iy1, ix0:ix1][covered] = local[covered]


def visible_pixels(object_map: np.ndarray, raster: Raster, object_id: int) -> tuple[np.ndarray, int, int]:
    """Boolean (h', w') mask of where ``object_id`` is front-most inside the raster's
    canvas clipped to the image, and the image coordinates (x, y) of its pixel (0, 0)."""
    height, width = object_map.shape
    h, w = raster.parts.shape
    ix0, iy0 = max(raster.x0, 0), max(raster.y0, 0)
    ix1, iy1 = min(raster.x0 + w, width), min(raster.y0 + h, height)
    if ix0 >= ix1 or iy0 >= iy1:
        return np.zeros((0, 0), bool), ix0, iy0
    return object_map[iy0:iy1, ix0:ix1] == object_id, ix0, iy0


def render_background(rng: np.random.Generator, width: int, height: int, horizon_y: float,
                      street: bool) -> np.ndarray:
    """A textured backdrop (H, W, 3) uint8: wall/sky above ``horizon_y``, ground below,
    low-frequency colour noise, building blocks with windows, and for ``street`` scenes
    lane lines converging to the horizon."""
    horizon = int(np.clip(horizon_y, 0, height))
    top = rng.uniform(60, 220, 3)
    ground = rng.uniform(50, 170, 3)
    img = np.empty((height, width, 3), np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None, None]            # (H, 1, 1)
    img[:horizon] = top * (1.0 - 0.25 * rows[:horizon] / max(height, 1))
    img[horizon:] = ground * (0.8 + 0.4 * (rows[horizon:] - horizon) / max(height - horizon, 1))
    # low-frequency colour noise
    grid = (max(2, height // 24), max(2, width // 24))
    coarse = (rng.uniform(-1, 1, (*grid, 1)) * 0.75 + rng.uniform(-1, 1, (*grid, 3)) * 0.25)
    coarse_img = Image.fromarray(((coarse + 1) * 127.5).astype(np.uint8)).resize(
        (width, height), Image.BILINEAR)
    img += (np.asarray(coarse_img, np.float32) - 127.5) * rng.uniform(0.15, 0.4)
    # building blocks / shop fronts behind the people, with a grid of windows
    for _ in range(int(rng.integers(2, 7))):
        x1 = int(rng.uniform(-0.1, 1.0) * width)
        x2 = x1 + int(rng.uniform(0.1, 0.4) * width)
        y2 = int(max(horizon, height * 0.3))
        y1 = y2 - int(rng.uniform(0.2, 0.7) * height)
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if x1 >= x2 or y1 >= y2:
            continue
        block = img[y1:y2, x1:x2]
        block[:] = rng.uniform(40, 230, 3)
        step = max(6, int((x2 - x1) / rng.uniform(3, 8)))
        rows_on = (np.arange(y2 - y1) % step) >= step // 2
        cols_on = (np.arange(x2 - x1) % step) >= step // 2
        block[rows_on[:, None] & cols_on[None, :]] = rng.uniform(20, 250, 3)
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    if street and horizon < height:
        vx = rng.uniform(0.3, 0.7) * width
        for k in range(-3, 4):
            draw.line([(vx, horizon), (vx + k * width * 0.35, height)],
                      fill=(235, 235, 225), width=max(1, height // 160))
    return np.asarray(canvas)


@dataclass
class Appearance:
    """Per-object colours and clothing texture, indexed by object id (row 0 = background).

    ``palette``: (K+1, NUM_PARTS, 3) float32 RGB per object and part;
    ``stripes``: (K+1, 4) float32 per object: amplitude, x frequency, y frequency, phase
    of a square-wave stripe pattern applied to TEXTURED_PARTS.
    """

    palette: np.ndarray
    stripes: np.ndarray


_NOISE_TILE_SIZE = 512


@functools.lru_cache(maxsize=4)
def _noise_tile(sigma: float) -> np.ndarray:
    """A fixed (512, 512, 3) int16 tile of Gaussian noise with std ``sigma`` (the same in
    every process, so images do not depend on which worker drew them)."""
    noise = np.random.default_rng(12345).standard_normal((_NOISE_TILE_SIZE, _NOISE_TILE_SIZE, 3))
    return np.round(noise * sigma).astype(np.int16)


def _pixel_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """(H, W, 3) int16 noise assembled from random crops of the fixed tile (cheap)."""
    tile = _noise_tile(sigma)
    out = np.empty((height, width, 3), np.int16)
    step = _NOISE_TILE_SIZE // 2
    for y in range(0, height, step):
        for x in range(0, width, step):
            h, w = min(step, height - y), min(step, width - x)
            ty = int(rng.integers(0, _NOISE_TILE_SIZE - h + 1))
            tx = int(rng.integers(0, _NOISE_TILE_SIZE - w + 1))
            out[y:y + h, x:x + w] = tile[ty:ty + h, tx:tx + w]
    return out


def compose_rgb(background: np.ndarray, object_map: np.ndarray, part_map: np.ndarray,
                appearance: Appearance, rng: np.random.Generator, noise_sigma: float,
                smoothing: float) -> Image.Image:
    """RGB image from the (H, W) maps: object colours with stripe texture over the
    (H, W, 3) uint8 background, Gaussian pixel noise of std ``noise_sigma`` and a light
    blur with the separable kernel [s/2, 1 - s, s/2], s = ``smoothing`` in [0, 1)."""
    height, width = object_map.shape
    n_objects = appearance.palette.shape[0]
    key = object_map.astype(np.int32) * NUM_PARTS + part_map          # (H, W) palette row
    colours = np.clip(appearance.palette, 0, 255).astype(np.uint8).reshape(-1, 3)
    img = np.where((object_map > 0)[..., None], colours[key], background)    # (H, W, 3) uint8
    # stripes on the textured garments of striped objects
    textured = np.zeros(NUM_PARTS, bool)
    textured[list(TEXTURED_PARTS)] = True
    striped_key = (appearance.stripes[:, 0] > 0)[:, None] & textured[None, :]   # (K+1, P)
    flat = np.flatnonzero(striped_key.reshape(n_objects * NUM_PARTS)[key].reshape(-1))
    pixels = img.reshape(-1, 3)
    if flat.size:
        ys, xs = np.divmod(flat, width)
        amp, fx, fy, phase = appearance.stripes[object_map.reshape(-1)[flat]].T
        gain = 1.0 + amp * np.where(np.sin(fx * xs + fy * ys + phase) >= 0, 1.0, -1.0)
        pixels[flat] = np.clip(pixels[flat] * gain[:, None], 0, 255).astype(np.uint8)
    if noise_sigma > 0:
        noisy = img.astype(np.int16) + _pixel_noise(rng, height, width, noise_sigma)
        img = np.clip(noisy, 0, 255).astype(np.uint8)
    out = Image.fromarray(img)
    if smoothing > 0:
        taps = np.array([smoothing / 2, 1 - smoothing, smoothing / 2])
        out = out.filter(ImageFilter.Kernel((3, 3), np.outer(taps, taps).ravel().tolist(), scale=1))
    return out
