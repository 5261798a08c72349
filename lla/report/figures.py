"""`lla report figure`: the paper's Figures 1-5 as PNGs, from the pipeline's analysis files.

    lla report figure fig1 --profile mini     # -> results/mini/figures/fig1.png
    lla report figure fig3 --profile mini --results DIR --out DIR/fig3.png   # + fig3_levels.csv

Which experiments feed which figure, the image counts and thresholds live in params.yaml
(``figures``, per profile); this module knows where each input file is
(:func:`figure_inputs`, shared with ``workflow/rules/figures.smk``):

====== ============================================== =========================================
figure shows                                          reads (under ``--results``)
====== ============================================== =========================================
fig1   positives of RetinaNet, FCOS, ATSS             ``figure_data/positives_<exp>.json``
fig2   positives of LLA                               ``figure_data/positives_<exp>.json``
fig3   GT area vs FPN level, two panels               ``figure_data/levels_<exp>.csv``
fig4   positives of one LLA run at its checkpoints    ``figure_data/evolution_<exp>.json``
fig5   predictions vs GT, misses / false positives    ``detections/<exp>.json``
====== ============================================== =========================================

Positives are drawn as in the paper: each GT's box and the centres of its positive anchors
on the FPN level holding most of its positives, one colour per GT. Every figure has a
fixed pixel size (:func:`figure_inches` x ``dpi``): panels of ``panel_inches`` plus a
header of :data:`HEADER_INCHES` for the title and legend. Images come from the dataset
json's file paths. matplotlib is imported inside the drawing functions (Agg, no pyplot).
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lla import layout, options
from lla.analysis.fpn_levels import NO_LEVEL
from lla.analysis.positives import FINAL, box_iou, dominant_level, most_crowded_images
from lla.config import DEFAULT_PARAMS, load_params, section, selected_profile
from lla.errors import DataError
from lla.io import atomic_write_bytes, atomic_write_text, read_json

logger = logging.getLogger(__name__)

FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5")
HEADER_INCHES = 1.3        # title, subtitle and legend above the panels
SCATTER_ASPECT = 1.5       # fig3 panels are this much wider than tall
GT_COLORMAP = "tab10"      # one colour per GT (cycled)
FIG5_COLORS = {"tp": "#2ca02c", "fp": "#d62728", "miss": "#d62728", "recovered": "#1f77b4"}


# ------------------------------------------------------------------ settings and paths

def figure_settings(params: dict[str, Any], profile: str) -> dict[str, Any]:
    """The merged ``figures`` block of ``profile``."""
    return section(params, "figures", profile)


def experiments_of(settings: dict[str, Any], name: str) -> dict[str, str]:
    """``{experiment: label}`` of a figure, in drawing order."""
    spec = settings[name]
    if name == "fig4":
        return {spec["experiment"]: spec.get("label", spec["experiment"])}
    return dict(spec["experiments"])


INPUT_KIND = {"fig1": "positives", "fig2": "positives", "fig3": "levels", "fig4": "evolution",
              "fig5": "detections"}


def figure_inputs(params: dict[str, Any], profile: str, name: str,
                  results: str | Path) -> list[Path]:
    """The files a figure reads, one per experiment, in drawing order."""
    if name not in FIGURES:
        raise DataError(getattr(params, "path", DEFAULT_PARAMS),
                        f"unknown figure '{name}' (known: {', '.join(FIGURES)})")
    kind = INPUT_KIND[name]
    experiments = experiments_of(figure_settings(params, profile), name)
    files = layout.Results(Path(results))
    if kind == "detections":
        return [files.detections(e) for e in experiments]
    return [files.figure_data(kind, e) for e in experiments]


def figure_outputs(profile: str) -> list[str]:
    """The PNGs of the workflow's ``all_figures`` (fig3 also writes ``fig3_levels.csv``)."""
    return [str(layout.results(profile).figure(name)) for name in FIGURES]


def figure_data(params: dict[str, Any], profile: str, name: str) -> list[str]:
    """The dataset json whose images a figure draws (none for fig3)."""
    if name == "fig3":
        return []
    settings = figure_settings(params, profile)
    experiment = next(iter(experiments_of(settings, name)))
    split = "val" if name == "fig5" else settings["positives"]["split"]
    role = params["experiments"][experiment]["dataset"]
    return [str(layout.converted_json(params, profile, role, split))]


# ------------------------------------------------------------------ pure helpers

