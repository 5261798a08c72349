"""CityPersons .mat → contract json: exact output on a hand-made fixture written with
scipy.io.savemat in the official structure, bad-input errors (file + cell + im_name), the
size cache and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import lla.data.imagesize as imagesize
from lla.cli import main
from lla.data.convert import convert
from lla.errors import DataError

IM1 = "aachen_000000_000019_leftImg8bit.png"
IM2 = "aachen_000001_000019_leftImg8bit.png"
IM3 = "bochum_000000_000313_leftImg8bit.png"
# (cityname, im_name, (width, height))
IMAGES = [("aachen", IM1, (200, 100)), ("aachen", IM2, (80, 60)), ("bochum", IM3, (100, 100))]

# Rows: class_label, x1, y1, w, h, instance_id, x1_vis, y1_vis, w_vis, h_vis
BBS = [
    np.array([
        [1, 10, 20, 20, 50, 1001, 12, 20, 16, 30],   # pedestrian
        [0, 150, 10, 40, 30, 0, 0, 0, 0, 0],         # ignore region
        [2, -5, 30, 20, 80, 2001, 0, 30, 15, 70],    # rider, past the left and bottom border
        [1, 120, 40, 10, 20, 1002, 115, 40, 14, 20],  # visible box wider than the full box
        [1, 50, 50, 0, 20, 1003, 50, 50, 0, 20],     # zero width: dropped
        [1, 200, 10, 10, 20, 1004, 200, 10, 10, 20],  # starts at x = W: outside, dropped
    ], dtype=float),
    np.zeros((0, 0)),  # MATLAB's [] for an image without boxes
    np.array([
        [4, 10, 10, 30, 60, 0, 10, 10, 30, 30],      # other person
        [5, 0, 0, 50, 50, 0, 0, 0, 25, 50],          # group of people
        [1, 60, 20, 20, 40, 7, 60, 20, 20, 40],      # pedestrian, fully visible
    ], dtype=float),
]

# Worked by hand: vis_ratio = w_vis·h_vis / (w·h) capped at 1; ignore = class != 1.
EXPECTED_ANNOTATIONS = [
    # 16·30 / (20·50) = 480 / 1000
    ([10, 20, 20, 50], [12, 20, 16, 30], 0.48, 0),
    # ignore region: visible box all zeros → 0
    ([150, 10, 40, 30], [0, 0, 0, 0], 0.0, 1),
    # rider, kept unclipped: 15·70 / (20·80) = 1050 / 1600
    ([-5, 30, 20, 80], [0, 30, 15, 70], 0.65625, 1),
    # 14·20 / (10·20) = 1.4 → capped at 1
    ([120, 40, 10, 20], [115, 40, 14, 20], 1.0, 0),
    # image 3: 30·30 / (30·60) and 25·50 / (50·50)
    ([10, 10, 30, 60], [10, 10, 30, 30], 0.5, 1),
    ([0, 0, 50, 50], [0, 0, 25, 50], 0.5, 1),
    ([60, 20, 20, 40], [60, 20, 20, 40], 1.0, 0),
]
EXPECTED_IMAGE_IDS = [1, 1, 1, 1, 3, 3, 3]


def write_mat(path: Path, variable: str, cells: list[dict]) -> None:
    array = np.empty((1, len(cells)), dtype=object)
    for i, cell in enumerate(cells):
        array[0, i] = cell
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {variable: array})


def cells_for(images, bbs) -> list[dict]:
    return [{"cityname": city, "im_name": name, "bbs": b}
            for (city, name, _), b in zip(images, bbs)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "citypersons"
    for split in ("train", "val"):
        for city, name, size in IMAGES:
            (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (10, 20, 30)).save(root / "leftImg8bit" / split / city / name)
    write_mat(root / "annotations" / "anno_val.mat", "anno_val_aligned", cells_for(IMAGES, BBS))
    write_mat(root / "annotations" / "anno_train.mat", "anno_train_aligned",
              cells_for(IMAGES[2:], BBS[2:]))
    return root


def test_val_conversion_exact(root: Path, tmp_path: Path):
    out = tmp_path / "converted"
    convert("citypersons", root, out, ["val"])
    data = json.loads((out / "val.json").read_text())
    assert data["info"] == {"dataset": "citypersons", "split": "val", "source": "anno_val.mat",
                            "image_root": "../citypersons/leftImg8bit/val",
                            "degenerate_dropped": {"zero_size": 1, "outside_image": 1}}
    assert data["images"] == [
        {"id": k + 1, "file_name": f"{city}/{name}", "width": w, "height": h, "record_id": name}
        for k, (city, name, (w, h)) in enumerate(IMAGES)]
    expected = [
        {"id": k + 1, "image_id": image_id, "category_id": 1, "bbox": bbox, "vis_box": vis,
         "head_box": None, "vis_ratio": ratio, "height": bbox[3], "area": bbox[2] * bbox[3],
         "ignore": ignore, "iscrowd": ignore}
        for k, ((bbox, vis, ratio, ignore), image_id)
        in enumerate(zip(EXPECTED_ANNOTATIONS, EXPECTED_IMAGE_IDS))]
    assert data["annotations"] == expected
    assert (out / data["info"]["image_root"] / data["images"][2]["file_name"]).is_file()


def test_train_split_and_cache(root: Path, tmp_path: Path, monkeypatch):
    convert("citypersons", root, tmp_path / "out")  # both splits: six headers read
    monkeypatch.setattr(imagesize, "read_image_size",
                        lambda p: pytest.fail(f"image header read again: {p}"))
    written = convert("citypersons", root, tmp_path / "out")
    train = json.loads(written["train"].read_text())
    assert [i["record_id"] for i in train["images"]] == [IM3]
    assert [a["ignore"] for a in train["annotations"]] == [1, 1, 0]


def rewrite_val(root: Path, cells: list[dict], variable: str = "anno_val_aligned") -> Path:
    path = root / "annotations" / "anno_val.mat"
    write_mat(path, variable, cells)
    return path


def with_row(row) -> list[dict]:
    """The val cells with image 2's boxes replaced by ``row``."""
    cells = cells_for(IMAGES, BBS)
    cells[1]["bbs"] = np.array([row], dtype=float)
    return cells


