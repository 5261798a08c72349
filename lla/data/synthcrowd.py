"""synthcrowd: a procedurally generated dense-crowd dataset in the real on-disk formats.

``lla data synth --profile mini --out-dir DIR`` writes two flavours, each in the layout of the
real dataset so the same converters read them:

- ``DIR/crowdhuman/``: ``Images/<ID>.jpg``, ``annotation_train.odgt``, ``annotation_val.odgt``
  (square images by default, dense crowds, heavy mutual occlusion, ``mask`` ignore regions);
- ``DIR/citypersons/``: ``leftImg8bit/<split>/<city>/<im_name>.png`` and
  ``annotations/anno_<split>.mat`` (2:1 street scenes, fewer people over a range of
  heights, riders / sitting / unusual postures / groups / fake humans as ignore classes).

People are articulated figures (see :mod:`lla.data.synth_render`) placed by a
perspective model (height grows linearly with the distance of the feet below the horizon)
in groups, painted far to near into an object map. Per person the annotations are

- full box: tight box of the figure drawn alone (may extend past the image border);
- visible box: box of the pixels where it is front-most, ignoring slivers thinner than
  ``visible_min_width`` px (which an annotator would not notice);
- head box: box of the head ellipse; occlusion flags from visible pixel fractions.

Annotator rules (each threshold is a knob in ``params.yaml``): a person whose visible
pixels are below ``drop_below_visible_fraction`` of the figure is not annotated (nobody
could see it); one whose visible box is shorter than ``ignore_below_visible_height`` px is
annotated but ignored (CrowdHuman ``extra.ignore = 1``, CityPersons class 0). Patches of
crowd too small/dense to box and person-like posters are ignore regions (CrowdHuman
``mask``; CityPersons class 5 "group" and class 0 "fake human").

Determinism: image ``index`` of ``split`` of ``flavour`` is drawn from its own
``numpy.random.SeedSequence([seed, flavour, split, index])`` stream, so the output is the
same for any number of workers. A rerun finds ``synthcrowd_manifest.json`` (written last,
holding a fingerprint of the settings) and skips a flavour whose output is complete and
generated with identical settings; otherwise it regenerates every file (identically, for
unchanged settings). Every file is written atomically.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lla import layout, options
from lla.console import progress
from lla.data import registry
from lla.errors import DataError

log = logging.getLogger(__name__)

# The dataset layouts synthcrowd draws (lla.data.registry); a flavour's index in this
# tuple is part of its images' seeds.
FLAVOURS = registry.synthcrowd_flavours()
SPLITS = registry.SPLITS
GENERATOR_VERSION = 1          # bump when the drawing changes: invalidates old manifests
MANIFEST = "synthcrowd_manifest.json"
# CityPersons' "aligned" full boxes have a fixed width/height ratio (protocol constant).
CITYPERSONS_ASPECT = 0.41
# Cityscapes label ids: instance ids are label_id * 1000 + k.
CITYSCAPES_PERSON_ID, CITYSCAPES_RIDER_ID = 24, 25
MAT_HEADER_TEXT = "MATLAB 5.0 MAT-file, written by lla data synth (synthcrowd)"
MAT_HEADER_TEXT_BYTES = 116    # MAT 5 header: 116 bytes of text, then offset/version/endian
CITIES = {"train": ("ashford", "brakel", "corbridge"), "val": ("dunmore",)}
CITYPERSONS_CLASS = {"ignore": 0, "pedestrian": 1, "rider": 2, "sitting": 3, "other": 4,
                     "group": 5}


# --- settings ------------------------------------------------------------------------

@dataclass(frozen=True)
class SceneSettings:
    """Knobs of one flavour (``params.yaml``: ``synthcrowd.<profile>.<flavour>``).

    Sizes in pixels unless said otherwise; ``*_range`` are [low, high] pairs.
    """

    train_images: int
    val_images: int
    width: int                              # multiple of 128
    height: int                             # multiple of 128
    persons_mean: float                     # mean persons per image (log-normal count)
    persons_sigma: float                    # log-normal sigma of the count
    persons_range: tuple[int, int]          # count clipped to this range
    groups_mean: float                      # mean number of groups a crowd forms (>= 1)
    group_spread: float                     # feet x spread per sqrt(members), person heights
    group_depth: float                      # std of log-distance within a group
    horizon_range: tuple[float, float]      # horizon y, image heights (may be < 0)
    camera_height_range: tuple[float, float]  # camera height in person heights: 1 = eye
                                            # level (heads on the horizon), > 1 looks down
    depth_ratio: float                      # the crowd reaches this many times farther than
                                            # its nearest row
    depth_power: float                      # density of rows ~ (feet_y - horizon)^-power:
                                            # 3 = uniform on the ground, 0 = uniform in rows
    below_bottom: float                     # feet may lie this many bottom-edge person
                                            # heights below the bottom edge (cut by the border)
    side_margin: float                      # groups reach up to this fraction of the width
                                            # past the left/right edges
    min_person_height: float                # labelled people are at least this tall
    zoom_out_above: float                   # bigger crowds are framed wider (people shrink)
    coat_prob: float                        # chance a person wears a coat / dress over the thighs
    kind_weights: dict[str, float]          # pedestrian / rider / sitting / other
    pose_weights: dict[str, float]          # pedestrian poses: stand / walk / raised / dance
    clutter_range: tuple[int, int]          # non-person occluders (poles, bins, coat stands…)
    car_range: tuple[int, int]              # parked cars (occlude legs)
    dense_crowd_range: tuple[int, int]      # patches of tiny people: ignore regions
    dense_crowd_height: tuple[float, float] # height of the tiny people, px
    poster_range: tuple[int, int]           # person-like posters: ignore regions
    drop_below_visible_fraction: float      # annotator cannot see the person: not annotated
    ignore_below_visible_height: float      # visible box shorter than this: ignored
    visible_min_width: int                  # visible slivers narrower than this (px) do not
                                            # extend the visible box (1 = every pixel counts)
    occluded_below_visible_fraction: float  # CrowdHuman extra.occ = 1 below this
    head_occluded_below_visible_fraction: float  # CrowdHuman head_attr.occ = 1 below this
    stripe_prob: float                      # chance a garment is striped
    noise_sigma: float                      # std of pixel noise (0-255 scale)
    smoothing: float                        # neighbour weight of a final [w/2, 1-w, w/2] blur
    jpeg_quality: int | None = None         # crowdhuman flavour only
    png_compress_level: int | None = None   # citypersons flavour only

    def count(self, split: str) -> int:
        return self.train_images if split == "train" else self.val_images


@dataclass(frozen=True)
class SynthSettings:
    seed: int
    workers: int
    flavours: dict[str, SceneSettings]

    def fingerprint(self, flavour: str) -> str:
        blob = json.dumps({"version": GENERATOR_VERSION, "seed": self.seed,
                           "settings": dataclasses.asdict(self.flavours[flavour])},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def _scene_settings(block: dict[str, Any], flavour: str, params_path: Path) -> SceneSettings:
    """One flavour's knobs. The schema checked each key, type and bound when params were
    loaded (lla.config.validate_params); what it cannot express is checked here."""
    values = {key: tuple(value) if key.endswith("_range") or key == "dense_crowd_height" else value
              for key, value in block.items()}
    for key in ("kind_weights", "pose_weights"):
        if sum(values[key].values()) <= 0:
            raise DataError(params_path, "the weights sum to 0", record=f"synthcrowd.{flavour}.{key}")
    return SceneSettings(**values)


def settings_from_params(params: dict[str, Any], profile: str,
                         params_path: str | Path = "params.yaml") -> SynthSettings:
    """Build :class:`SynthSettings` from the ``synthcrowd`` block for ``profile``."""
    from lla.config import section

    params_path = Path(params_path)
    block = section(params, "synthcrowd", profile)
    flavours = {name: _scene_settings(block[name], name, params_path) for name in FLAVOURS}
    return SynthSettings(seed=block["seed"], workers=int(block["workers"]), flavours=flavours)


# --- names and seeds -----------------------------------------------------------------

def image_rng(seed: int, flavour: str, split: str, index: int) -> np.random.Generator:
    """The random stream of one image: independent of worker count and order."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, FLAVOURS.index(flavour), SPLITS.index(split), index]))