def shown_positives(gt: Sequence[int], level: Sequence[int], num_gts: int,
                    num_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Which positives a panel shows: those on their GT's dominant level.

    Args:
        gt, level: (P,) the matched GT and level of each positive anchor.
    Returns:
        ``(keep bool (P,), gt_level int64 (num_gts,))``; ``gt_level`` is -1 for a GT
        without positives.
    """
    gt = np.asarray(gt, dtype=np.int64)
    level = np.asarray(level, dtype=np.int64)
    counts = np.zeros((num_gts, num_levels), dtype=np.int64)
    np.add.at(counts, (gt, level), 1)
    gt_level = dominant_level(counts)
    keep = level == gt_level[gt] if len(gt) else np.zeros(0, dtype=bool)
    return keep, gt_level


def match_detections(det_boxes: np.ndarray, gt_boxes: np.ndarray,
                     iou_thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of detections (sorted by descending score) to GTs.

    Each detection in turn takes the unmatched GT it overlaps most, if that IoU is at least
    ``iou_thresh``. Args: (D, 4) and (G, 4) xyxy. Returns ``(det_gt int64 (D,): the GT
    index or -1, gt_found bool (G,))``.
    """
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    det_gt = np.full(len(det_boxes), -1, dtype=np.int64)
    gt_found = np.zeros(len(gt_boxes), dtype=bool)
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return det_gt, gt_found
    iou = box_iou(np.concatenate([det_boxes, gt_boxes]))[:len(det_boxes), len(det_boxes):]
    for d in range(len(det_boxes)):
        candidates = np.where(gt_found, -1.0, iou[d])
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_thresh:
            det_gt[d] = best
            gt_found[best] = True
    return det_gt, gt_found


def inside_ignore(det_boxes: np.ndarray, ignore_boxes: np.ndarray,
                  min_ioa: float = 0.5) -> np.ndarray:
    """bool (D,): detections covered at least ``min_ioa`` of their area by an ignore region
    (the evaluators' rule: such detections are neither hits nor false positives)."""
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    ignore_boxes = np.asarray(ignore_boxes, dtype=np.float64).reshape(-1, 4)
    if len(det_boxes) == 0 or len(ignore_boxes) == 0:
        return np.zeros(len(det_boxes), dtype=bool)
    lt = np.maximum(det_boxes[:, None, :2], ignore_boxes[None, :, :2])
    rb = np.minimum(det_boxes[:, None, 2:], ignore_boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(np.clip(det_boxes[:, 2:] - det_boxes[:, :2], 1e-9, None), axis=1)
    return (inter / area[:, None]).max(axis=1) >= min_ioa


def xywh_to_xyxy(boxes: Any) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    array[:, 2:] += array[:, :2]
    return array


def figure_inches(name: str, rows: int, cols: int, panel: float,
                  aspect: float = 1.0) -> tuple[float, float]:
    """(width, height) of a figure with ``rows x cols`` panels of ``panel`` inches wide and
    ``aspect`` x ``panel`` high (the drawn images' height / width)."""
    width = panel * (SCATTER_ASPECT if name == "fig3" else 1.0)
    return cols * width, rows * panel * aspect + HEADER_INCHES


def panel_aspect(data: dict[str, Any], image_ids: Sequence[int]) -> float:
    """Height / width of the tallest of the drawn images of a dataset json ``data``."""
    sizes = {image["id"]: image for image in data["images"]}
    return max((sizes[i]["height"] / sizes[i]["width"] for i in image_ids), default=1.0)


# ------------------------------------------------------------------ drawing

def _new_figure(name: str, rows: int, cols: int, settings: dict[str, Any], aspect: float = 1.0):
    from matplotlib.figure import Figure

    panel = float(settings["panel_inches"])
    fig = Figure(figsize=figure_inches(name, rows, cols, panel, aspect), dpi=int(settings["dpi"]))
    header = HEADER_INCHES / fig.get_figheight()
    left = {"fig3": 0.12, "fig4": 0.3 / fig.get_figwidth()}.get(name, 0.02)  # row labels
    fig.subplots_adjust(left=left, right=0.98,
                        bottom=0.02 if name != "fig3" else 0.16 * 1.0,
                        top=1.0 - header, wspace=0.04 if name != "fig3" else 0.25, hspace=0.12)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _font(settings: dict[str, Any]) -> float:
    """Font size in points that fits a panel (8 pt at 4-inch panels)."""
    return max(5.0, 2.0 * float(settings["panel_inches"]))


def save_figure(fig, out: Path) -> None:
    """Write a matplotlib figure atomically, as PNG or, for a .jpg/.jpeg ``out``, JPEG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg" if out.suffix.lower() in (".jpg", ".jpeg") else "png",
                dpi=fig.dpi)
    atomic_write_bytes(out, buffer.getvalue())


def _header(fig, title: str, subtitle: str, handles: list, settings: dict[str, Any]) -> None:
    font = _font(settings)
    top = 1.0 - 0.12 / fig.get_figheight()
    fig.text(0.5, top, title, ha="center", va="top", fontsize=font + 2, weight="bold")
    fig.text(0.5, top - 0.3 / fig.get_figheight(), subtitle, ha="center", va="top",
             fontsize=font)
    if handles:
        fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False,
                   fontsize=font, bbox_to_anchor=(0.5, top - 0.48 / fig.get_figheight()),
                   handlelength=1.8, columnspacing=1.2)


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB pixels of an image file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as e:
        raise DataError(path, f"cannot read the image: {e}") from None


def show_image(ax, image: np.ndarray) -> None:
    """Draw ``image`` (H, W, 3) filling the axes, in pixel coordinates, without ticks."""
    ax.imshow(image, interpolation="bilinear")
    ax.set_xlim(0, image.shape[1])
    ax.set_ylim(image.shape[0], 0)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_box(ax, box: Sequence[float], **style) -> None:
    """An unfilled rectangle ``box`` = (x1, y1, x2, y2) in pixels; ``style``: matplotlib's."""
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = box
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, **style))


