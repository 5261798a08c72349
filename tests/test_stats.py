"""lla.data.stats on a hand-made two-image ground truth, worked out by hand.

Image "A" (odgt):
  p1 fbox [0,0,10,10]  vbox [0,0,10,10]  -> vis 100/100 = 1.0, height 10
  p2 fbox [5,0,10,10]  vbox [10,0,5,10]  -> vbox inside fbox: vis 50/100 = 0.5, height 10
  p3 fbox [0,0,10,20]  vbox [0,0,10,4]   -> vis 40/200 = 0.2, height 20
  p4 person with extra.ignore = 1        -> an ignore box, not a person
  a `mask` region                        -> an ignore box
  IoU(p1,p2) = 50 / (100+100-50) = 1/3;  IoU(p1,p3) = 100 / (100+200-100) = 0.5;
  IoU(p2,p3) = (5*10) / (100+200-50) = 0.2
Image "B":
  p5 fbox [0,0,10,10] vbox [0,0,10,10]   -> vis 1.0
  p6 fbox [1,0,10,10] vbox [-5,0,20,10]  -> vbox sticks out of fbox: vis = area(∩)/area(fbox) = 1.0
  IoU(p5,p6) = 90 / (200-90) = 9/11 ≈ 0.818

So: 2 images, 5 persons (2.5 / image), 2 ignore boxes (1.0 / image).
Pairs with IoU > t (strict): t=0.3: {1/3, 0.5, 0.818} = 3 -> 1.5 / image; t=0.4: {0.5, 0.818}
-> 1.0; t=0.5..0.8: {0.818} -> 0.5 (IoU 0.5 is not > 0.5); t=0.9: 0.
Visibility {1, 0.5, 0.2, 1, 1}: bins [0.2,0.3) 1, [0.5,0.6) 1, [0.9,1.0] 3 -> 0.2, 0.2, 0.6;
bare (>= 0.7) 3/5, partial 1/5, heavy 1/5; mean 3.7/5 = 0.74.
Heights {10,10,20,10,10}: median 10; q0.95 = 10 + 0.8 * (20 - 10) = 18 (linear, position 3.8).
"""

from __future__ import annotations

import json

import pytest

from lla.cli import main
from lla.data import stats
from lla.errors import DataError


def person(fbox, vbox, ignore=False):
    extra = {"box_id": 0, "occ": 0}
    if ignore:
        extra["ignore"] = 1
    return {"tag": "person", "fbox": fbox, "vbox": vbox, "hbox": [fbox[0], fbox[1], 2, 2],
            "head_attr": {"ignore": 0, "occ": 0, "unsure": 0}, "extra": extra}


IMAGE_A = {"ID": "A", "gtboxes": [
    person([0, 0, 10, 10], [0, 0, 10, 10]),
    person([5, 0, 10, 10], [10, 0, 5, 10]),
    person([0, 0, 10, 20], [0, 0, 10, 4]),
    person([0, 0, 10, 10], [0, 0, 10, 10], ignore=True),
    {"tag": "mask", "fbox": [50, 50, 5, 5], "vbox": [50, 50, 5, 5], "hbox": [50, 50, 5, 5],
     "extra": {"ignore": 1}}]}
IMAGE_B = {"ID": "B", "gtboxes": [person([0, 0, 10, 10], [0, 0, 10, 10]),
                                  person([1, 0, 10, 10], [-5, 0, 20, 10])]}


def write_odgt(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def check_hand_case(result):
    assert result["images"] == 2
    assert result["persons"] == 5
    assert result["persons_per_image"] == pytest.approx(2.5)
    assert result["ignore_boxes_per_image"] == pytest.approx(1.0)
    assert result["pairs_per_image"] == pytest.approx(
        {"0.3": 1.5, "0.4": 1.0, "0.5": 0.5, "0.6": 0.5, "0.7": 0.5, "0.8": 0.5, "0.9": 0.0})
    expected_hist = [0, 0, 0.2, 0, 0, 0.2, 0, 0, 0, 0.6]
    assert result["visibility_histogram"]["fraction"] == pytest.approx(expected_hist)
    assert result["occlusion_levels"] == pytest.approx({"bare": 0.6, "partial": 0.2, "heavy": 0.2})
    assert result["mean_visibility"] == pytest.approx(0.74)
    assert result["height_quantiles"]["0.5"] == pytest.approx(10)
    assert result["height_quantiles"]["0.95"] == pytest.approx(18)


def test_odgt_hand_case(tmp_path):
    check_hand_case(stats.compute_stats(stats.load_ground_truth(
        write_odgt(tmp_path / "gt.odgt", [IMAGE_A, IMAGE_B]))))


def test_converted_json_gives_the_same_numbers(tmp_path):
    # The same boxes in the converted contract; vis_ratio as the converter computes it.
    anns = []
    for image_id, record in ((1, IMAGE_A), (2, IMAGE_B)):
        for box in record["gtboxes"]:
            ignore = int(box["tag"] == "mask" or box["extra"].get("ignore", 0) == 1)
            vis = stats._visible_fraction([float(v) for v in box["fbox"]],
                                          [float(v) for v in box["vbox"]])
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                         "bbox": box["fbox"], "vis_box": box["vbox"], "head_box": None,
                         "vis_ratio": vis, "height": box["fbox"][3],
                         "area": box["fbox"][2] * box["fbox"][3], "ignore": ignore,
                         "iscrowd": ignore})
    data = {"info": {"dataset": "crowdhuman", "split": "val", "source": "gt.odgt",
                     "image_root": "Images"},
            "images": [{"id": 1, "file_name": "A.jpg", "width": 100, "height": 100,
                        "record_id": "A"},
                       {"id": 2, "file_name": "B.jpg", "width": 100, "height": 100,
                        "record_id": "B"}],
            "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    check_hand_case(stats.compute_stats(stats.load_ground_truth(path)))


def test_pair_counts_use_strict_threshold():
    import numpy as np
    # a 10x10 box inside a 10x20 box: IoU = 100 / 200 = 0.5 exactly
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 20]])
    assert stats.overlap_pair_counts(boxes, thresholds=(0.49, 0.5)) == [1, 0]
    assert stats.overlap_pair_counts(boxes[:1]) == [0] * len(stats.IOU_THRESHOLDS)


