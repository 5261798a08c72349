"""Aspect-ratio grouped batches: deterministic, shardable over DDP ranks, resumable mid-epoch.

Padding a landscape and a portrait image to a common size wastes most of the batch, so
every batch holds images of one aspect-ratio group only (the idea of torchvision's
detection references, ``group_by_aspect_ratio``).

One epoch's batches are a pure function of ``(seed, epoch)``:

1. shuffle all indices with a generator seeded by ``(seed, epoch)``;
2. walk them, appending each index to its group's bucket; a bucket that reaches
   ``batch_size`` becomes the next batch;
3. a group's incomplete last bucket is completed with that group's first indices of this
   epoch's order (those images are seen twice), or dropped when ``drop_last``;
4. the batch list is cut (``drop_last``) or padded by repeating its first batches so its
   length is a multiple of ``world_size``; rank ``r`` takes batches ``r, r + W, r + 2W, …``.

Every rank computes the same list, so ranks get disjoint batches (apart from the padding)
and the same number of them. ``state_dict()`` / ``load_state_dict()`` carry the epoch and
the position inside it: a resumed run yields exactly the batches the interrupted one had
not consumed.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from typing import Any, Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def aspect_ratio_groups(aspect_ratios: Sequence[float],
                        bins: Sequence[float] = (1.0,)) -> list[int]:
    """Group id of every image: the number of ``bins`` (sorted edges) at or below its
    width / height ratio. The default ``(1.0,)`` gives 0 = portrait, 1 = landscape or square."""
    edges = sorted(bins)
    return [bisect.bisect_right(edges, ratio) for ratio in aspect_ratios]


class GroupedBatchSampler(Sampler[list[int]]):
    """Batch sampler yielding lists of dataset indices that share a group id.

    Args:
        group_ids: group of every dataset index (see :func:`aspect_ratio_groups`).
        batch_size: images per batch on one rank.
        seed: base seed; the epoch's order depends on ``(seed, epoch)`` only.
        shuffle: False keeps dataset order (evaluation, debugging).
        drop_last: drop incomplete groups and the batches beyond a multiple of
            ``world_size`` instead of completing/padding them.
        rank, world_size: this process's DDP rank and the number of ranks.

    ``len(sampler)`` is the number of batches one rank gets in a whole epoch. Iterating
    yields the batches from the current position on and, when it runs to the end, moves
    to the next epoch.
    """

    def __init__(self, group_ids: Sequence[int], batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, "
                             f"world_size {world_size}")
        self.group_ids = np.asarray(group_ids, dtype=np.int64).reshape(-1)
        if (self.group_ids < 0).any():
            raise ValueError("group ids must be >= 0")
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0  # batches of this epoch already yielded on this rank
        self._pass_epoch = 0
        self._pass_start = 0

    # --- the batches -------------------------------------------------------------------

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.group_ids))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.group_ids))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All ranks' batches of ``epoch``, before sharding (steps 1–3 of the module doc)."""
        order = self._order(epoch)
        buckets: dict[int, list[int]] = defaultdict(list)
        batches = []
        for index in order.tolist():
            bucket = buckets[int(self.group_ids[index])]
            bucket.append(index)
            if len(bucket) == self.batch_size:
                batches.append(bucket.copy())
                bucket.clear()
        if not self.drop_last:
            for group in sorted(g for g, bucket in buckets.items() if bucket):
                members = order[self.group_ids[order] == group].tolist()
                bucket = buckets[group]
                need = self.batch_size - len(bucket)
                # cycle through the group's members when it is smaller than a batch
                bucket += [members[k % len(members)] for k in range(need)]
                batches.append(bucket)
        return batches

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        """Step 4: equal-length shards; this rank's batches."""
        remainder = len(batches) % self.world_size
        if remainder:
            if self.drop_last:
                batches = batches[:len(batches) - remainder]
            else:
                missing = self.world_size - remainder
                batches = batches + [batches[k % len(batches)] for k in range(missing)]
        return batches[self.rank::self.world_size]

    def rank_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, from the start of the epoch."""
        return self._shard(self.epoch_batches(epoch))

    def __len__(self) -> int:
        counts = np.bincount(self.group_ids) if len(self.group_ids) else np.zeros(0, np.int64)
        if self.drop_last:
            total = int(sum(c // self.batch_size for c in counts))
            return total // self.world_size
        total = int(sum(math.ceil(c / self.batch_size) for c in counts))
        return math.ceil(total / self.world_size)

    # --- iteration and state -----------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning, unless it is already the current epoch (then
        the position is kept, so a loop calling ``set_epoch`` each epoch resumes correctly
        after :meth:`load_state_dict`)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.position = 0

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches(self.epoch)
        self._pass_epoch, self._pass_start = self.epoch, self.position
        return self._yield_from(batches)

    def _yield_from(self, batches: list[list[int]]) -> Iterator[list[int]]:
        for batch in batches[self.position:]:
            self.position += 1
            yield batch
        self.epoch += 1
        self.position = 0

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """The epoch and position to resume from, plus the settings they depend on.

        A DataLoader with workers draws batches ahead of the training loop, so the sampler's
        own position runs ahead of what was trained on. Pass ``consumed``, the number of
        batches the loop has finished since the current iteration began, to save the state
        right after them; without it the state is after the batches yielded so far.
        """
        if consumed is None:
            epoch, position = self.epoch, self.position
        else:
            if consumed < 0:
                raise ValueError(f"consumed must be >= 0, got {consumed}")
            epoch, position = self._pass_epoch, self._pass_start + consumed
            if position > len(self):
                raise ValueError(f"consumed={consumed} runs past the epoch's {len(self)} "
                                 f"batches (started at {self._pass_start})")
            if position == len(self):
                epoch, position = epoch + 1, 0
        return {"epoch": epoch, "position": position, "settings": self._settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state``; the settings must match (same seed, sizes, ranks, data)."""
        mine = self._settings()
        theirs = state.get("settings", {})
        differing = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        if differing:
            raise ValueError("sampler state was saved with different settings: " + ", ".join(
                f"{k} {theirs.get(k)!r} (now {mine.get(k)!r})" for k in differing))
        if not 0 <= state["position"] <= len(self):
            raise ValueError(f"position {state['position']} outside 0..{len(self)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def _settings(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "world_size": self.world_size,
                "num_samples": len(self.group_ids),
                "group_sizes": np.bincount(self.group_ids).tolist() if len(self.group_ids)
                else []}