def _image_paths(json_path: Path, data: dict[str, Any]) -> dict[int, Path]:
    """Image id -> image file of the dataset json ``data`` read from ``json_path``."""
    root = Path(json_path).parent / data.get("info", {}).get("image_root", ".")
    return {image["id"]: root / image["file_name"] for image in data["images"]}


def _positives_handles(settings: dict[str, Any]) -> list:
    from matplotlib.lines import Line2D

    return [Line2D([], [], color="C0", lw=1.5, label="GT box (one colour per GT)"),
            Line2D([], [], color="C0", marker="o", ls="", markeredgecolor="black",
                   markersize=_font(settings) * 0.6, label="positive anchor centre"),
            Line2D([], [], color="0.6", lw=1.0, ls=":", label="ignore region")]


def draw_positives(ax, image: np.ndarray, gts: dict[str, Any], positives: dict[str, Any],
                   level_names: Sequence[str], settings: dict[str, Any]) -> None:
    """One panel: GT boxes and their positives on each GT's dominant level.

    ``gts``: an ``images[]`` entry of a positives json; ``positives``: the matching
    ``checkpoints[].images[]`` entry (see :mod:`lla.analysis.positives`).
    """
    from matplotlib import colormaps

    show_image(ax, image)
    cmap = colormaps[GT_COLORMAP]
    boxes = gts["gt_boxes"]
    keep, gt_level = shown_positives(positives["gt"], positives["level"], len(boxes),
                                     len(level_names))
    for box in gts["ignore_boxes"]:
        draw_box(ax, box, edgecolor="0.6", linewidth=0.8, linestyle=":")
    for g, box in enumerate(boxes):
        draw_box(ax, box, edgecolor=cmap(g % cmap.N), linewidth=1.2)
    centers = np.asarray(positives["center"], dtype=np.float64).reshape(-1, 2)[keep]
    colours = [cmap(g % cmap.N) for g in np.asarray(positives["gt"], dtype=np.int64)[keep]]
    if len(centers):
        ax.scatter(centers[:, 0], centers[:, 1], s=_font(settings) * 2.5, c=colours,
                   edgecolors="black", linewidths=0.4, zorder=3)
    per_level = [f"{name}:{int((gt_level == k).sum())}" for k, name in enumerate(level_names)
                 if (gt_level == k).any()]
    none = int((gt_level == NO_LEVEL).sum())
    text = "GTs per level " + (" ".join(per_level) or "-") + (f" none:{none}" if none else "")
    ax.text(0.01, 0.01, text, transform=ax.transAxes, fontsize=_font(settings) * 0.8,
            va="bottom", ha="left", color="white",
            bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5, "linewidth": 0})