@pytest.mark.parametrize("row, message", [
    ([7, 1, 2, 3, 4, 0, 1, 2, 3, 4], "bbs row 1 has unknown class_label 7.0"),
    ([1.5, 1, 2, 3, 4, 0, 1, 2, 3, 4], "bbs row 1 has unknown class_label 1.5"),
    ([1, 1, 2, np.nan, 4, 0, 1, 2, 3, 4], "bbs row 1 (x1, y1, w, h) must be 4 finite numbers"),
    ([1, 1, 2, np.inf, 4, 0, 1, 2, 3, 4], "must be 4 finite numbers"),
    ([1, 1, 2, 3, -4, 0, 1, 2, 3, 4], "bbs row 1 (x1, y1, w, h) has negative width or height"),
    ([1, 1, 2, 3, 4, 0, 1, 2, -3, 4],
     "bbs row 1 (x1_vis, y1_vis, w_vis, h_vis) has negative width"),
])
def test_bad_row_names_file_and_record(root: Path, tmp_path: Path, row, message: str):
    path = rewrite_val(root, with_row(row))
    with pytest.raises(DataError) as info:
        convert("citypersons", root, tmp_path / "out", ["val"])
    assert str(info.value).startswith(f"{path} [anno_val_aligned{{2}} '{IM2}']: ")
    assert message in str(info.value)


def test_bad_bbs_shape(root: Path, tmp_path: Path):
    cells = cells_for(IMAGES, BBS)
    cells[2]["bbs"] = np.ones((2, 9))
    rewrite_val(root, cells)
    with pytest.raises(DataError, match=r"\[anno_val_aligned\{3\}\]: 'bbs' must be an n×10 "
                                        r"numeric matrix, got shape \(2, 9\)"):
        convert("citypersons", root, tmp_path / "out", ["val"])


