"""CrowdDataset (resize / flip / clip on a hand-made example), PadCollate and the
aspect-ratio grouped, DDP-shardable, resumable batch sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lla.config import load_params, section
from lla.data import transforms as T
from lla.data.dataset import CrowdDataset, PadCollate
from lla.data.sampler import GroupedBatchSampler, aspect_ratio_groups
from lla.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def annotation(ann_id, image_id, bbox, vis_box, ignore):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox,
            "vis_box": vis_box, "head_box": None, "vis_ratio": 1.0, "height": bbox[3],
            "area": bbox[2] * bbox[3], "ignore": ignore, "iscrowd": ignore}


@pytest.fixture
def json_path(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    # 200×100 landscape PNG: left half red, right half blue (to see the flip in pixels).
    left_red = np.zeros((100, 200, 3), np.uint8)
    left_red[:, :100, 0] = 255
    left_red[:, 100:, 2] = 255
    Image.fromarray(left_red).save(images / "wide.png")
    Image.new("RGB", (60, 90), (0, 255, 0)).save(images / "tall.jpg")  # portrait, no boxes
    Image.new("L", (64, 64), 128).save(images / "grey.png")           # single channel
    data = {
        "info": {"dataset": "crowdhuman", "split": "val", "source": "hand-made",
                 "image_root": "images"},
        "images": [{"id": 1, "file_name": "wide.png", "width": 200, "height": 100,
                    "record_id": "wide"},
                   {"id": 2, "file_name": "tall.jpg", "width": 60, "height": 90,
                    "record_id": "tall"},
                   {"id": 3, "file_name": "grey.png", "width": 64, "height": 64,
                    "record_id": "grey"}],
        "annotations": [
            annotation(1, 1, [10, 20, 50, 60], [10, 20, 50, 30], 0),
            annotation(2, 1, [-20, 50, 40, 70], [0, 50, 20, 50], 0),    # past left and bottom
            annotation(3, 1, [200, 0, 10, 10], [200, 0, 10, 10], 0),   # starts at x = W0
            annotation(4, 1, [150, 0, 60, 30], [150, 0, 60, 30], 1),   # ignore, past the right
            annotation(5, 1, [-50, 0, 30, 30], [-50, 0, 30, 30], 1),   # ignore, left of image
            annotation(6, 3, [0, 0, 64, 64], [0, 0, 64, 64], 1),
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    path = tmp_path / "val.json"
    path.write_text(json.dumps(data))
    return path


def dataset(json_path, **kwargs) -> CrowdDataset:
    options = dict(train=True, min_size=50, max_size=80, flip_prob=0.0)
    options.update(kwargs)
    return CrowdDataset(json_path, **options)


def test_resize_scale_math():
    # short side 100 → 50 would make the long side 100 > 80, so the long side wins: 0.4.
    assert T.resize_scale(100, 200, min_size=50, max_size=80) == pytest.approx(0.4)
    assert T.resized_size(100, 200, min_size=50, max_size=80) == (40, 80)
    # the paper's sizes on a 1000×1500 (H×W) image: 800/1000 = 0.8 < 1400/1500.
    assert T.resized_size(1000, 1500, min_size=800, max_size=1400) == (800, 1200)
    # 333 · (800/333) is 799.9999… in floating point: rounding keeps the short side at 800.
    assert T.resized_size(333, 500, min_size=800, max_size=1400)[0] == 800


def test_resize_and_clip_without_flip(json_path):
    image, target = dataset(json_path)[0]
    # scale = min(50/100, 80/200) = 0.4 → 40×80; x and y factors 80/200 and 40/100.
    assert image.shape == (3, 40, 80) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert target["size"].tolist() == [40, 80]
    assert target["orig_size"].tolist() == [100, 200]
    assert target["scale"].tolist() == [0.4, 0.4]
    assert target["flipped"] is False
    # box 1: xyxy [10,20,60,80]·0.4 = [4,8,24,32]; visible [10,20,60,50]·0.4 = [4,8,24,20].
    # box 2: [-20,50,20,120]·0.4 = [-8,20,8,48] → clipped to [0,20,8,40]; visible [0,20,8,40].
    # box 3: [200,0,210,10]·0.4 = [80,0,84,4] → clipped [80,0,80,4]: empty, removed.
    torch.testing.assert_close(target["boxes"], torch.tensor([[4., 8., 24., 32.],
                                                              [0., 20., 8., 40.]]))
    torch.testing.assert_close(target["vis_boxes"], torch.tensor([[4., 8., 24., 20.],
                                                                  [0., 20., 8., 40.]]))
    assert target["annotation_ids"].tolist() == [1, 2]
    assert target["labels"].tolist() == [1, 1]
    # ignore 4: [150,0,210,30]·0.4 = [60,0,84,12] → [60,0,80,12]; ignore 5 ends at x = -8: gone.
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[60., 0., 80., 12.]]))
    assert target["image_id"] == 1
    # the left half is still red
    torch.testing.assert_close(image[:, 20, 5], torch.tensor([1.0, 0.0, 0.0]))


def test_flip(json_path):
    image, target = dataset(json_path, flip_prob=1.0)[0]
    assert target["flipped"] is True
    # x' = 80 − x: box 1 [4,8,24,32] → [56,8,76,32]; box 2 [-8,20,8,48] → [72,20,88,48]
    # → clipped [72,20,80,40]; ignore [60,0,84,12] → [-4,0,20,12] → [0,0,20,12].
    torch.testing.assert_close(target["boxes"], torch.tensor([[56., 8., 76., 32.],
                                                              [72., 20., 80., 40.]]))
    torch.testing.assert_close(target["vis_boxes"], torch.tensor([[56., 8., 76., 20.],
                                                                  [72., 20., 80., 40.]]))
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[0., 0., 20., 12.]]))
    # the blue half is now on the left
    torch.testing.assert_close(image[:, 20, 5], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(image[:, 20, 75], torch.tensor([1.0, 0.0, 0.0]))


def test_image_cache_gives_identical_samples(json_path, monkeypatch):
    """Cached samples equal uncached ones bit for bit, across epochs with and without a
    flip, and a cached image is decoded once."""
    import lla.data.dataset as dataset_module

    plain = dataset(json_path, flip_prob=0.5)
    cached = dataset(json_path, flip_prob=0.5, cache_images=True)
    decoded = []
    decode = dataset_module.decode_rgb
    monkeypatch.setattr(dataset_module, "decode_rgb", lambda path: decoded.append(path) or decode(path))
    flips = set()
    for epoch in range(6):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for index in range(len(plain)):
            (image_a, target_a), (image_b, target_b) = plain[index], cached[index]
            assert torch.equal(image_a, image_b)
            assert target_a.keys() == target_b.keys()
            for key, value in target_a.items():
                assert (torch.equal(value, target_b[key]) if isinstance(value, torch.Tensor)
                        else value == target_b[key]), key
            flips.add((index, target_a["flipped"]))
    assert {(0, False), (0, True)} <= flips           # both orientations of the resized image
    assert len(decoded) == 6 * len(plain) + len(plain)  # the plain dataset decodes every time


def test_no_flip_when_not_training(json_path):
    _, target = dataset(json_path, train=False, flip_prob=1.0)[0]
    assert target["flipped"] is False


def test_image_without_boxes(json_path):
    image, target = dataset(json_path)[1]
    # portrait 60×90: min(50/60, 80/90) = 0.8333… → 75×50 (H×W)
    assert image.shape == (3, 75, 50)
    for key in ("boxes", "vis_boxes", "ignore_boxes"):
        assert target[key].shape == (0, 4) and target[key].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["annotation_ids"].shape == (0,)


def test_grey_png_is_rgb_and_only_ignore(json_path):
    image, target = dataset(json_path)[2]
    # 64×64 → short side 50 (long side 50 ≤ 80): 50×50, three equal channels.
    assert image.shape == (3, 50, 50)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert target["boxes"].shape == (0, 4)
    # [0,0,64,64] · 50/64 = [0,0,50,50]
    torch.testing.assert_close(target["ignore_boxes"], torch.tensor([[0., 0., 50., 50.]]))


def test_flips_are_deterministic_per_seed_epoch_index(json_path):
    a, b = dataset(json_path, flip_prob=0.5), dataset(json_path, flip_prob=0.5)
    draws = []
    for epoch in range(200):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert a.flips(0) == b.flips(0)
        draws.append(a.flips(0))
    # Binomial(200, 0.5): mean 100, sd ≈ 7; 70..130 is > 4 sd either way.
    assert 70 <= sum(draws) <= 130
    other_seed = dataset(json_path, flip_prob=0.5, seed=1)
    assert [other_seed.set_epoch(e) or other_seed.flips(0) for e in range(200)] != draws


def test_size_mismatch_and_missing_image(json_path, tmp_path):
    data = json.loads(json_path.read_text())
    data["images"][0]["width"] = 201
    json_path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"wide.png: decoded size 200×100 differs from 201×100"):
        dataset(json_path)[0]
    (tmp_path / "images" / "tall.jpg").unlink()
    with pytest.raises(DataError, match=r"tall.jpg: image file not found"):
        dataset(json_path)[1]


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"info": {"image_root": "."}, "images": [{"id": 1}],
                                "annotations": []}))
    with pytest.raises(DataError, match=r"bad.json: not a converted dataset json"):
        CrowdDataset(path, train=False, min_size=10, max_size=10)


def test_from_config_reads_the_input_block(json_path):
    config = section(load_params(REPO / "params.yaml"), "input", "micro")
    ds = CrowdDataset.from_config(json_path, config, train=True)
    assert (ds.min_size, ds.max_size, ds.flip_prob) == (256, 256, 0.5)
    assert ds.aspect_ratios() == [2.0, 60 / 90, 1.0]


def test_collate_pads_to_a_multiple(json_path):
    ds = dataset(json_path)
    samples = [ds[0], ds[1]]  # 40×80 and 75×50
    batch = PadCollate(size_divisible=32)(samples)
    # max H 75 → 96 (3·32), max W 80 → 96
    assert batch.images.shape == (2, 3, 96, 96)
    assert batch.image_sizes == [(40, 80), (75, 50)]
    assert torch.equal(batch.images[0, :, :40, :80], samples[0][0])
    assert torch.equal(batch.images[1, :, :75, :50], samples[1][0])
    assert batch.images[0, :, 40:].abs().sum() == 0 and batch.images[0, :, :, 80:].abs().sum() == 0
    assert batch.images[1, :, 75:].abs().sum() == 0 and batch.images[1, :, :, 50:].abs().sum() == 0
    assert batch.targets[0] is samples[0][1]
    # the default, 128 (P7 stride): both sides → 128
    assert PadCollate()(samples).images.shape == (2, 3, 128, 128)


def test_dataloader_end_to_end(json_path):
    ds = dataset(json_path, flip_prob=0.5)
    sampler = GroupedBatchSampler(aspect_ratio_groups(ds.aspect_ratios()), 2, seed=3)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=PadCollate(128))
    seen = []
    for batch in loader:
        assert batch.images.shape[0] == 2 and batch.images.shape[-1] % 128 == 0
        seen += [t["image_id"] for t in batch.targets]
    # groups: portrait {tall}, landscape-or-square {wide, grey}: two batches of two, the
    # portrait one completed with its only member again.
    assert sorted(seen) == [1, 2, 2, 3]


# --- sampler -------------------------------------------------------------------------


def test_aspect_ratio_groups():
    assert aspect_ratio_groups([0.5, 0.99, 1.0, 2.0]) == [0, 0, 1, 1]
    assert aspect_ratio_groups([0.5, 1.0, 2.0], bins=[0.8, 1.5]) == [0, 1, 2]
    assert aspect_ratio_groups([0.5, 2.0], bins=[]) == [0, 0]


# 7 landscape (group 1) and 4 portrait (group 0) images, interleaved.
GROUPS = [1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1]


def test_batches_are_grouped_and_cover_everything():
    sampler = GroupedBatchSampler(GROUPS, 3, seed=0)
    batches = list(sampler)
    # group 1: 7 → 2 full + 1 completed; group 0: 4 → 1 full + 1 completed
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        assert len(batch) == 3 and len({GROUPS[i] for i in batch}) == 1
    assert sorted(set(i for b in batches for i in b)) == list(range(len(GROUPS)))
    # 15 slots for 11 images: 4 images appear twice (2 to complete each group's last batch)
    counts = np.bincount([i for b in batches for i in b])
    assert sorted(counts.tolist()) == [1] * 7 + [2] * 4


def test_completion_uses_the_groups_first_indices_of_the_epoch():
    sampler = GroupedBatchSampler(GROUPS, 3, seed=5)
    order = sampler._order(0).tolist()
    landscape = [i for i in order if GROUPS[i] == 1]
    batches = sampler.epoch_batches(0)
    # landscape: leftover [7th] completed with the 1st and 2nd landscape indices of the order
    assert [landscape[6], landscape[0], landscape[1]] in batches


def test_drop_last():
    sampler = GroupedBatchSampler(GROUPS, 3, seed=0, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3  # 7 // 3 + 4 // 3
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) == 9


def test_deterministic_from_seed_and_epoch():
    a = GroupedBatchSampler(GROUPS, 2, seed=7)
    b = GroupedBatchSampler(GROUPS, 2, seed=7)
    assert a.epoch_batches(3) == b.epoch_batches(3)
    assert a.epoch_batches(3) != a.epoch_batches(4)
    assert a.epoch_batches(3) != GroupedBatchSampler(GROUPS, 2, seed=8).epoch_batches(3)
    unshuffled = GroupedBatchSampler(GROUPS, 2, shuffle=False)
    assert unshuffled.epoch_batches(0)[:2] == [[0, 2], [1, 4]]


def test_iteration_advances_the_epoch():
    sampler = GroupedBatchSampler(GROUPS, 3, seed=1)
    first = list(sampler)
    assert (sampler.epoch, sampler.position) == (1, 0)
    assert list(sampler) == sampler.rank_batches(1) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_ddp_shards_disjoint_and_complete():
    # 12 landscape + 6 portrait, batch 3 → 4 + 2 = 6 batches; 3 ranks → 2 each, no padding.
    groups = [1, 1, 0] * 6
    shards = [list(GroupedBatchSampler(groups, 3, seed=2, rank=r, world_size=3))
              for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]
    flat = [i for shard in shards for batch in shard for i in batch]
    assert sorted(flat) == list(range(18))
    assert len(GroupedBatchSampler(groups, 3, rank=1, world_size=3)) == 2


def test_ddp_padding_and_drop_last():
    # GROUPS with batch 3 → 5 batches; 2 ranks: padded with global batch 0 → 3 each.
    full = GroupedBatchSampler(GROUPS, 3, seed=4).epoch_batches(0)
    shards = [GroupedBatchSampler(GROUPS, 3, seed=4, rank=r, world_size=2).rank_batches(0)
              for r in range(2)]
    assert shards[0] == [full[0], full[2], full[4]]
    assert shards[1] == [full[1], full[3], full[0]]
    assert len(GroupedBatchSampler(GROUPS, 3, rank=1, world_size=2)) == 3
    # drop_last: 3 full batches → 2 kept → 1 per rank
    dropped = [GroupedBatchSampler(GROUPS, 3, seed=4, rank=r, world_size=2, drop_last=True)
               for r in range(2)]
    assert [len(list(s)) for s in dropped] == [1, 1] == [len(s) for s in dropped]


@pytest.mark.parametrize("batch_size, world_size, drop_last",
                         [(1, 1, False), (2, 3, False), (4, 2, True), (5, 1, False), (3, 4, True)])
def test_len_matches_iteration(batch_size, world_size, drop_last):
    for rank in range(world_size):
        sampler = GroupedBatchSampler(GROUPS, batch_size, seed=9, rank=rank,
                                      world_size=world_size, drop_last=drop_last)
        assert len(list(sampler)) == len(sampler)


def test_resume_mid_epoch_yields_exactly_the_remaining_batches():
    sampler = GroupedBatchSampler(GROUPS, 2, seed=11, rank=1, world_size=2)
    sampler.set_epoch(2)
    expected = sampler.rank_batches(2)
    iterator = iter(sampler)
    consumed = [next(iterator), next(iterator)]
    state = sampler.state_dict()
    assert (state["epoch"], state["position"]) == (2, 2)

    resumed = GroupedBatchSampler(GROUPS, 2, seed=11, rank=1, world_size=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the training loop's call for the current epoch keeps the position
    rest = list(resumed)
    assert consumed + rest == expected
    assert (resumed.epoch, resumed.position) == (3, 0)


def test_state_after_consumed_batches_with_prefetch():
    # A DataLoader drew 4 batches ahead, the loop finished 1: resume after that one.
    sampler = GroupedBatchSampler(GROUPS, 2, seed=11)
    expected = sampler.rank_batches(0)
    iterator = iter(sampler)
    for _ in range(4):
        next(iterator)
    state = sampler.state_dict(consumed=1)
    assert (state["epoch"], state["position"]) == (0, 1)
    resumed = GroupedBatchSampler(GROUPS, 2, seed=11)
    resumed.load_state_dict(state)
    assert list(resumed) == expected[1:]
    # consuming the whole epoch points at the start of the next one
    assert sampler.state_dict(consumed=len(sampler) - 0)["epoch"] == 1
    with pytest.raises(ValueError, match="runs past the epoch"):
        sampler.state_dict(consumed=len(sampler) + 1)


def test_load_state_with_other_settings_fails():
    state = GroupedBatchSampler(GROUPS, 2, seed=11).state_dict()
    with pytest.raises(ValueError, match=r"seed 11 \(now 12\)"):
        GroupedBatchSampler(GROUPS, 2, seed=12).load_state_dict(state)
    with pytest.raises(ValueError, match=r"world_size 1 \(now 2\)"):
        GroupedBatchSampler(GROUPS, 2, seed=11, world_size=2).load_state_dict(state)


def test_empty_dataset_gives_no_batches():
    sampler = GroupedBatchSampler([], 2, world_size=2, rank=1)
    assert len(sampler) == 0 and list(sampler) == []


def test_invalid_arguments():
    with pytest.raises(ValueError, match="group ids must be >= 0"):
        GroupedBatchSampler([0, -1], 2)
    with pytest.raises(ValueError):
        GroupedBatchSampler(GROUPS, 0)
    with pytest.raises(ValueError):
        GroupedBatchSampler(GROUPS, 2, rank=2, world_size=2)
    with pytest.raises(ValueError):
        PadCollate(0)
