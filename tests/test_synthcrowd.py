"""synthcrowd: determinism, the two on-disk formats, annotation invariants, the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lla.cli import main
from lla.config import load_params
from lla.data import synth_render as render
from lla.data import synthcrowd as sc
from lla.errors import DataError

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def micro() -> sc.SynthSettings:
    return sc.settings_from_params(load_params(PARAMS), "micro", PARAMS)


@pytest.fixture(scope="module")
def generated(micro, tmp_path_factory) -> dict[int, Path]:
    """The micro profile generated with 1 and with 2 workers."""
    out = {}
    for workers in (1, 2):
        root = tmp_path_factory.mktemp(f"synth{workers}")
        sc.generate(micro, root, workers=workers)
        out[workers] = root
    return out


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != sc.MANIFEST}


def read_odgt(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- determinism ----------------------------------------------------------------------

def test_output_is_identical_for_any_worker_count(generated):
    one, two = all_files(generated[1]), all_files(generated[2])
    assert one.keys() == two.keys()
    assert [k for k in one if one[k] != two[k]] == []


def test_seed_changes_the_data(micro, tmp_path):
    cfg = dataclasses.replace(micro.flavours["crowdhuman"], train_images=3, val_images=0)
    flavours = {**micro.flavours, "crowdhuman": cfg}
    for seed in (0, 1):
        sc.generate(dataclasses.replace(micro, seed=seed, flavours=flavours), tmp_path / str(seed),
                    workers=1, only="crowdhuman")
    a = read_odgt(tmp_path / "0" / "crowdhuman" / "annotation_train.odgt")
    b = read_odgt(tmp_path / "1" / "crowdhuman" / "annotation_train.odgt")
    assert [r["gtboxes"] for r in a] != [r["gtboxes"] for r in b]


def test_image_stream_depends_only_on_its_key():
    a = sc.image_rng(0, "crowdhuman", "train", 5).random(4)
    assert np.array_equal(a, sc.image_rng(0, "crowdhuman", "train", 5).random(4))
    for other in (sc.image_rng(1, "crowdhuman", "train", 5), sc.image_rng(0, "citypersons", "train", 5),
                  sc.image_rng(0, "crowdhuman", "val", 5), sc.image_rng(0, "crowdhuman", "train", 6)):
        assert not np.array_equal(a, other.random(4))


# --- CrowdHuman layout ---------------------------------------------------------------

def test_crowdhuman_layout_and_invariants(generated, micro):
    cfg = micro.flavours["crowdhuman"]
    root = generated[1] / "crowdhuman"
    ids = []
    n_persons = n_masks = 0
    for split in sc.SPLITS:
        records = read_odgt(root / f"annotation_{split}.odgt")
        assert len(records) == cfg.count(split)
        for record in records:
            assert set(record) == {"ID", "gtboxes"}
            assert re.fullmatch(rf"{split}\d{{6}},[0-9a-f]{{15}}", record["ID"])
            ids.append(record["ID"])
            with Image.open(root / "Images" / f"{record['ID']}.jpg") as im:
                assert im.format == "JPEG" and im.size == (cfg.width, cfg.height)
            for box in record["gtboxes"]:
                fx, fy, fw, fh = box["fbox"]
                vx, vy, vw, vh = box["vbox"]
                assert min(fw, fh, vw, vh) > 0
                # visible box: inside the image and inside the full box
                assert 0 <= vx and vx + vw <= cfg.width and 0 <= vy and vy + vh <= cfg.height
                assert fx <= vx and vx + vw <= fx + fw and fy <= vy and vy + vh <= fy + fh
                if box["tag"] == "mask":
                    n_masks += 1
                    assert box["extra"] == {"ignore": 1} and box["fbox"] == box["vbox"] == box["hbox"]
                    continue
                n_persons += 1
                assert box["tag"] == "person"
                assert set(box) == {"tag", "fbox", "vbox", "hbox", "head_attr", "extra"}
                assert set(box["head_attr"]) == {"ignore", "occ", "unsure"}
                assert set(box["extra"]) <= {"box_id", "occ", "ignore"}
                vis = vw * vh / (fw * fh)
                assert 0 < vis <= 1
                # head box: inside the full box (1 px rounding), centre in its upper half
                hx, hy, hw, hh = box["hbox"]
                assert fx - 1 <= hx and hx + hw <= fx + fw + 1 and fy - 1 <= hy
                assert hy + hh / 2 <= fy + fh / 2
    assert len(ids) == len(set(ids))
    assert n_persons > 10 * len(ids) / 2 and n_masks > 0   # crowded, with ignore regions


def test_crowdhuman_full_boxes_may_leave_the_image(generated, micro):
    cfg = micro.flavours["crowdhuman"]
    boxes = [b["fbox"] for split in sc.SPLITS
             for r in read_odgt(generated[1] / "crowdhuman" / f"annotation_{split}.odgt")
             for b in r["gtboxes"] if b["tag"] == "person"]
    assert any(y + h > cfg.height for _x, y, _w, h in boxes)


# --- CityPersons layout --------------------------------------------------------------

def test_citypersons_mat_loads_like_the_official_file(generated, micro):
    from scipy.io import loadmat

    cfg = micro.flavours["citypersons"]
    root = generated[1] / "citypersons"
    classes = set()
    for split in sc.SPLITS:
        cells = loadmat(root / "annotations" / f"anno_{split}.mat")[f"anno_{split}_aligned"]
        assert cells.shape == (1, cfg.count(split))
        for i in range(cells.shape[1]):
            entry = cells[0][i][0][0]
            city, name, bbs = entry["cityname"][0], entry["im_name"][0], entry["bbs"]
            assert (city, name) == sc.citypersons_name(split, i)
            assert re.fullmatch(rf"{city}_\d{{6}}_000019_leftImg8bit\.png", name)
            with Image.open(root / "leftImg8bit" / split / city / name) as im:
                assert im.format == "PNG" and im.size == (cfg.width, cfg.height)
            assert bbs.dtype == np.float64 and bbs.shape[1:] == (10,) or bbs.size == 0
            for cls, x, y, w, h, inst, xv, yv, wv, hv in bbs.reshape(-1, 10):
                classes.add(int(cls))
                assert w > 0 and h > 0 and wv > 0 and hv > 0
                assert 0 <= xv and xv + wv <= cfg.width and 0 <= yv and yv + hv <= cfg.height
                if cls == 1:       # aligned box: width = 0.41 height (rounded to pixels)
                    assert abs(w - sc.CITYPERSONS_ASPECT * h) <= 1
                    assert inst // 1000 == sc.CITYSCAPES_PERSON_ID
    assert 1 in classes and classes <= set(range(6))


# --- labels of a hand-made scene ------------------------------------------------------

def block(x0, y0, w, h, head_rows=0) -> render.Raster:
    parts = np.full((h, w), render.PART_TOP, np.uint8)
    parts[:head_rows] = render.PART_HEAD
    return render.Raster(parts, x0, y0)


def figure(raster: render.Raster, head_rows: int) -> render.FigureGeometry:
    h, w = raster.parts.shape
    return render.FigureGeometry(
        raster=raster, head_box=(raster.x0, raster.y0, raster.x0 + w - 1, raster.y0 + head_rows - 1),
        top_y=raster.y0, bottom_y=raster.y0 + h, axis_x=raster.x0 + w / 2)


def test_labels_of_hand_made_scene(micro):
    """Painted in order on a 50x40 image (x0, y0, w, h):
    p_hidden (15,10,10,20): later covered completely by p_front          -> dropped
    p_left   (10,10,10,20, 4 head rows): p_front covers its columns 15-19 -> visible x 10-14,
             vbox [10,10,5,20], visible fraction 100/200 = 0.5, head 20/40 = 0.5
    p_front  (15,10,10,20): nothing in front                              -> vbox = fbox
    p_sliver (30,10,10,20) with a clutter box (30,10,10,18) painted over it -> rows 28-29
             visible: vbox [30,28,10,2], 2 px < ignore height 5           -> annotated, ignored
    """
    cfg = dataclasses.replace(micro.flavours["crowdhuman"], drop_below_visible_fraction=0.05,
                              ignore_below_visible_height=5, visible_min_width=1,
                              occluded_below_visible_fraction=0.9,
                              head_occluded_below_visible_fraction=0.9)
    shapes = {"hidden": block(15, 10, 10, 20, 4), "left": block(10, 10, 10, 20, 4),
              "front": block(15, 10, 10, 20, 4), "sliver": block(30, 10, 10, 20, 4)}
    items = [sc.Item(0, shapes["hidden"], "person", figure=figure(shapes["hidden"], 4)),
             sc.Item(1, shapes["left"], "person", figure=figure(shapes["left"], 4)),
             sc.Item(2, shapes["front"], "person", figure=figure(shapes["front"], 4)),
             sc.Item(3, shapes["sliver"], "person", figure=figure(shapes["sliver"], 4)),
             sc.Item(4, block(30, 10, 10, 18), "clutter", kind="crate")]
    object_map = np.zeros((40, 50), np.uint16)
    part_map = np.zeros((40, 50), np.uint8)
    for k, item in enumerate(items, start=1):
        render.paint(object_map, part_map, item.raster, k)
    labels = sc.label_scene(items, object_map, part_map, 0, cfg)
    left, front, sliver = labels.persons
    assert left.full == [10, 10, 10, 20] and left.visible == [10, 10, 5, 20]
    assert left.visible_fraction == pytest.approx(0.5) and left.head_visible_fraction == 0.5
    assert not left.ignore
    assert front.full == front.visible == [15, 10, 10, 20] and front.visible_fraction == 1.0
    assert sliver.visible == [30, 28, 10, 2] and sliver.ignore
    record = sc.crowdhuman_record("r,0", labels, cfg)
    assert [b["extra"] for b in record["gtboxes"]] == [
        {"box_id": 0, "occ": 1}, {"box_id": 1, "occ": 0}, {"box_id": 2, "occ": 1, "ignore": 1}]
    assert record["gtboxes"][0]["head_attr"] == {"ignore": 0, "occ": 1, "unsure": 0}
    rows = sc.citypersons_rows(labels)
    # p_left is a pedestrian: aligned box of height 20 (top 10, bottom 30), width 8.2 -> 8,
    # centred on x = 15 -> x1 = round(10.9) = 11; p_sliver is ignored -> class 0.
    assert rows[0].tolist() == [1, 11, 10, 8, 20, 24000, 10, 10, 5, 20]
    assert rows[2][0] == 0


def test_visible_box_ignores_thin_slivers():
    """A 6x6 visible block plus a 1-px wide, 10-px long sliver to its right: with
    visible_min_width 3 the opening (3x3 square) keeps the block only; with 1 the
    sliver counts. A mask made only of slivers is kept as it is."""
    mask = np.zeros((12, 20), bool)
    mask[0:6, 0:6] = True
    mask[0:10, 15] = True
    assert sc._mask_box(sc._without_slivers(mask, 3), 0, 0) == (0, 0, 5, 5)
    assert sc._mask_box(sc._without_slivers(mask, 1), 0, 0) == (0, 0, 15, 9)
    only_sliver = np.zeros((12, 20), bool)
    only_sliver[0:10, 15] = True
    assert sc._mask_box(sc._without_slivers(only_sliver, 3), 0, 0) == (15, 0, 15, 9)


def test_paint_clips_objects_leaving_the_image():
    object_map = np.zeros((10, 10), np.uint16)
    part_map = np.zeros((10, 10), np.uint8)
    raster = block(-3, 6, 5, 8)                 # covers x -3..1, y 6..13
    render.paint(object_map, part_map, raster, 7)
    assert np.argwhere(object_map == 7).min(0).tolist() == [6, 0]
    assert np.count_nonzero(object_map == 7) == 2 * 4   # x 0..1, y 6..9
    assert raster.box == (-3, 6, 1, 13)


# --- reruns and settings -------------------------------------------------------------

def test_rerun_is_a_no_op_and_changed_settings_regenerate(micro, tmp_path):
    cfg = dataclasses.replace(micro.flavours["crowdhuman"], train_images=2, val_images=1)
    settings = dataclasses.replace(micro, flavours={**micro.flavours, "crowdhuman": cfg})
    first = sc.generate(settings, tmp_path, workers=1, only="crowdhuman")
    assert first["crowdhuman"]["status"] == "generated"
    odgt = tmp_path / "crowdhuman" / "annotation_train.odgt"
    stamp = odgt.stat().st_mtime_ns
    assert sc.generate(settings, tmp_path, workers=1, only="crowdhuman")["crowdhuman"]["status"] \
        == "up to date"
    assert odgt.stat().st_mtime_ns == stamp
    changed = dataclasses.replace(settings, seed=settings.seed + 1)
    assert sc.generate(changed, tmp_path, workers=1, only="crowdhuman")["crowdhuman"]["status"] \
        == "generated"


def test_refuses_to_overwrite_a_foreign_dataset(micro, tmp_path):
    (tmp_path / "crowdhuman").mkdir()
    (tmp_path / "crowdhuman" / "annotation_train.odgt").write_text("")
    with pytest.raises(DataError, match="refusing to overwrite"):
        sc.generate(micro, tmp_path, workers=1, only="crowdhuman")


@pytest.mark.parametrize("key, value, message", [
    ("width", 300, "[synthcrowd.micro.crowdhuman.width]: must be a positive multiple of 128"),
    ("persons_range", [5, 2], "[synthcrowd.micro.crowdhuman.persons_range]: expected [low, high]"),
    ("pose_weights", {"stand": 0, "walk": 0, "raised": 0, "dance": 0},
     "[synthcrowd.crowdhuman.pose_weights]: the weights sum to 0"),
    ("colour", 1, "[synthcrowd.micro.crowdhuman.colour]: unknown key"),
    ("png_compress_level", 1, "[synthcrowd.micro.crowdhuman.png_compress_level]: unknown key"),
])
def test_bad_settings_name_the_key(key, value, message, tmp_path, capsys):
    params = load_params(PARAMS)
    params["synthcrowd"]["micro"]["crowdhuman"][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    assert main(["data", "synth", "--profile", "micro", "--out-dir", str(tmp_path / "out"),
                 "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


# --- command line ---------------------------------------------------------------------

def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", "--help"])
    assert exit_info.value.code == 0
    assert "--profile" in capsys.readouterr().out


def test_cli_unknown_profile(tmp_path, capsys):
    code = main(["data", "synth", "--profile", "nosuch", "--out-dir", str(tmp_path),
                 "--params", str(PARAMS)])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown profile 'nosuch'" in err and "micro" in err and "mini" in err


def test_cli_generates_one_flavour(tmp_path, capsys):
    params = load_params(PARAMS)
    params["synthcrowd"]["micro"]["citypersons"].update(train_images=1, val_images=1)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["data", "synth", "--profile", "micro", "--out-dir", str(tmp_path / "out"),
                 "--params", str(path), "--workers", "1", "--only", "citypersons"]) == 0
    assert "citypersons: generated, 2 images" in capsys.readouterr().out
    assert (tmp_path / "out" / "citypersons" / "annotations" / "anno_val.mat").is_file()
    assert not (tmp_path / "out" / "crowdhuman").exists()