def test_missing_field(root: Path, tmp_path: Path):
    cells = cells_for(IMAGES, BBS)
    del cells[0]["bbs"]
    rewrite_val(root, cells)
    with pytest.raises(DataError, match=r"\[anno_val_aligned\{1\}\]: expected a struct .*"
                                        r"\(missing \['bbs'\]\)"):
        convert("citypersons", root, tmp_path / "out", ["val"])


def test_missing_image(root: Path, tmp_path: Path):
    (root / "leftImg8bit" / "val" / "bochum" / IM3).unlink()
    with pytest.raises(DataError, match=rf"anno_val.mat \[anno_val_aligned\{{3\}} '{IM3}'\]: "
                                        rf"image leftImg8bit/val/bochum/{IM3} not found"):
        convert("citypersons", root, tmp_path / "out", ["val"])


def test_unreadable_image(root: Path, tmp_path: Path):
    (root / "leftImg8bit" / "val" / "aachen" / IM2).write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=rf"\[anno_val_aligned\{{2}} '{IM2}'\]: image "
                                        rf"leftImg8bit/val/aachen/{IM2}: cannot read"):
        convert("citypersons", root, tmp_path / "out", ["val"])


def test_duplicate_im_name(root: Path, tmp_path: Path):
    cells = cells_for(IMAGES, BBS)
    cells[2]["im_name"] = IM1
    cells[2]["cityname"] = "aachen"
    rewrite_val(root, cells)
    with pytest.raises(DataError, match=rf"\[anno_val_aligned\{{3\}} '{IM1}'\]: duplicate "
                                        rf"im_name \(first in cell 1\)"):
        convert("citypersons", root, tmp_path / "out", ["val"])


def test_wrong_variable_and_unreadable_file(root: Path, tmp_path: Path):
    path = rewrite_val(root, cells_for(IMAGES, BBS), variable="anno_train_aligned")
    with pytest.raises(DataError, match=r"anno_val.mat: no variable 'anno_val_aligned' "
                                        r"\(found: anno_train_aligned\)"):
        convert("citypersons", root, tmp_path / "out", ["val"])
    path.write_bytes(b"not a MATLAB file")
    with pytest.raises(DataError, match=r"anno_val.mat: cannot read the MATLAB file"):
        convert("citypersons", root, tmp_path / "out", ["val"])


def test_failed_conversion_leaves_no_output(root: Path, tmp_path: Path):
    rewrite_val(root, with_row([9, 1, 2, 3, 4, 0, 1, 2, 3, 4]))
    out = tmp_path / "out"
    with pytest.raises(DataError):
        convert("citypersons", root, out, ["train", "val"])
    assert not out.exists() or list(out.iterdir()) == []


def test_cli(root: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main(["data", "convert", "citypersons", "--root", str(root), "--out-dir", str(out),
                 "--split", "val"]) == 0
    assert len(json.loads((out / "val.json").read_text())["annotations"]) == 7
    rewrite_val(root, with_row([1, 1, 2, 3, -4, 0, 1, 2, 3, 4]))
    assert main(["data", "convert", "citypersons", "--root", str(root), "--out-dir", str(out),
                 "--split", "val"]) == 2
    assert f"[anno_val_aligned{{2}} '{IM2}']: bbs row 1" in capsys.readouterr().err


def test_annotation_file_without_cells_is_an_error(root: Path, tmp_path: Path, capsys):
    path = root / "annotations" / "anno_val.mat"
    scipy.io.savemat(path, {"anno_val_aligned": np.empty((1, 0), dtype=object)})
    out = tmp_path / "out"
    assert main(["data", "convert", "citypersons", "--root", str(root), "--out-dir", str(out),
                 "--split", "val"]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {path}: 'anno_val_aligned' has no cell: the annotation file lists no image")
    assert not out.exists() or list(out.iterdir()) == []
