"""Learning-rate schedule: linear warm-up, then multi-step decay, stepped per iteration.

The factor applied to the base learning rate after ``it`` finished iterations is

    warmup(it) * gamma ** (number of milestones <= it)

with ``warmup(it) = factor + (1 - factor) * it / warmup_iters`` for ``it < warmup_iters``
and 1 afterwards (the detectron2 / cvpods linear warm-up: the very first step uses
``base_lr * factor``). The factor is computed in closed form from the iteration
count, so a resumed run gets exactly the learning rates of an uninterrupted one.

Named schedules (``train.schedules`` in params.yaml) are given in epochs or iterations;
:func:`schedule_iterations` converts them with the number of iterations per epoch
(batches per rank per epoch, i.e. ``len(sampler)``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

SCHEDULE_UNITS = ("epoch", "iteration")


@dataclass(frozen=True)
class ScheduleIterations:
    """A named schedule resolved to iterations.

    Attributes:
        max_iter: total number of iterations.
        milestones: iterations after which the lr is multiplied by ``gamma`` (sorted).
        gamma: decay factor per milestone.
    """

    max_iter: int
    milestones: tuple[int, ...]
    gamma: float


def schedule_iterations(spec: dict[str, Any], iters_per_epoch: int) -> ScheduleIterations:
    """Resolve a schedule block ``{unit, length, steps, gamma}`` to iterations.

    With ``unit: epoch`` a step ``s`` happens after ``s * iters_per_epoch`` iterations
    (the paper's "÷10 after epochs 8 and 11" of 12).
    """
    unit = spec.get("unit")
    if unit not in SCHEDULE_UNITS:
        raise ValueError(f"schedule unit must be one of {SCHEDULE_UNITS}, got {unit!r}")
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
    per_unit = iters_per_epoch if unit == "epoch" else 1
    length = spec["length"]
    steps = list(spec.get("steps", []))
    if length <= 0:
        raise ValueError(f"schedule length must be > 0, got {length}")
    if steps != sorted(steps) or any(not 0 < s <= length for s in steps):
        raise ValueError(f"schedule steps must be increasing and within (0, {length}], got {steps}")
    return ScheduleIterations(max_iter=int(round(length * per_unit)),
                              milestones=tuple(int(round(s * per_unit)) for s in steps),
                              gamma=float(spec.get("gamma", 0.1)))


def lr_factor(iteration: int, *, warmup_iters: int, warmup_factor: float,
              milestones: Sequence[int], gamma: float) -> float:
    """Multiplier of the base lr for the update that follows ``iteration`` finished ones."""
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    factor = gamma ** bisect.bisect_right(list(milestones), iteration)
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        factor *= warmup_factor * (1.0 - alpha) + alpha
    return factor


class WarmupMultiStepLR(LRScheduler):
    """Per-iteration scheduler (call ``step()`` after every optimizer step).

    Args:
        optimizer: its param groups' ``initial_lr`` are the base learning rates.
        milestones: iterations after which the lr is multiplied by ``gamma``.
        gamma: decay per milestone.
        warmup_iters: length of the linear warm-up (0: none).
        warmup_factor: lr multiplier of the first iteration.
    """

    def __init__(self, optimizer: Optimizer, *, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_iters: int = 0, warmup_factor: float = 1e-3, last_epoch: int = -1):
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}")
        if warmup_iters < 0 or not 0.0 < warmup_factor <= 1.0:
            raise ValueError(f"need warmup_iters >= 0 and 0 < warmup_factor <= 1, got "
                             f"{warmup_iters}, {warmup_factor}")
        self.milestones = tuple(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.warmup_iters = int(warmup_iters)
        self.warmup_factor = float(warmup_factor)
        super().__init__(optimizer, last_epoch)

    def factor(self, iteration: int) -> float:
        return lr_factor(iteration, warmup_iters=self.warmup_iters,
                         warmup_factor=self.warmup_factor, milestones=self.milestones,
                         gamma=self.gamma)

    def get_lr(self) -> list[float]:
        # ``last_epoch`` counts the scheduler steps, i.e. finished iterations.
        factor = self.factor(self.last_epoch)
        return [base_lr * factor for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()