def crowdhuman_id(seed: int, split: str, index: int) -> str:
    """A CrowdHuman-style record ID ("<number>,<hex>"), unique per (split, index), e.g.
    ``train000123,3f0c9b8d2e1a7c4``; the image is ``Images/<ID>.jpg``."""
    digest = hashlib.sha1(f"synthcrowd/{seed}/{split}/{index}".encode()).hexdigest()[:15]
    return f"{split}{index:06d},{digest}"


def citypersons_name(split: str, index: int) -> tuple[str, str]:
    """(cityname, im_name) in Cityscapes style: ``<city>_<seq:06d>_000019_leftImg8bit.png``."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_000019_leftImg8bit.png"


# --- scene sampling ------------------------------------------------------------------

@dataclass
class Item:
    """One painted object: its raster and what it is for the annotations.

    role: "person" (individually labelled), "crowd" (member of dense-crowd patch
    ``region``), "poster" (part of person-like poster ``region``), "clutter".
    """

    depth: float
    raster: Any                      # synth_render.Raster
    role: str
    kind: str = "pedestrian"
    figure: Any = None               # synth_render.FigureGeometry for anything person-shaped
    region: int = -1


def _weighted_choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = sorted(weights)
    p = np.array([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_pose(rng: np.random.Generator, kind: str, style: str):
    """A :class:`~lla.data.synth_render.Pose` for a person ``kind`` (pedestrians: ``style``)."""
    from lla.data.synth_render import Pose

    u = rng.uniform
    facing = 1.0 if rng.random() < 0.5 else -1.0   # which way asymmetric poses point
    if kind == "rider":       # seated, legs to the pedals, arms forward to the handlebar
        pose = Pose(lean=0.25, upper_arm=(u(0.7, 1.0), u(0.8, 1.1)), forearm=(u(1.2, 1.5),) * 2,
                    thigh=(u(1.1, 1.4), u(0.9, 1.3)), shin=(u(-0.1, 0.3), u(0.1, 0.4)))
    elif kind == "sitting":   # thighs horizontal, shins down, hands on the lap
        pose = Pose(lean=u(-0.1, 0.15), upper_arm=(u(-0.2, 0.1), u(0.1, 0.3)),
                    forearm=(u(1.0, 1.5), u(1.1, 1.6)), thigh=(u(1.35, 1.6), u(1.4, 1.65)),
                    shin=(u(-0.1, 0.2), u(0.0, 0.3)))
    elif kind == "other":     # bending over
        lean = u(0.7, 1.2)
        pose = Pose(lean=lean, upper_arm=(u(0.1, 0.5), u(0.3, 0.7)), forearm=(u(0.0, 0.5),) * 2,
                    thigh=(u(-0.2, 0.0), u(0.0, 0.2)), shin=(u(-0.15, 0.05), u(-0.05, 0.15)))
    elif style == "stand":
        a, b = u(0.05, 0.3), u(0.05, 0.3)
        pose = Pose(lean=rng.normal(0, 0.04), upper_arm=(-a, b),
                    forearm=(-a + u(-0.2, 0.1), b + u(-0.1, 0.2)),
                    thigh=(-u(0.0, 0.12), u(0.0, 0.12)), shin=(-u(0.0, 0.08), u(0.0, 0.08)))
    elif style == "walk":
        s = u(0.2, 0.45)
        pose = Pose(lean=rng.normal(0.05, 0.04), upper_arm=(-s * 0.8, s * 0.8),
                    forearm=(-s * 0.5, s * 1.4), thigh=(-s, s), shin=(-s - u(0.1, 0.4), s * 0.8))
    elif style == "raised":
        both = rng.random() < 0.5
        up = (-u(2.4, 3.1), u(2.4, 3.1))
        down = (-u(0.05, 0.3), u(0.05, 0.3))
        arms = up if both else (up[0], down[1])
        pose = Pose(lean=rng.normal(0, 0.06), upper_arm=arms,
                    forearm=(arms[0] + u(-0.5, 0.3), arms[1] + u(-0.3, 0.5)),
                    thigh=(-u(0.0, 0.15), u(0.0, 0.15)), shin=(-u(0.0, 0.1), u(0.0, 0.1)))
    else:                     # dance: anything goes
        upper = (-u(0.2, 3.0), u(0.2, 3.0))
        thigh = (-u(0.05, 0.6), u(0.05, 0.6))
        pose = Pose(lean=rng.normal(0, 0.2), upper_arm=upper,
                    forearm=(upper[0] + u(-1.3, 1.3), upper[1] + u(-1.3, 1.3)),
                    thigh=thigh, shin=(thigh[0] + u(-0.5, 0.3), thigh[1] + u(-0.3, 0.5)))
    if facing < 0:  # mirror: swap sides and negate the angles
        pose = Pose(lean=-pose.lean, upper_arm=(-pose.upper_arm[1], -pose.upper_arm[0]),
                    forearm=(-pose.forearm[1], -pose.forearm[0]),
                    thigh=(-pose.thigh[1], -pose.thigh[0]), shin=(-pose.shin[1], -pose.shin[0]))
    return pose


def sample_build(rng: np.random.Generator, coat_prob: float):
    from lla.data.synth_render import Build
    coat = rng.uniform(0.1, 0.3) if rng.random() < coat_prob else 0.0
    return Build(shoulders=rng.uniform(0.85, 1.2), limbs=rng.uniform(0.85, 1.2),
                 head=rng.uniform(0.9, 1.1), coat=coat)


@dataclass
class Perspective:
    """Ground-plane model: a person with feet at image row y is scale * (y - horizon) tall.

    For a pinhole camera at height c (in person heights) above a flat ground, feet lie
    f·c/d below the horizon and a person is f/d tall at distance d, so scale = 1/c.
    """

    horizon: float
    scale: float
    feet_lo: float        # farthest feet row (closest to the horizon)
    feet_hi: float        # nearest feet row (may lie below the bottom edge)

    def height_at(self, feet_y: float) -> float:
        return self.scale * (feet_y - self.horizon)

    def clip(self, feet_y: float) -> float:
        return float(np.clip(feet_y, self.feet_lo, self.feet_hi))

    def sample_feet_y(self, rng: np.random.Generator, power: float) -> float:
        """A feet row between ``feet_lo`` and ``feet_hi`` with density p(v) ~ v^-power,
        v = feet_y - horizon (proportional to 1 / distance).

        power = 3 is a uniform density on the visible ground (the ground area per unit of
        v grows like v^-3); power = 0 is uniform in image rows, which favours near people.
        """
        v_far, v_near = self.feet_lo - self.horizon, self.feet_hi - self.horizon
        if abs(power - 1.0) < 1e-9:
            v = v_far * (v_near / v_far) ** rng.random()
        else:
            e = 1.0 - power
            v = rng.uniform(min(v_far ** e, v_near ** e), max(v_far ** e, v_near ** e)) ** (1 / e)
        return self.horizon + v


def sample_perspective(rng: np.random.Generator, cfg: SceneSettings, n_persons: int) -> Perspective:
    """Horizon and scale of one image. Crowds larger than ``zoom_out_above`` people are
    framed wider (people shrink by sqrt(zoom_out_above / n)), as a photographer would."""
    h = cfg.height
    horizon = h * rng.uniform(*cfg.horizon_range)
    scale = 1.0 / rng.uniform(*cfg.camera_height_range)
    scale *= min(1.0, math.sqrt(cfg.zoom_out_above / max(n_persons, 1)))
    near = scale * (h - horizon)                   # height of a person on the bottom edge
    feet_hi = h + cfg.below_bottom * near
    feet_lo = max(horizon + cfg.min_person_height / scale, 0.12 * h,
                  horizon + (feet_hi - horizon) / cfg.depth_ratio)
    feet_lo = min(feet_lo, feet_hi - 1.0)
    return Perspective(horizon, scale, feet_lo, feet_hi)


def _person_count(rng: np.random.Generator, cfg: SceneSettings) -> int:
    mu = math.log(cfg.persons_mean) - cfg.persons_sigma ** 2 / 2   # log-normal with that mean
    n = int(round(rng.lognormal(mu, cfg.persons_sigma)))
    return int(np.clip(n, *cfg.persons_range))


def _reflect(x: float, lo: float, hi: float) -> float:
    """Fold ``x`` back into [lo, hi] at the edges (keeps a wide group inside the view)."""
    span = hi - lo
    t = (x - lo) % (2 * span)
    return lo + (t if t <= span else 2 * span - t)


def sample_people(rng: np.random.Generator, cfg: SceneSettings, view: Perspective,
                  n: int) -> list[Item]:
    """``n`` labelled people (and riders' bicycles) in groups, unordered."""
    from lla.data.synth_render import clutter_primitives, rasterise, render_figure

    n_groups = 1 + int(rng.poisson(max(cfg.groups_mean - 1.0, 0.0)))
    sizes = rng.multinomial(n, rng.dirichlet(np.ones(n_groups)))
    items: list[Item] = []
    w = cfg.width
    for size in sizes:
        if size == 0:
            continue
        gy = view.sample_feet_y(rng, cfg.depth_power)
        g_height = view.height_at(gy)
        half_width = cfg.group_spread * g_height * math.sqrt(size)
        x_lo, x_hi = -cfg.side_margin * w, (1 + cfg.side_margin) * w
        gx = rng.uniform(x_lo, x_hi)
        for _ in range(size):
            # distance spread is relative (log-normal): rows behind rows
            feet_y = view.clip(view.horizon + (gy - view.horizon) *
                               math.exp(rng.normal(0, cfg.group_depth)))
            height = view.height_at(feet_y) * rng.uniform(0.88, 1.1)
            feet_x = _reflect(gx + rng.uniform(-1, 1) * half_width, x_lo, x_hi)
            kind = _weighted_choice(rng, cfg.kind_weights)
            style = _weighted_choice(rng, cfg.pose_weights)
            pose = sample_pose(rng, kind, style)
            if kind == "rider":
                bike = height * 0.75
                prims = clutter_primitives("bicycle", bike, rng)
                items.append(Item(depth=feet_y - 1e-3, raster=rasterise(prims, feet_x, feet_y),
                                  role="clutter", kind="bicycle"))
                feet_y_body = feet_y - 0.22 * bike
            else:
                feet_y_body = feet_y
            figure = render_figure(feet_x, feet_y_body, height, pose,
                                   sample_build(rng, cfg.coat_prob))
            items.append(Item(depth=feet_y, raster=figure.raster, role="person", kind=kind,
                              figure=figure))
    return items


def sample_clutter(rng: np.random.Generator, cfg: SceneSettings, view: Perspective) -> list[Item]:
    """Non-person occluders standing on the ground plane, unordered."""
    from lla.data.synth_render import CLUTTER_KINDS, clutter_primitives, rasterise

    relative_size = {"pole": (1.3, 2.0), "bin": (0.4, 0.6), "sign": (1.2, 1.6),
                     "crate": (0.3, 0.6), "coat_stand": (0.9, 1.05), "blob": (0.3, 0.7),
                     "car": (0.75, 0.9)}
    kinds = [str(k) for k in rng.choice(CLUTTER_KINDS, int(rng.integers(cfg.clutter_range[0],
                                                                        cfg.clutter_range[1] + 1)))]
    kinds += ["car"] * int(rng.integers(cfg.car_range[0], cfg.car_range[1] + 1))
    items = []
    for kind in kinds:
        feet_y = view.sample_feet_y(rng, cfg.depth_power)
        feet_x = rng.uniform(-0.05, 1.05) * cfg.width
        size = view.height_at(feet_y) * rng.uniform(*relative_size[kind])
        prims = clutter_primitives(kind, size, rng)
        items.append(Item(depth=feet_y, raster=rasterise(prims, feet_x, feet_y), role="clutter",
                          kind=kind))
    return items


def sample_backdrop_regions(rng: np.random.Generator, cfg: SceneSettings,
                            view: Perspective) -> tuple[list[Item], int]:
    """Dense patches of tiny people and person-like posters, painted before everything
    else. Each forms one ignore region (``Item.region``). Returns (items, n_regions)."""
    from lla.data.synth_render import PART_SOLID, Build, rasterise, render_figure

    items: list[Item] = []
    region = 0
    w, h = cfg.width, cfg.height
    for _ in range(int(rng.integers(cfg.dense_crowd_range[0], cfg.dense_crowd_range[1] + 1))):
        patch_w = rng.uniform(0.08, 0.3) * w
        x0 = rng.uniform(-0.05, 1.0) * w - patch_w / 2
        base = float(np.clip(view.horizon, 0.1 * h, 0.6 * h)) + rng.uniform(0, 0.1) * h
        for _ in range(int(rng.integers(8, 25))):
            height = rng.uniform(*cfg.dense_crowd_height)
            feet_y = base + rng.uniform(-0.3, 0.3) * height
            pose = sample_pose(rng, "pedestrian", "stand")
            fig = render_figure(x0 + rng.uniform(0, patch_w), feet_y, height, pose, Build())
            items.append(Item(depth=feet_y, raster=fig.raster, role="crowd", region=region,
                              figure=fig))
        region += 1
    for _ in range(int(rng.integers(cfg.poster_range[0], cfg.poster_range[1] + 1))):
        height = rng.uniform(0.15, 0.45) * h
        cx = rng.uniform(0.05, 0.95) * w
        bottom = rng.uniform(0.35, 0.8) * h
        board = [("poly", PART_SOLID, [(-0.3 * height, 0), (0.3 * height, 0),
                                       (0.3 * height, -1.15 * height),
                                       (-0.3 * height, -1.15 * height)], 0.0)]
        items.append(Item(depth=-1.0, raster=rasterise(board, cx, bottom), role="poster",
                          region=region))
        style = "raised" if rng.random() < 0.3 else "stand"
        fig = render_figure(cx, bottom - 0.06 * height, height, sample_pose(rng, "pedestrian", style),
                            Build())
        items.append(Item(depth=-1.0, raster=fig.raster, role="poster", region=region,
                          figure=fig))
        region += 1
    return items, region


# --- appearance ----------------------------------------------------------------------

SKIN_TONES = np.array([[255, 224, 196], [234, 192, 160], [198, 145, 110], [160, 110, 75],
                       [110, 72, 48], [75, 50, 35]], np.float32)
HAIR_COLOURS = np.array([[20, 15, 12], [60, 40, 25], [110, 80, 45], [200, 170, 110],
                         [150, 150, 150], [120, 40, 20]], np.float32)


def _random_colour(rng: np.random.Generator, lo: float = 20, hi: float = 235) -> np.ndarray:
    base = rng.uniform(lo, hi)
    return np.clip(base + rng.normal(0, 55, 3), 0, 255).astype(np.float32)


def sample_appearance(rng: np.random.Generator, items: list[Item], stripe_prob: float):
    """Colours and stripes of the painted objects; object id k is ``items[k-1]``."""
    from lla.data.synth_render import (NUM_PARTS, PART_DETAIL, PART_HAIR, PART_HEAD, PART_SHOES,
                                       PART_SKIN, PART_SOLID, PART_TOP, PART_BOTTOM, Appearance)

    n = len(items)
    palette = np.zeros((n + 1, NUM_PARTS, 3), np.float32)
    stripes = np.zeros((n + 1, 4), np.float32)
    for k, item in enumerate(items, start=1):
        row = palette[k]
        if item.figure is not None:          # people, tiny crowd people, printed people
            skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 8, 3)
            row[PART_HEAD] = row[PART_SKIN] = skin
            row[PART_HAIR] = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]
            row[PART_TOP] = _random_colour(rng)
            row[PART_BOTTOM] = _random_colour(rng, 15, 160)
            row[PART_SHOES] = _random_colour(rng, 10, 90)
            if item.role == "person" and rng.random() < stripe_prob:
                period = rng.uniform(2.5, 9.0)
                angle = rng.uniform(-0.4, 0.4) + (math.pi / 2 if rng.random() < 0.3 else 0.0)
                stripes[k] = (rng.uniform(0.12, 0.35), 2 * math.pi / period * math.sin(angle),
                              2 * math.pi / period * math.cos(angle), rng.uniform(0, 2 * math.pi))
        row[PART_SOLID] = _random_colour(rng)
        row[PART_DETAIL] = _random_colour(rng)
    # posters: printed figures are flat and washed out towards the board colour
    boards: dict[int, np.ndarray] = {}
    for k, item in enumerate(items, start=1):
        if item.role == "poster":
            board = boards.setdefault(item.region, palette[k, PART_SOLID].copy())
            palette[k] = 0.45 * palette[k] + 0.55 * board
            palette[k, PART_SOLID] = board
    return Appearance(palette=palette, stripes=stripes)


