"""CrowdHuman .odgt → contract json: exact output on a hand-made fixture, the size cache,
bad-input errors (file:line), degenerate drops, atomic outputs and the CLI."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from PIL import Image

import lla.data.imagesize as imagesize
from lla.cli import main
from lla.data.convert import convert
from lla.errors import DataError

# Image sizes (width, height) of the fixture.
SIZES = {"273271,c9db000d5146c15": (100, 80), "284193,faa9000f2678b5e": (60, 40),
         "273275,4e9d1000623d5ad": (50, 50)}
A, B, C = SIZES


def person(fbox, vbox, hbox, *, occ=0, ignore=None):
    extra = {"box_id": 0, "occ": occ}
    if ignore is not None:
        extra["ignore"] = ignore
    return {"tag": "person", "fbox": fbox, "vbox": vbox, "hbox": hbox,
            "head_attr": {"ignore": 0, "occ": 0, "unsure": 0}, "extra": extra}


def mask(box):
    return {"tag": "mask", "fbox": box, "vbox": box, "hbox": box, "extra": {"ignore": 1}}


# Image A (100×80): seven boxes, two of them degenerate.
VAL_RECORDS = [
    {"ID": A, "gtboxes": [
        person([10, 20, 30, 40], [10, 20, 30, 20], [15, 20, 10, 10]),
        person([-10, 50, 40, 60], [0, 50, 30, 30], [0, 50, 8, 8], occ=1),
        mask([60, 0, 20, 20]),
        person([70, 40, 10, 30], [70, 40, 10, 30], [72, 40, 5, 5], ignore=1),
        person([40, 10, 20, 40], [35, 10, 10, 20], [45, 10, 6, 6]),
        person([50, 50, 0, 10], [50, 50, 0, 10], [50, 50, 0, 0]),     # zero width
        person([100, 10, 20, 20], [100, 10, 20, 20], [100, 10, 5, 5]),  # right of the image
    ]},
    {"ID": B, "gtboxes": []},
    {"ID": C, "gtboxes": [
        person([-30, -30, 30, 10], [-30, -30, 30, 10], [-30, -30, 5, 5]),  # above-left
        person([5, 5, 10, 20], [5, 5, 10, 20], None),
    ]},
]

# Worked by hand; vis_ratio = area(vbox ∩ fbox) / area(fbox), boxes kept unclipped.
EXPECTED_VAL_ANNOTATIONS = [
    # fbox 30×40 = 1200; vbox inside it, 30×20 = 600 → 0.5.
    {"id": 1, "image_id": 1, "bbox": [10, 20, 30, 40], "vis_box": [10, 20, 30, 20],
     "head_box": [15, 20, 10, 10], "vis_ratio": 0.5, "height": 40, "area": 1200,
     "ignore": 0, "iscrowd": 0},
    # fbox x∈[-10,30], y∈[50,110], 40×60 = 2400 (kept past the left/bottom border);
    # vbox x∈[0,30], y∈[50,80] lies inside: 30×30 = 900 → 900/2400 = 0.375.
    {"id": 2, "image_id": 1, "bbox": [-10, 50, 40, 60], "vis_box": [0, 50, 30, 30],
     "head_box": [0, 50, 8, 8], "vis_ratio": 0.375, "height": 60, "area": 2400,
     "ignore": 0, "iscrowd": 0},
    # tag "mask" → ignore; vbox == fbox → 1.0.
    {"id": 3, "image_id": 1, "bbox": [60, 0, 20, 20], "vis_box": [60, 0, 20, 20],
     "head_box": [60, 0, 20, 20], "vis_ratio": 1.0, "height": 20, "area": 400,
     "ignore": 1, "iscrowd": 1},
    # person with extra.ignore = 1 → ignore.
    {"id": 4, "image_id": 1, "bbox": [70, 40, 10, 30], "vis_box": [70, 40, 10, 30],
     "head_box": [72, 40, 5, 5], "vis_ratio": 1.0, "height": 30, "area": 300,
     "ignore": 1, "iscrowd": 1},
    # vbox x∈[35,45] sticks out of fbox x∈[40,60]: ∩ = 5 × 20 = 100; 100/800 = 0.125.
    {"id": 5, "image_id": 1, "bbox": [40, 10, 20, 40], "vis_box": [35, 10, 10, 20],
     "head_box": [45, 10, 6, 6], "vis_ratio": 0.125, "height": 40, "area": 800,
     "ignore": 0, "iscrowd": 0},
    # image 3: the box at x,y∈[-30,0] ends exactly at the border (outside); this one stays.
    {"id": 6, "image_id": 3, "bbox": [5, 5, 10, 20], "vis_box": [5, 5, 10, 20],
     "head_box": None, "vis_ratio": 1.0, "height": 20, "area": 200,
     "ignore": 0, "iscrowd": 0},
]

TRAIN_RECORDS = [{"ID": B, "gtboxes": [person([1, 2, 3, 4], [1, 2, 3, 2], [1, 2, 1, 1])]}]


def write_odgt(path: Path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "crowdhuman"
    (root / "Images").mkdir(parents=True)
    for record_id, size in SIZES.items():
        Image.new("RGB", size, (90, 120, 30)).save(root / "Images" / f"{record_id}.jpg")
    write_odgt(root / "annotation_val.odgt", VAL_RECORDS)
    write_odgt(root / "annotation_train.odgt", TRAIN_RECORDS)
    return root


def test_val_conversion_exact(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    written = convert("crowdhuman", root, out, ["val"])
    assert written == {"val": out / "val.json"}
    data = json.loads((out / "val.json").read_text())
    assert data["info"] == {"dataset": "crowdhuman", "split": "val",
                            "source": "annotation_val.odgt", "image_root": "../crowdhuman/Images",
                            "degenerate_dropped": {"zero_size": 1, "outside_image": 2}}
    assert data["images"] == [
        {"id": 1, "file_name": f"{A}.jpg", "width": 100, "height": 80, "record_id": A},
        {"id": 2, "file_name": f"{B}.jpg", "width": 60, "height": 40, "record_id": B},
        {"id": 3, "file_name": f"{C}.jpg", "width": 50, "height": 50, "record_id": C}]
    assert data["annotations"] == [dict(a, category_id=1) for a in EXPECTED_VAL_ANNOTATIONS]
    assert data["categories"] == [{"id": 1, "name": "person"}]
    # image_root resolves to the images from the json's directory.
    assert (out / data["info"]["image_root"] / data["images"][0]["file_name"]).is_file()


def test_default_splits_and_blank_lines(root: Path, tmp_path: Path):
    # A blank line is skipped but still counted: the third image's errors would say line 4.
    text = (root / "annotation_train.odgt").read_text()
    (root / "annotation_train.odgt").write_text("\n" + text + "\n\n")
    written = convert("crowdhuman", root, tmp_path / "out")
    assert sorted(written) == ["train", "val"]
    train = json.loads(written["train"].read_text())
    assert [i["record_id"] for i in train["images"]] == [B]
    # fbox 3×4 = 12, vbox 3×2 = 6 inside it → 0.5.
    assert train["annotations"][0]["vis_ratio"] == 0.5
    assert train["info"]["degenerate_dropped"] == {"zero_size": 0, "outside_image": 0}


def test_degenerate_drops_are_logged(root: Path, tmp_path: Path, caplog):
    with caplog.at_level(logging.INFO, logger="lla.data.convert"):
        convert("crowdhuman", root, tmp_path / "out", ["val"])
    assert ("crowdhuman val: 3 images, 6 boxes (2 ignore); dropped 3 degenerate boxes "
            "(1 zero-size, 2 outside the image)") in caplog.messages


def test_second_conversion_reads_no_image(root: Path, tmp_path: Path, monkeypatch):
    first = convert("crowdhuman", root, tmp_path / "a", ["val"])["val"].read_text()
    assert (root / imagesize.CACHE_FILE_NAME).is_file()

    def no_reading(path):
        raise AssertionError(f"image header read: {path}")

    monkeypatch.setattr(imagesize, "read_image_size", no_reading)
    second = convert("crowdhuman", root, tmp_path / "a", ["val"])["val"].read_text()
    assert second == first


def test_cache_entry_invalidated_when_image_changes(root: Path, tmp_path: Path, monkeypatch):
    convert("crowdhuman", root, tmp_path / "a", ["val"])
    image = root / "Images" / f"{B}.jpg"
    Image.new("RGB", (64, 48)).save(image)
    os.utime(image, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    read = []
    real_reader = imagesize.read_image_size
    monkeypatch.setattr(imagesize, "read_image_size", lambda p: read.append(Path(p).name)
                        or real_reader(p))
    data = json.loads(convert("crowdhuman", root, tmp_path / "a", ["val"])["val"].read_text())
    assert read == [f"{B}.jpg"]
    assert (data["images"][1]["width"], data["images"][1]["height"]) == (64, 48)


def test_corrupt_cache_is_rebuilt(root: Path, tmp_path: Path, caplog):
    (root / imagesize.CACHE_FILE_NAME).write_text("{not json")
    data = json.loads(convert("crowdhuman", root, tmp_path / "a", ["val"])["val"].read_text())
    assert data["images"][0]["width"] == 100
    assert any("ignoring unreadable image-size cache" in m for m in caplog.messages)
    assert json.loads((root / imagesize.CACHE_FILE_NAME).read_text())["version"] == 1


def replace_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


def box_line(record_id: str, box: dict) -> str:
    return json.dumps({"ID": record_id, "gtboxes": [box]})


GOOD = person([1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 1, 1])


@pytest.mark.parametrize("line, message", [
    ('{"ID": "x", "gtboxes": [', "malformed JSON"),
    ('["ID", "gtboxes"]', "expected a JSON object, got list"),
    ('{"gtboxes": []}', "missing key 'ID'"),
    (json.dumps({"ID": B}), "missing key 'gtboxes'"),
    (json.dumps({"ID": "../etc/passwd", "gtboxes": []}), "'ID' must be a non-empty file-name stem"),
    (json.dumps({"ID": "273270,0000", "gtboxes": []}),
     "image Images/273270,0000.jpg not found"),
    (box_line(B, dict(GOOD, tag="head")), "gtboxes[0] has unknown tag 'head'"),
    (box_line(B, dict(GOOD, fbox=[1, 2, 3])), "gtboxes[0].fbox must be 4 numbers"),
    (box_line(B, dict(GOOD, fbox=[1, 2, "3", 4])), "gtboxes[0].fbox must be 4 finite numbers"),
    (box_line(B, dict(GOOD, fbox=[1, 2, True, 4])), "gtboxes[0].fbox must be 4 finite numbers"),
    ('{"ID": "%s", "gtboxes": [{"tag": "person", "fbox": [1, 2, NaN, 4], "vbox": [1, 2, 3, 4]}]}'
     % B, "gtboxes[0].fbox must be 4 finite numbers"),
    (box_line(B, dict(GOOD, fbox=[1, 2, -3, 4])), "gtboxes[0].fbox has negative width or height"),
    (box_line(B, dict(GOOD, vbox=[1, 2, 3, -0.5])), "gtboxes[0].vbox has negative width"),
    (box_line(B, dict(GOOD, hbox=[1, 2, 3, -1])), "gtboxes[0].hbox has negative width"),
    (box_line(B, {k: v for k, v in GOOD.items() if k != "vbox"}), "gtboxes[0] has no 'vbox'"),
    (box_line(B, dict(GOOD, extra={"ignore": 2})), "gtboxes[0].extra.ignore must be 0 or 1"),
])
def test_bad_input_names_file_and_line(root: Path, tmp_path: Path, line: str, message: str):
    odgt = root / "annotation_val.odgt"
    replace_line(odgt, 2, line)
    with pytest.raises(DataError) as info:
        convert("crowdhuman", root, tmp_path / "out", ["val"])
    assert str(info.value).startswith(f"{odgt}:2: ")
    assert message in str(info.value)


def test_duplicate_id_names_both_lines(root: Path, tmp_path: Path):
    odgt = root / "annotation_val.odgt"
    replace_line(odgt, 3, json.dumps({"ID": A, "gtboxes": []}))
    with pytest.raises(DataError, match=rf"annotation_val.odgt:3: duplicate ID '{A}' "
                                        rf"\(first on line 1\)"):
        convert("crowdhuman", root, tmp_path / "out", ["val"])


def test_unreadable_image_names_the_line(root: Path, tmp_path: Path):
    (root / "Images" / f"{C}.jpg").write_bytes(b"not a JPEG")
    with pytest.raises(DataError, match=rf"annotation_val.odgt:3: image Images/{C}.jpg: "
                                        rf"cannot read the image header"):
        convert("crowdhuman", root, tmp_path / "out", ["val"])


def test_missing_annotation_file(root: Path, tmp_path: Path):
    with pytest.raises(DataError, match="annotation_test.odgt: annotation file not found"):
        convert("crowdhuman", root, tmp_path / "out", ["test"])


def test_failed_conversion_leaves_no_output(root: Path, tmp_path: Path):
    # train converts cleanly, val fails on its last line: neither file may be (re)written,
    # and an older train.json stays as it was.
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.json").write_text("old")
    replace_line(root / "annotation_val.odgt", 3, "{oops")
    with pytest.raises(DataError):
        convert("crowdhuman", root, out, ["train", "val"])
    assert sorted(p.name for p in out.iterdir()) == ["train.json"]
    assert (out / "train.json").read_text() == "old"


def test_cli_converts(root: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert main(["data", "convert", "crowdhuman", "--root", str(root), "--out-dir", str(out),
                 "--split", "val"]) == 0
    data = json.loads((out / "val.json").read_text())
    assert len(data["annotations"]) == len(EXPECTED_VAL_ANNOTATIONS)
    assert not (out / "train.json").exists()


def test_cli_reports_bad_input(root: Path, tmp_path: Path, capsys):
    odgt = root / "annotation_val.odgt"
    replace_line(odgt, 2, box_line(B, dict(GOOD, tag="head")))
    code = main(["data", "convert", "crowdhuman", "--root", str(root), "--out-dir",
                 str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.startswith(f"error: {odgt}:2: gtboxes[0] has unknown tag")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_annotation_file_is_an_error(root: Path, tmp_path: Path, capsys, content: str):
    odgt = root / "annotation_val.odgt"
    odgt.write_text(content)
    code = main(["data", "convert", "crowdhuman", "--root", str(root), "--out-dir",
                 str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.startswith(
        f"error: {odgt}: no image record: the annotation file is empty")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
