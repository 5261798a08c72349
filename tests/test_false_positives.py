"""False positives above the MR operating range, by kind (lla.analysis.false_positives)."""

from __future__ import annotations

import pytest

from lla.analysis.false_positives import false_positive_kinds


def ground_truth() -> dict:
    def ann(ann_id, image_id, bbox, ignore=0):
        return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
                "ignore": ignore, "iscrowd": ignore}

    return {"images": [{"id": 1, "file_name": "1.jpg", "width": 300, "height": 300},
                       {"id": 2, "file_name": "2.jpg", "width": 300, "height": 300}],
            "annotations": [ann(1, 1, [0, 0, 10, 20]),                  # A
                            ann(2, 1, [50, 0, 10, 20]),                 # B
                            ann(3, 1, [100, 0, 50, 50], ignore=1),      # ignore region
                            ann(4, 2, [0, 0, 10, 20])],                 # D
            "categories": [{"id": 1, "name": "person"}]}


def detection(image_id, bbox, score):
    return {"image_id": image_id, "category_id": 1, "bbox": bbox, "score": score}


DETECTIONS = [
    detection(1, [0, 0, 10, 20], 0.9),      # TP: A
    detection(1, [1, 0, 10, 20], 0.8),      # IoU 180/220 with A, already taken: duplicate
    detection(1, [55, 0, 10, 20], 0.7),     # IoU 100/300 with B: mislocalised
    detection(1, [110, 0, 10, 10], 0.6),    # inside the ignore region: dropped
    detection(2, [200, 200, 10, 10], 0.5),  # nothing near: background
    detection(2, [0, 0, 10, 20], 0.4),      # TP: D
]


def test_kinds_by_hand():
    # 2 images: FPPI = 1 allows 2 false positives; the ranking stops before the third (0.5).
    kinds = false_positive_kinds(ground_truth(), DETECTIONS)
    assert (kinds.false_positives, kinds.duplicate, kinds.mislocalised, kinds.background) == (2, 1, 1, 0)
    assert kinds.true_positives == 1 and kinds.recall == pytest.approx(1 / 3)
    assert kinds.score == pytest.approx(0.7) and kinds.images == 2
    # FPPI = 2: the whole list (3 false positives < 4).
    kinds = false_positive_kinds(ground_truth(), DETECTIONS, fppi=2.0)
    assert (kinds.false_positives, kinds.duplicate, kinds.mislocalised, kinds.background) == (3, 1, 1, 1)
    assert kinds.true_positives == 2 and kinds.score == pytest.approx(0.5)
    # A wider localisation band turns nothing into background here; a narrower one
    # (IoU > 0.4 needed) makes the mislocalised box background.
    kinds = false_positive_kinds(ground_truth(), DETECTIONS, fppi=2.0, loc_iou=0.4)
    assert (kinds.mislocalised, kinds.background) == (0, 2)


def test_no_false_positives_and_bad_fppi():
    kinds = false_positive_kinds(ground_truth(), [DETECTIONS[0], DETECTIONS[5]])
    assert (kinds.false_positives, kinds.true_positives, kinds.score) == (0, 2, 0.0)
    with pytest.raises(ValueError):
        false_positive_kinds(ground_truth(), DETECTIONS, fppi=0)