# --- one image -----------------------------------------------------------------------

@dataclass
class PersonLabel:
    """What an annotator records for one person (image pixels, xywh, inclusive corners)."""

    kind: str
    full: list[int]
    visible: list[int]
    head: list[int]
    visible_fraction: float          # visible pixels / figure pixels
    head_visible_fraction: float
    ignore: bool
    aligned: list[int]               # CityPersons aligned full box (width = 0.41 height)


@dataclass
class ImageLabels:
    persons: list[PersonLabel]
    ignore_regions: list[tuple[str, list[int], list[int]]]   # (kind, full box, visible box)


def _xywh(x1: float, y1: float, x2: float, y2: float) -> list[int]:
    """Inclusive pixel corners -> [x, y, w, h] integers."""
    return [int(round(x1)), int(round(y1)), int(round(x2 - x1)) + 1, int(round(y2 - y1)) + 1]


def _mask_box(mask: np.ndarray, ox: int, oy: int) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return ox + int(cols[0]), oy + int(rows[0]), ox + int(cols[-1]), oy + int(rows[-1])


def _without_slivers(mask: np.ndarray, min_width: int) -> np.ndarray:
    """``mask`` without visible slivers narrower than ``min_width`` px (a morphological
    opening with a min_width × min_width square), which an annotator would not notice;
    the mask itself when nothing would be left."""
    if min_width <= 1:
        return mask
    from scipy.ndimage import binary_opening

    opened = binary_opening(mask, structure=np.ones((min_width, min_width), bool))
    return opened if opened.any() else mask


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    b = np.array(boxes)
    return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())