def _read_positives(path: Path) -> dict[str, Any]:
    data = read_json(path)
    for key in ("images", "checkpoints", "level_names", "data"):
        if key not in data:
            raise DataError(path, f"not a positives json (no '{key}'; made by lla analyze positives?)")
    if not data["checkpoints"]:
        raise DataError(path, "no checkpoints analysed")
    return data


def positives_figure(name: str, inputs: Sequence[Path], labels: Sequence[str],
                     settings: dict[str, Any], profile: str, out: Path) -> None:
    """Figs. 1 and 2: rows = images, columns = detectors (their final models)."""
    runs = [_read_positives(path) for path in inputs]
    images = runs[0]["images"]
    for path, run in zip(inputs, runs):
        if [i["image_id"] for i in run["images"]] != [i["image_id"] for i in images]:
            raise DataError(path, f"other images than {inputs[0]}: analyse all with the "
                                  f"same split and --images")
    data = read_json(Path(runs[0]["data"]))
    paths = _image_paths(Path(runs[0]["data"]), data)
    aspect = panel_aspect(data, [i["image_id"] for i in images])
    fig, axes = _new_figure(name, len(images), len(runs), settings, aspect)
    what = "hand-crafted label assignment" if name == "fig1" else "LLA's label assignment"
    _header(fig, f"Fig. {name[-1]}. Positive anchors of {', '.join(labels)} ({what})",
            f"{len(images)} most crowded {runs[0].get('split', '')} images of profile {profile}"
            f"; each GT shown on the FPN level holding most of its positives",
            _positives_handles(settings), settings)
    for col, (run, label) in enumerate(zip(runs, labels)):
        final = run["checkpoints"][-1]
        for row, (gts, positives) in enumerate(zip(run["images"], final["images"])):
            ax = axes[row][col]
            draw_positives(ax, read_image(paths[gts["image_id"]]), gts, positives,
                           run["level_names"], settings)
            if row == 0:
                ax.set_title(f"{label} (iteration {final['iteration']})",
                             fontsize=_font(settings) + 1)
    save_figure(fig, out)


def evolution_figure(inputs: Sequence[Path], labels: Sequence[str], settings: dict[str, Any],
                     profile: str, out: Path) -> None:
    """Fig. 4: rows = checkpoints of one run, columns = the fixed images."""
    run = _read_positives(inputs[0])
    data = read_json(Path(run["data"]))
    paths = _image_paths(Path(run["data"]), data)
    checkpoints = run["checkpoints"]
    aspect = panel_aspect(data, [i["image_id"] for i in run["images"]])
    fig, axes = _new_figure("fig4", len(checkpoints), len(run["images"]), settings, aspect)
    _header(fig, f"Fig. 4. Evolution of {labels[0]}'s positive anchors during training",
            f"rows: checkpoints; columns: the {len(run['images'])} most crowded "
            f"{run.get('split', '')} images of profile {profile}; each GT on its main FPN level",
            _positives_handles(settings), settings)
    for row, checkpoint in enumerate(checkpoints):
        for col, (gts, positives) in enumerate(zip(run["images"], checkpoint["images"])):
            ax = axes[row][col]
            draw_positives(ax, read_image(paths[gts["image_id"]]), gts, positives,
                           run["level_names"], settings)
            if col == 0:
                label = f"iteration {checkpoint['iteration']}"
                if checkpoint["label"] == FINAL:
                    label = f"final ({label})"
                ax.set_ylabel(label, fontsize=_font(settings) + 1)
    save_figure(fig, out)


def _read_level_rows(path: Path) -> list[dict[str, Any]]:
    import csv

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise DataError(path, "file not found (made by lla analyze levels)") from None
    try:
        return [{**row, "area": float(row["area"]), "level": int(row["level"])} for row in rows]
    except (KeyError, ValueError) as e:
        raise DataError(path, f"not a levels csv ({e})") from None