def test_degenerate_and_empty_images(tmp_path):
    records = [{"ID": "E", "gtboxes": []},
               {"ID": "D", "gtboxes": [person([0, 0, 0, 10], [0, 0, 0, 10]),
                                       person([0, 0, 10, 10], [0, 0, 10, 10])]}]
    result = stats.compute_stats(stats.load_ground_truth(write_odgt(tmp_path / "d.odgt", records)))
    assert result["images"] == 2 and result["persons"] == 1 and result["degenerate_boxes"] == 1


@pytest.mark.parametrize("line, message", [
    ('{"ID": "x", "gtboxes": [', "invalid JSON"),
    ('{"ID": "x", "gtboxes": [{"tag": "car", "fbox": [0,0,1,1]}]}', "unknown tag 'car'"),
    ('{"ID": "x", "gtboxes": [{"tag": "person", "fbox": [0,0,1]}]}', "'fbox' must be a list"),
    ('{"gtboxes": []}', "expected an object with 'ID'"),
])
def test_bad_odgt_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.odgt"
    path.write_text(json.dumps(IMAGE_B) + "\n" + line + "\n")
    with pytest.raises(DataError) as err:
        stats.load_ground_truth(path)
    assert str(err.value).startswith(f"{path}:2")
    assert message in str(err.value)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="expected a CrowdHuman .odgt"):
        stats.load_ground_truth(tmp_path / "gt.txt")
    with pytest.raises(DataError, match="file not found"):
        stats.load_ground_truth(tmp_path / "missing.odgt")


def test_cli_prints_and_writes_json(tmp_path, capsys):
    gt = write_odgt(tmp_path / "gt.odgt", [IMAGE_A, IMAGE_B])
    out = tmp_path / "stats.json"
    assert main(["data", "stats", "--gt", str(gt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "persons / image" in printed and "2.500" in printed
    check_hand_case(json.loads(out.read_text()))


def test_cli_bad_input_exit_code(tmp_path, capsys):
    path = tmp_path / "bad.odgt"
    path.write_text("not json\n")
    assert main(["data", "stats", "--gt", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path}:1")


@pytest.mark.parametrize("box, message", [
    ([0, 0, -10, 10], "'fbox' has a negative width or height: [0, 0, -10, 10]"),
    ([0, 0, 10, -0.5], "'fbox' has a negative width or height"),
    ([0, 0, float("inf"), 10], "'fbox' has a NaN/inf value"),
])
def test_negative_or_infinite_sizes_are_errors(tmp_path, capsys, box, message):
    # Zero sizes are degenerate boxes (counted, see above); negative ones are malformed, as
    # in the converters.
    path = write_odgt(tmp_path / "bad.odgt", [IMAGE_B, {"ID": "N", "gtboxes": [
        person(box, [0, 0, 10, 10])]}])
    assert main(["data", "stats", "--gt", str(path), "--out", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:2 [N box 0]: ") and message in err, err
    assert not (tmp_path / "s.json").exists()


def test_negative_size_in_converted_json_is_an_error(tmp_path):
    data = {"images": [{"id": 1, "record_id": "A"}],
            "annotations": [{"id": 7, "image_id": 1, "bbox": [0, 0, 5, -5], "vis_ratio": 1.0,
                             "ignore": 0}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"gt\.json \[annotation 7\]: 'bbox' has a negative"):
        stats.load_ground_truth(path)


def test_empty_file_or_directory_is_an_error(tmp_path, capsys):
    empty = tmp_path / "empty.odgt"
    empty.write_text("\n")
    assert main(["data", "stats", "--gt", str(empty)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {empty}: no images in the ground truth")
    folder = tmp_path / "gt.odgt"
    folder.mkdir()
    assert main(["data", "stats", "--gt", str(folder)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {folder}: is a directory")