def _clip(box: tuple[int, int, int, int], w: int, h: int) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = max(box[0], 0), max(box[1], 0), min(box[2], w - 1), min(box[3], h - 1)
    return (x1, y1, x2, y2) if x1 <= x2 and y1 <= y2 else None


def label_scene(items: list[Item], object_map: np.ndarray, part_map: np.ndarray,
                n_regions: int, cfg: SceneSettings) -> ImageLabels:
    """Annotations of a painted scene (object id k = items[k-1])."""
    from lla.data.synth_render import PART_HAIR, PART_HEAD, visible_pixels

    height, width = object_map.shape
    persons = []
    region_boxes: list[list[tuple[int, int, int, int]]] = [[] for _ in range(n_regions)]
    region_visible: list[list[tuple[int, int, int, int]]] = [[] for _ in range(n_regions)]
    for k, item in enumerate(items, start=1):
        if item.role in ("crowd", "poster"):
            region_boxes[item.region].append(item.raster.box)
            visible, ox, oy = visible_pixels(object_map, item.raster, k)
            vbox = _mask_box(visible, ox, oy)
            if vbox is not None:
                region_visible[item.region].append(vbox)
            continue
        if item.role != "person":
            continue
        parts = item.raster.parts
        total = int(np.count_nonzero(parts))
        head_total = int(np.count_nonzero((parts == PART_HEAD) | (parts == PART_HAIR)))
        visible, ox, oy = visible_pixels(object_map, item.raster, k)
        n_visible = int(np.count_nonzero(visible))
        if n_visible == 0 or n_visible < cfg.drop_below_visible_fraction * total:
            continue
        visible_parts = part_map[oy:oy + visible.shape[0], ox:ox + visible.shape[1]][visible]
        head_visible = int(np.count_nonzero((visible_parts == PART_HEAD) |
                                            (visible_parts == PART_HAIR)))
        vx1, vy1, vx2, vy2 = _mask_box(_without_slivers(visible, cfg.visible_min_width), ox, oy)
        fig = item.figure
        aligned_h = fig.bottom_y - fig.top_y
        aligned_w = CITYPERSONS_ASPECT * aligned_h
        persons.append(PersonLabel(
            kind=item.kind,
            full=_xywh(*item.raster.box),
            visible=_xywh(vx1, vy1, vx2, vy2),
            head=_xywh(*fig.head_box),
            visible_fraction=n_visible / total,
            head_visible_fraction=head_visible / max(head_total, 1),
            ignore=(vy2 - vy1 + 1) < cfg.ignore_below_visible_height,
            aligned=[int(round(fig.axis_x - aligned_w / 2)), int(round(fig.top_y)),
                     int(round(aligned_w)), int(round(aligned_h))]))
    regions = []
    for r in range(n_regions):
        if not region_boxes[r]:
            continue
        full = _clip(_union(region_boxes[r]), width, height)
        if full is None:
            continue
        kind = "crowd" if any(it.role == "crowd" and it.region == r for it in items) else "poster"
        vis = _clip(_union(region_visible[r]), width, height) if region_visible[r] else full
        regions.append((kind, _xywh(*full), _xywh(*vis)))
    return ImageLabels(persons=persons, ignore_regions=regions)


