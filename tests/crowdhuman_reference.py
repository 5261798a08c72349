"""Test oracle: a literal, loop-by-loop CrowdHuman evaluator (shared/spec/evaluation.md §2).

Written to follow the official CrowdDet evaluator's structure step by step (Database ->
per-image load/clip -> compare_caltech -> pooled sort -> eval_MR / eval_AP), in plain Python
loops over numpy rows, with the adopted edge behaviour of §2.8: an image with no GT boxes
counts and its detections are FPs, a GT image without a detection line has no detections,
and an empty pooled list gives MR 1, AP 0, Recall 0. It is slow on purpose; it is used
only by tests/test_eval_crowdhuman.py to check lla.eval.crowdhuman on random inputs.
"""

from __future__ import annotations

import numpy as np

PERSON_CLASSES = ["background", "person"]
REFERENCE_FPPI = [0.0100, 0.0178, 0.03160, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.000]


class ReferenceImage:
    def __init__(self) -> None:
        self.width = None
        self.height = None
        self.gt = np.zeros((0, 5))   # rows [x1, y1, x2, y2, tag]
        self.dt = np.zeros((0, 5))   # rows [x1, y1, x2, y2, score]
        self.num_gt = 0
        self.num_ignore = 0

    def load_gt(self, record: dict) -> None:
        if "width" in record and self.width is None:
            self.width = record["width"]
        if "height" in record and self.height is None:
            self.height = record["height"]
        rows = []
        for box in record["gtboxes"]:
            tag = PERSON_CLASSES.index(box["tag"]) if box["tag"] in PERSON_CLASSES else -1
            if box.get("extra", {}).get("ignore", 0) != 0:
                tag = -1
            x, y, w, h = box["fbox"]
            rows.append([x, y, x + w, y + h, tag])
        self.gt = np.array(rows, dtype=np.float64).reshape(-1, 5)
        self.num_gt = len(rows)
        self.num_ignore = sum(1 for r in rows if r[4] == -1)

    def load_dt(self, record: dict) -> None:
        if "width" in record and self.width is None:
            self.width = record["width"]
        if "height" in record and self.height is None:
            self.height = record["height"]
        rows = []
        for box in record["dtboxes"]:
            x, y, w, h = box["box"]
            rows.append([x, y, x + w, y + h, box["score"]])
        self.dt = np.array(rows, dtype=np.float64).reshape(-1, 5)
        self.clip()

    def clip(self) -> None:
        assert self.width is not None and self.height is not None
        for boxes in (self.dt, self.gt):
            for row in boxes:
                row[0] = min(max(row[0], 0), self.width - 1)
                row[1] = min(max(row[1], 0), self.height - 1)
                row[2] = max(min(row[2], self.width), 0)
                row[3] = max(min(row[3], self.height), 0)

    @staticmethod
    def overlap(d: np.ndarray, g: np.ndarray, iou: bool) -> float:
        iw = min(d[2], g[2]) - max(d[0], g[0])
        ih = min(d[3], g[3]) - max(d[1], g[1])
        inter = max(0.0, iw) * max(0.0, ih)
        dt_area = (d[2] - d[0]) * (d[3] - d[1])
        if iou:
            gt_area = (g[2] - g[0]) * (g[3] - g[1])
            return inter / (dt_area + gt_area - inter + 1e-6)
        return inter / (dt_area + 1e-6)

    def compare_caltech(self, thres: float = 0.5) -> list[tuple[float, int]]:
        """[(score, 1 TP / 0 FP)] of this image; dropped detections are left out."""
        dts = sorted(self.dt.tolist(), key=lambda r: r[-1], reverse=True)   # stable
        gts = sorted(self.gt.tolist(), key=lambda r: r[-1], reverse=True)   # stable
        gt_matched = [False] * len(gts)
        out = []
        for dt in dts:
            best, best_value = -1, thres
            for j, gt in enumerate(gts):
                if gt_matched[j]:
                    continue
                if gt[-1] > 0:
                    value = self.overlap(dt, gt, True)
                    if value > best_value:
                        best, best_value = j, value
                else:
                    if best >= 0:
                        break
                    value = self.overlap(dt, gt, False)
                    if value > thres:
                        best, best_value = j, value
            if best >= 0:
                if gts[best][-1] > 0:
                    gt_matched[best] = True
                    out.append((dt[-1], 1))
                # else: dropped on an ignore region
            else:
                out.append((dt[-1], 0))
        return out


def reference_metrics(gt_records: list[dict], dt_records: list[dict]) -> dict[str, float]:
    """MR, AP, Recall of odgt-style GT and detection records."""
    images: dict[str, ReferenceImage] = {}
    for rec in gt_records:
        images[rec["ID"]] = ReferenceImage()
        images[rec["ID"]].load_gt(rec)
    for rec in dt_records:
        images[rec["ID"]].load_dt(rec)
    num_valid = sum(im.num_gt - im.num_ignore for im in images.values())
    num_images = len(images)

    pooled = []
    for image in images.values():
        pooled.extend(image.compare_caltech())
    pooled.sort(key=lambda item: item[0], reverse=True)   # stable
    if not pooled:
        return {"MR": 1.0, "AP": 0.0, "Recall": 0.0}

    tp = fp = 0.0
    fppi_x, miss_y, recalls, precisions = [], [], [], []
    for _, label in pooled:
        if label == 1:
            tp += 1.0
        else:
            fp += 1.0
        fn = num_valid - tp
        recall = tp / (tp + fn)
        recalls.append(recall)
        precisions.append(tp / (tp + fp))
        fppi_x.append(fp / num_images)
        miss_y.append(1.0 - recall)

    samples = []
    for ref in REFERENCE_FPPI:
        index = len(fppi_x) - 1
        for k, fppi in enumerate(fppi_x):
            if fppi >= ref:
                index = k
                break
        samples.append(miss_y[index])
    with np.errstate(divide="ignore"):
        mr = float(np.exp(np.log(np.array(samples)).mean()))

    ap = 0.0
    for k in range(1, len(recalls)):
        ap += (recalls[k] - recalls[k - 1]) * ((precisions[k - 1] + precisions[k]) / 2)
    return {"MR": mr, "AP": ap, "Recall": recalls[-1]}