def level_counts(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """GTs per dominant level (+ ``none``) with their share of all GTs."""
    total = len(rows)
    out = []
    for level, name in [*enumerate(names), (NO_LEVEL, "none")]:
        gts = sum(1 for r in rows if r["level"] == level)
        out.append({"level": level, "level_name": name, "gts": gts,
                    "share": round(gts / total, 4) if total else 0.0})
    return out


def levels_figure(inputs: Sequence[Path], experiments: Sequence[str], labels: Sequence[str],
                  settings: dict[str, Any], profile: str, out: Path, csv_out: Path) -> None:
    """Fig. 3: GT area (log) vs dominant FPN level, one panel per detector, + counts csv."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import LogLocator

    runs = [_read_level_rows(path) for path in inputs]
    names = [key[len("positives_"):] for key in (runs[0][0] if runs[0] else {})
             if key.startswith("positives_")]
    fig, axes = _new_figure("fig3", 1, len(runs), settings)
    font = _font(settings)
    _header(fig, "Fig. 3. FPN level each GT is assigned to vs its area",
            f"level = the one holding most of the GT's positives (ties: finer level); "
            f"profile {profile}, {len(runs[0])} sampled GTs",
            [Line2D([], [], color="C0", marker="x", ls="", label="one GT"),
             Line2D([], [], color="C3", marker="x", ls="", label="GT without positives")],
            settings)
    rng = np.random.default_rng(0)  # vertical jitter only, so crosses do not hide each other
    table = []
    for col, (rows, label, experiment) in enumerate(zip(runs, labels, experiments)):
        ax = axes[0][col]
        area = np.array([r["area"] for r in rows], dtype=np.float64)
        level = np.array([r["level"] for r in rows], dtype=np.int64)
        y = level + rng.uniform(-0.15, 0.15, len(level))
        valid = area > 0
        for mask, colour in ((level >= 0, "C0"), (level < 0, "C3")):
            shown = mask & valid
            ax.scatter(area[shown], y[shown], marker="x", s=font * 2, c=colour, alpha=0.35,
                       linewidths=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ticks = list(range(-1 if (level < 0).any() else 0, len(names)))
        ax.set_yticks(ticks, [("none" if t < 0 else f"{names[t]} (stage {t})") for t in ticks],
                      fontsize=font)
        ax.set_ylim(ticks[0] - 0.5, len(names) - 0.5)
        ax.tick_params(axis="x", labelsize=font)
        ax.set_xlabel("GT area (px² of the network input, log scale)", fontsize=font)
        if col == 0:
            ax.set_ylabel("FPN level with most positives", fontsize=font)
        counts = level_counts(rows, names)
        ax.set_title(f"{label}: " + ", ".join(f"{c['level_name']} {c['gts']}" for c in counts
                                               if c["gts"]), fontsize=font)
        ax.grid(True, which="major", alpha=0.3)
        table += [{"experiment": experiment, "label": label, **c} for c in counts]
    save_figure(fig, out)
    import csv

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(csv_out, buffer.getvalue())


def _detections_by_image(path: Path) -> dict[int, list[dict[str, Any]]]:
    try:
        detections = read_json(path)
    except FileNotFoundError:
        raise DataError(path, "file not found (made by lla infer)") from None
    if isinstance(detections, dict) and "diverged" in detections:
        raise DataError(path, "the run diverged (non-finite loss): no predictions to draw; "
                              "pick another experiment in params `figures`")
    if not isinstance(detections, list):
        raise DataError(path, "expected a COCO results list [{image_id, bbox, score}]")
    by_image: dict[int, list[dict[str, Any]]] = {}
    for k, det in enumerate(detections):
        try:
            by_image.setdefault(int(det["image_id"]), []).append(
                {"bbox": [float(v) for v in det["bbox"]], "score": float(det["score"])})
        except (KeyError, TypeError, ValueError):
            raise DataError(path, "a detection lacks image_id / bbox / score",
                            record=f"[{k}]") from None
    return by_image


def predictions_figure(inputs: Sequence[Path], labels: Sequence[str], settings: dict[str, Any],
                       profile: str, json_path: Path, out: Path) -> None:
    """Fig. 5: rows = crowded val images, columns = detectors; misses and false positives.

    The first detector is the reference: in the others, GTs it missed and they find are
    drawn in blue (the paper's "successfully detected" boxes).
    """
    from matplotlib.lines import Line2D

    spec = settings["fig5"]
    score_thresh, iou_thresh = float(spec["score_thresh"]), float(spec["iou_thresh"])
    data = read_json(json_path)
    image_ids = most_crowded_images(data, int(spec["images"]))
    paths = _image_paths(json_path, data)
    gts: dict[int, list] = {i: [] for i in image_ids}
    ignores: dict[int, list] = {i: [] for i in image_ids}
    for ann in data["annotations"]:
        if ann["image_id"] in gts:
            (ignores if ann["ignore"] else gts)[ann["image_id"]].append(ann["bbox"])
    runs = [_detections_by_image(path) for path in inputs]
    fig, axes = _new_figure("fig5", len(image_ids), len(runs), settings,
                            panel_aspect(data, image_ids))
    font = _font(settings)
    _header(fig, f"Fig. 5. Predictions of {', '.join(labels)} on crowded val images",
            f"detections with score ≥ {score_thresh:g} matched greedily to GTs at IoU ≥ "
            f"{iou_thresh:g}; profile {profile}",
            [Line2D([], [], color=FIG5_COLORS["tp"], lw=1.2, label="detected"),
             Line2D([], [], color=FIG5_COLORS["miss"], lw=1.5, ls="--", label="missed GT"),
             Line2D([], [], color=FIG5_COLORS["fp"], lw=1.5, label="false positive"),
             Line2D([], [], color=FIG5_COLORS["recovered"], lw=1.5,
                    label=f"missed by {labels[0]}, found")], settings)
    reference_found: dict[int, np.ndarray] = {}
    for col, (by_image, label) in enumerate(zip(runs, labels)):
        totals = {"tp": 0, "fp": 0, "miss": 0}
        for row, image_id in enumerate(image_ids):
            ax = axes[row][col]
            show_image(ax, read_image(paths[image_id]))
            gt_boxes = xywh_to_xyxy(gts[image_id])
            dets = sorted((d for d in by_image.get(image_id, []) if d["score"] >= score_thresh),
                          key=lambda d: -d["score"])
            det_boxes = xywh_to_xyxy([d["bbox"] for d in dets])
            det_gt, found = match_detections(det_boxes, gt_boxes, iou_thresh)
            false_pos = (det_gt < 0) & ~inside_ignore(det_boxes, xywh_to_xyxy(ignores[image_id]))
            if col == 0:
                reference_found[image_id] = found
            recovered = found & ~reference_found[image_id] if col > 0 else np.zeros_like(found)
            for g, box in enumerate(gt_boxes):
                if not found[g]:
                    draw_box(ax, box, edgecolor=FIG5_COLORS["miss"], linewidth=1.2, linestyle="--")
            for d, box in enumerate(det_boxes):
                if det_gt[d] >= 0:
                    colour = FIG5_COLORS["recovered" if recovered[det_gt[d]] else "tp"]
                    draw_box(ax, box, edgecolor=colour, linewidth=1.2)
                elif false_pos[d]:
                    draw_box(ax, box, edgecolor=FIG5_COLORS["fp"], linewidth=1.2)
            totals["tp"] += int(found.sum())
            totals["miss"] += int((~found).sum())
            totals["fp"] += int(false_pos.sum())
        axes[0][col].set_title(f"{label}: {totals['tp']} detected, {totals['miss']} missed, "
                               f"{totals['fp']} FP", fontsize=font)
    save_figure(fig, out)


# ------------------------------------------------------------------ the command

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "figure", parents=[options.SETTINGS, options.RESULTS],
        help="render one of the paper's figures (fig1 ... fig5) as a PNG",
        description="Draw a figure from the analysis files of params.yaml's `figures` block. "
                    "fig3 also writes its per-level GT counts beside the PNG, as "
                    "<stem>_levels.csv.")
    parser.add_argument("name", choices=FIGURES, help="which figure")
    options.add_out(parser, "PNG to write", default="results/<profile>/figures/<name>.png")
    parser.set_defaults(func=run)

def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    settings = figure_settings(params, profile)
    results = args.results or layout.results(profile).root
    experiments = experiments_of(settings, args.name)
    inputs = figure_inputs(params, profile, args.name, results)
    for path in inputs:
        if not path.is_file():
            raise DataError(path, f"input of {args.name} not found")
    names, labels = list(experiments), list(experiments.values())
    out = args.out or layout.results(profile).figure(args.name)
    if args.name in ("fig1", "fig2"):
        positives_figure(args.name, inputs, labels, settings, profile, out)
    elif args.name == "fig3":
        levels_figure(inputs, names, labels, settings, profile, out, layout.figure_csv_of(out))
    elif args.name == "fig4":
        evolution_figure(inputs, labels, settings, profile, out)
    else:
        predictions_figure(inputs, labels, settings, profile,
                           Path(figure_data(params, profile, "fig5")[0]), out)
    logger.info("%s -> %s", args.name, out)
    return 0