def render_image(cfg: SceneSettings, flavour: str, rng: np.random.Generator):
    """Sample, paint and label one scene. Returns (PIL RGB image, ImageLabels)."""
    from lla.data.synth_render import compose_rgb, paint, render_background

    n_persons = _person_count(rng, cfg)
    view = sample_perspective(rng, cfg, n_persons)
    backdrop, n_regions = sample_backdrop_regions(rng, cfg, view)
    scene = sample_people(rng, cfg, view, n_persons) + sample_clutter(rng, cfg, view)
    scene.sort(key=lambda item: item.depth)                   # far to near
    items = backdrop + scene
    object_map = np.zeros((cfg.height, cfg.width), np.uint16)
    part_map = np.zeros((cfg.height, cfg.width), np.uint8)
    for k, item in enumerate(items, start=1):
        paint(object_map, part_map, item.raster, k)
    labels = label_scene(items, object_map, part_map, n_regions, cfg)
    appearance = sample_appearance(rng, items, cfg.stripe_prob)
    background = render_background(rng, cfg.width, cfg.height, view.horizon,
                                   street=flavour == "citypersons")
    image = compose_rgb(background, object_map, part_map, appearance, rng,
                        cfg.noise_sigma, cfg.smoothing)
    return image, labels


# --- record formats ------------------------------------------------------------------

def crowdhuman_record(record_id: str, labels: ImageLabels, cfg: SceneSettings) -> dict:
    """One ``.odgt`` line (a dict) in the official CrowdHuman structure."""
    boxes = []
    for box_id, p in enumerate(labels.persons):
        extra = {"box_id": box_id,
                 "occ": int(p.visible_fraction < cfg.occluded_below_visible_fraction)}
        if p.ignore:
            extra["ignore"] = 1
        boxes.append({"tag": "person", "fbox": p.full, "vbox": p.visible, "hbox": p.head,
                      "head_attr": {"ignore": int(p.head_visible_fraction == 0.0),
                                    "occ": int(p.head_visible_fraction <
                                               cfg.head_occluded_below_visible_fraction),
                                    "unsure": 0},
                      "extra": extra})
    for _kind, full, _visible in labels.ignore_regions:
        boxes.append({"tag": "mask", "fbox": full, "vbox": full, "hbox": full,
                      "extra": {"ignore": 1}})
    return {"ID": record_id, "gtboxes": boxes}


def citypersons_rows(labels: ImageLabels) -> np.ndarray:
    """(n, 10) float64 ``bbs`` rows: class, x1, y1, w, h, instance_id, x1v, y1v, wv, hv."""
    rows = []
    counters = {CITYSCAPES_PERSON_ID: 0, CITYSCAPES_RIDER_ID: 0}
    for p in labels.persons:
        cls = CITYPERSONS_CLASS["ignore"] if p.ignore else CITYPERSONS_CLASS[p.kind]
        full = p.aligned if cls == CITYPERSONS_CLASS["pedestrian"] else p.full
        label_id = CITYSCAPES_RIDER_ID if p.kind == "rider" else CITYSCAPES_PERSON_ID
        instance = label_id * 1000 + counters[label_id]
        counters[label_id] += 1
        rows.append([cls, *full, instance, *p.visible])
    for kind, full, visible in labels.ignore_regions:
        cls = CITYPERSONS_CLASS["group"] if kind == "crowd" else CITYPERSONS_CLASS["ignore"]
        rows.append([cls, *full, 0, *visible])
    return np.array(rows, np.float64).reshape(-1, 10)


def write_citypersons_mat(path: Path, split: str, entries: list[tuple[str, str, np.ndarray]]) -> None:
    """Write ``anno_<split>.mat`` holding ``anno_<split>_aligned``: a 1×N cell array of
    structs {cityname, im_name, bbs (n×10 double)}, as in the official files."""
    from scipy.io import savemat

    from lla.io import atomic_write_bytes

    struct = np.dtype([("cityname", object), ("im_name", object), ("bbs", object)])
    cells = np.empty((1, len(entries)), dtype=object)
    for i, (city, name, bbs) in enumerate(entries):
        record = np.zeros((1, 1), dtype=struct)
        record[0, 0] = (city, name, bbs)
        cells[0, i] = record
    buffer = io.BytesIO()
    savemat(buffer, {f"anno_{split}_aligned": cells}, do_compression=True)
    data = bytearray(buffer.getvalue())
    # The 116-byte text header carries a creation time; a fixed text keeps reruns identical.
    data[:MAT_HEADER_TEXT_BYTES] = MAT_HEADER_TEXT.ljust(MAT_HEADER_TEXT_BYTES).encode("ascii")
    atomic_write_bytes(path, bytes(data))


# --- generation driver ---------------------------------------------------------------

def _image_path(root: Path, flavour: str, split: str, name: str, city: str = "") -> Path:
    if flavour == "crowdhuman":
        return root / "Images" / f"{name}.jpg"
    return root / "leftImg8bit" / split / city / name


def generate_one(settings: SynthSettings, root: Path, job: tuple[str, str, int]):
    """Render, encode and write image ``job = (flavour, split, index)``; return its record
    (an .odgt dict for CrowdHuman, (cityname, im_name, bbs) for CityPersons)."""
    from lla.io import atomic_write_bytes

    flavour, split, index = job
    cfg = settings.flavours[flavour]
    image, labels = render_image(cfg, flavour, image_rng(settings.seed, flavour, split, index))
    buffer = io.BytesIO()
    if flavour == "crowdhuman":
        record_id = crowdhuman_id(settings.seed, split, index)
        image.save(buffer, format="JPEG", quality=cfg.jpeg_quality)
        atomic_write_bytes(_image_path(root, flavour, split, record_id), buffer.getvalue())
        return crowdhuman_record(record_id, labels, cfg)
    city, name = citypersons_name(split, index)
    image.save(buffer, format="PNG", compress_level=cfg.png_compress_level)
    atomic_write_bytes(_image_path(root, flavour, split, name, city), buffer.getvalue())
    return city, name, citypersons_rows(labels)


def _annotation_paths(root: Path, flavour: str) -> list[Path]:
    return [Path(p) for p in registry.get(flavour).annotation_files(root, SPLITS)]


def _is_up_to_date(root: Path, flavour: str, fingerprint: str) -> bool:
    manifest = root / MANIFEST
    if not manifest.is_file():
        if any(p.exists() for p in _annotation_paths(root, flavour)):
            raise DataError(root, f"holds {flavour} annotation files that synthcrowd did not "
                                  f"write (no {MANIFEST}); refusing to overwrite what may be "
                                  "the real dataset. Choose another --out-dir.")
        return False
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
    except (json.JSONDecodeError, AttributeError):
        return False
    return recorded == fingerprint and all(p.is_file() for p in _annotation_paths(root, flavour))


def generate(settings: SynthSettings, out_dir: str | Path, workers: int | None = None,
             only: str | None = None) -> dict[str, dict[str, Any]]:
    """Generate the flavours (all, or ``only`` one) under ``out_dir``.

    Returns {flavour: {"status": "generated"|"up to date", "images": n, "seconds": t}}.
    """
    from lla.io import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    workers = settings.workers if workers is None else workers
    if workers < 1:
        raise DataError(None, f"--workers must be at least 1, got {workers}")
    summary: dict[str, dict[str, Any]] = {}
    flavours = [only] if only else list(FLAVOURS)
    pool = None
    try:
        for flavour in flavours:
            cfg = settings.flavours[flavour]
            root = out_dir / flavour
            fingerprint = settings.fingerprint(flavour)
            n_images = cfg.train_images + cfg.val_images
            if _is_up_to_date(root, flavour, fingerprint):
                log.info("%s: up to date (%s), nothing to do", flavour, root)
                summary[flavour] = {"status": "up to date", "images": n_images, "seconds": 0.0}
                continue
            (root / MANIFEST).unlink(missing_ok=True)
            start = time.perf_counter()
            if pool is None and workers > 1:
                pool = multiprocessing.get_context("fork").Pool(workers)
            for split in SPLITS:
                jobs = [(flavour, split, i) for i in range(cfg.count(split))]
                work = functools.partial(generate_one, settings, root)
                if pool is not None:
                    chunk = max(1, min(16, len(jobs) // (4 * workers)))
                    done = pool.imap(work, jobs, chunksize=chunk)   # results in job order
                else:
                    done = map(work, jobs)
                records = list(progress(done, total=len(jobs), desc=f"synth {flavour} {split}",
                                        unit="img"))
                if flavour == "crowdhuman":
                    atomic_write_text(root / f"annotation_{split}.odgt",
                                      "".join(json.dumps(r) + "\n" for r in records))
                else:
                    write_citypersons_mat(root / "annotations" / f"anno_{split}.mat", split,
                                          records)
            seconds = time.perf_counter() - start
            atomic_write_json(root / MANIFEST,
                              {"generator": "synthcrowd", "version": GENERATOR_VERSION,
                               "fingerprint": fingerprint, "seed": settings.seed,
                               "images": {s: cfg.count(s) for s in SPLITS},
                               "settings": dataclasses.asdict(cfg)}, indent=2)
            log.info("%s: %d images in %.1f s (%.1f images/s, %d workers) -> %s", flavour,
                     n_images, seconds, n_images / max(seconds, 1e-9), workers, root)
            summary[flavour] = {"status": "generated", "images": n_images, "seconds": seconds}
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return summary


# --- command line --------------------------------------------------------------------

def run_synth(args: argparse.Namespace) -> int:
    from lla.config import load_params, selected_profile

    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    settings = settings_from_params(params, profile, args.params)
    out_dir = args.out_dir or layout.synthcrowd_dir(params, profile)
    summary = generate(settings, out_dir, workers=args.workers, only=args.only)
    for flavour, info in summary.items():
        print(f"{flavour}: {info['status']}, {info['images']} images"
              + (f", {info['images'] / max(info['seconds'], 1e-9):.1f} images/s"
                 if info["status"] == "generated" else ""))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", parents=[options.SETTINGS],
        help="generate the synthcrowd dataset (CrowdHuman + CityPersons layouts)",
        description="Generate synthcrowd, a procedurally drawn dense-crowd dataset, in the "
                    "official CrowdHuman layout (DIR/crowdhuman: Images/*.jpg, "
                    "annotation_{train,val}.odgt) and CityPersons layout (DIR/citypersons: "
                    "leftImg8bit/{train,val}/<city>/*.png, annotations/anno_{train,val}.mat). "
                    "The profile chooses the synthcrowd block of the params. Deterministic "
                    "from the seed in params.yaml for any --workers. A rerun with unchanged "
                    "settings on a complete directory does nothing.")
    options.add_out_dir(p, "output directory, one folder per dataset layout",
                        default="<data_root>/synthcrowd/<profile>")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: synthcrowd.workers in params)")
    p.add_argument("--only", choices=FLAVOURS, help="generate one flavour only")
    p.set_defaults(func=run_synth)
