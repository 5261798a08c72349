"""`lla train`: train one experiment of params.yaml, in one process or under torchrun (DDP).

    lla train --experiment NAME [--profile P] [--out-dir DIR] [--resume auto|never|PATH]
    torchrun --nproc_per_node=8 -m lla.cli train --experiment NAME --profile paper

The loop follows torchvision's detection references: one process per device, DDP from
RANK/LOCAL_RANK/WORLD_SIZE, rank 0 saves and logs, a non-finite loss aborts the run.

* Batch: ``images_per_device`` per process, global batch = that × world size. The lr
  is ``base_lr × global_batch / reference_batch`` with ``lr_scaling: linear`` (the paper:
  0.01 for 2 × 8 = 16 images), ``base_lr`` with ``lr_scaling: none``.
* Schedule: linear warm-up, then ÷``gamma`` at the milestones of the named schedule,
  stepped per iteration (:mod:`lla.engine.schedule`).
* Each iteration does ONE all-reduce of a small vector: the loss terms (averaged over
  ranks, for the log and the finite check) and the stop flag, so every rank takes the
  same decision. (The loss normaliser is all-reduced inside the loss, once per batch.)
* Checkpoints every ``checkpoint_every`` iterations, at ``keep_checkpoints`` and at the end
  (:mod:`lla.engine.checkpoint`); ``--resume auto`` continues from the newest one. On the
  CPU a resumed run ends with weights bit-identical to an uninterrupted one.
* SIGTERM / SIGUSR1: finish the current step, save, write ``<out-dir>/preempted.json`` and exit
  with :data:`~lla.engine.signals.EXIT_REQUEUE` (75).
* A NaN/inf loss term: save the state before that step (unless already saved), print
  which term at which iteration, exit 1. The bad step's weights are never saved.
* Output: ``<out-dir>/model_final.pt`` (weights + the resolved experiment),
  ``<out-dir>/dvclive/``;
  with ``--infer-out`` also the final model's detections, written by
  :func:`lla.engine.infer.infer` in the same process group (no second process start).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from lla import layout
from lla.config import load_params, selected_profile
from lla.data.dataset import Batch, CrowdDataset, PadCollate
from lla.data.sampler import GroupedBatchSampler, aspect_ratio_groups
from lla.diverged import write_diverged_detections
from lla.engine import checkpoint as ckpt
from lla.engine.distributed import (DistInfo, all_gather_objects, all_reduce_sum, barrier,
                                    cleanup_distributed, setup_distributed)
from lla.engine.experiment import Experiment, resolve_experiment
from lla.engine.infer import infer
from lla.engine.model import Amp, build_model, model_inputs
from lla.engine.optim import build_optimizer
from lla.engine.progress import TrainingLog
from lla.engine.schedule import ScheduleIterations, WarmupMultiStepLR, schedule_iterations
from lla.engine.signals import EXIT_REQUEUE, StopRequest
from lla.errors import DataError
from lla.io import atomic_write_json

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
PREEMPTED_MARKER = "preempted.json"
LR_SCALING_RULES = ("linear", "none")


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite (the message names the iteration and the term).

    ``iteration``: the iteration whose loss was not finite; ``terms``: the loss terms."""

    def __init__(self, message: str, *, iteration: int, terms: list[str]):
        super().__init__(message)
        self.iteration = iteration
        self.terms = terms


# ---------------------------------------------------------------------------- helpers

def scaled_lr(train_cfg: dict[str, Any], global_batch: int) -> float:
    """The lr of ``train_cfg`` for ``global_batch`` images per iteration (module doc)."""
    rule = train_cfg.get("lr_scaling", "linear")
    if rule not in LR_SCALING_RULES:
        raise ValueError(f"train.lr_scaling must be one of {LR_SCALING_RULES}, got {rule!r}")
    base_lr = float(train_cfg["base_lr"])
    if rule == "none":
        return base_lr
    return base_lr * global_batch / float(train_cfg["reference_batch"])


def named_schedule(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """``train.schedule``: a name of ``train.schedules`` or an inline block."""
    schedule = train_cfg["schedule"]
    if isinstance(schedule, dict):
        return schedule
    schedules = train_cfg.get("schedules") or {}
    if schedule not in schedules:
        raise ValueError(f"train.schedule {schedule!r} is not in train.schedules "
                         f"({', '.join(schedules) or 'none defined'})")
    return schedules[schedule]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- one step

class TrainingStep:
    """Model, optimizer, lr scheduler and AMP of one process, and the three parts of a step.

    Args:
        exp: the resolved experiment (model, ``train.optimizer``, warm-up, AMP settings).
        info: rank, world size and device.
        lr: the (already scaled) learning rate after warm-up.
        schedule: milestones and gamma, in iterations.
    """

    def __init__(self, exp: Experiment, info: DistInfo, *, lr: float, schedule: ScheduleIterations):
        cfg = exp.train
        self.info = info
        self.model = build_model(exp).to(info.device)
        self.ddp_model: torch.nn.Module = self.model
        self.optimizer = build_optimizer(self.model, cfg["optimizer"], lr)
        warmup = cfg.get("warmup") or {}
        self.scheduler = WarmupMultiStepLR(
            self.optimizer, milestones=schedule.milestones, gamma=schedule.gamma,
            warmup_iters=int(warmup.get("iterations", 0)),
            warmup_factor=float(warmup.get("factor", 1.0)))
        self.amp = Amp.from_train_settings(cfg, info.device)
        self.scaler = self.amp.grad_scaler(info.device)

    def wrap_ddp(self) -> None:
        """Wrap the model in DistributedDataParallel when there are several ranks."""
        if self.info.distributed and self.ddp_model is self.model:
            device_ids = [self.info.device.index] if self.info.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=device_ids)

    def forward(self, batch: Batch) -> tuple[dict[str, torch.Tensor], float]:
        """Losses of one batch (this rank's, not reduced) and the lr this step uses."""
        images, targets = model_inputs(batch, self.info.device)
        with self.amp.autocast(self.info.device):
            losses = self.ddp_model(images, targets)
        return losses, float(self.optimizer.param_groups[0]["lr"])

    def reduce(self, losses: dict[str, torch.Tensor], stop: bool) -> tuple[dict[str, float], bool]:
        """Loss terms averaged over ranks, and whether any rank asked to stop (one all-reduce)."""
        device = self.info.device
        packed = torch.stack([v.detach().float() for v in losses.values()]
                             + [torch.tensor(float(stop), device=device)])
        packed = all_reduce_sum(packed, self.info).cpu()
        values = (packed[:-1] / self.info.world_size).tolist()
        return dict(zip(losses, values)), bool(packed[-1] > 0)

    def backward_and_update(self, losses: dict[str, torch.Tensor]) -> None:
        """Backward of the summed losses (DDP averages the gradients), optimizer and lr step."""
        total = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


# ---------------------------------------------------------------------------- trainer

class Trainer:
    """Everything one training process holds: model, data, optimizer, schedule, state.

    Args:
        exp: the resolved experiment.
        train_json: the converted json of the training split.
        out_dir: the run directory (checkpoints, dvclive, model_final.pt).
        info: this process's rank, world size and device.
        progress_bar: None: a bar when stderr is a terminal.
    """

    def __init__(self, exp: Experiment, train_json: str | Path, out_dir: str | Path,
                 info: DistInfo, progress_bar: bool | None = None):
        cfg = exp.train
        self.exp, self.info, self.out_dir = exp, info, Path(out_dir)
        self.progress_bar = progress_bar
        seed_everything(exp.seed)

        self.dataset = CrowdDataset.from_config(train_json, exp.input, train=True, seed=exp.seed,
                                                cache_images=bool(cfg.get("cache_images", False)))
        if len(self.dataset) == 0:
            raise DataError(train_json, "no training images")
        groups = aspect_ratio_groups(self.dataset.aspect_ratios(), exp.input["aspect_ratio_bins"])
        self.images_per_device = int(cfg["images_per_device"])
        self.sampler = GroupedBatchSampler(groups, self.images_per_device, seed=exp.seed,
                                           shuffle=True, drop_last=False, rank=info.rank,
                                           world_size=info.world_size)
        self.loader = DataLoader(
            self.dataset, batch_sampler=self.sampler,
            collate_fn=PadCollate(int(exp.model["input"]["size_divisibility"])),
            num_workers=int(cfg["num_workers"]), pin_memory=info.device.type == "cuda",
            persistent_workers=False,
            # its own generator: creating a loader iterator then draws no number from the
            # global torch RNG, whose stream thus stays the same across a resume
            generator=torch.Generator().manual_seed(exp.seed))

        schedule = schedule_iterations(named_schedule(cfg), len(self.sampler))
        self.max_iter = schedule.max_iter
        self.global_batch = self.images_per_device * info.world_size
        self.lr = scaled_lr(cfg, self.global_batch)
        self.step = TrainingStep(exp, info, lr=self.lr, schedule=schedule)
        self.model = self.step.model

        self.checkpoint_every = int(cfg["checkpoint_every"])
        self.keep_iterations = sorted(int(i) for i in cfg.get("keep_checkpoints") or [])
        self.keep_last = int(cfg.get("keep_last", 2))
        self.iteration = 0
        self.last_saved = -1

    # ------------------------------------------------------------------ state

    def state_dict(self, consumed: int) -> dict[str, Any]:
        """The checkpoint of the current state; ``consumed``: batches of this pass trained on.

        Collective under DDP (gathers every rank's RNG state).
        """
        rng_states = all_gather_objects(ckpt.rng_state(), self.info)
        return {
            "format": ckpt.CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            **self.step.state_dict(),
            "sampler": self.sampler.state_dict(consumed=consumed),
            "rng": rng_states,
            "world_size": self.info.world_size,
            "config": self.exp.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        saved = state["config"]
        if saved.get("model") != self.exp.model:
            raise DataError(path, f"checkpoint of a different model (experiment "
                                  f"'{saved.get('name')}', variant '{saved.get('variant')}'); "
                                  f"use another --out-dir or --resume never")
        differing = sorted(k for k in set(saved.get("train", {})) | set(self.exp.train)
                           if saved.get("train", {}).get(k) != self.exp.train.get(k))
        if differing and self.info.is_main:
            logger.warning("resuming %s with changed train settings: %s", path, ", ".join(differing))
        if state["world_size"] != self.info.world_size:
            raise DataError(path, f"saved by {state['world_size']} processes, resumed by "
                                  f"{self.info.world_size}: the sampler order depends on the "
                                  f"world size; resume with the same number of processes")
        self.step.load_state_dict(state)
        try:
            self.sampler.load_state_dict(state["sampler"])
        except ValueError as e:
            raise DataError(path, f"cannot resume the data order: {e}") from None
        ckpt.set_rng_state(state["rng"][self.info.rank])
        self.iteration = self.last_saved = int(state["iteration"])

    def save(self, consumed: int) -> Path:
        """Save the current state as the checkpoint of ``self.iteration`` (rank 0 writes)."""
        state = self.state_dict(consumed)
        path = ckpt.checkpoint_path(self.out_dir, self.iteration)
        if self.info.is_main:
            ckpt.save_checkpoint(path, state)
            ckpt.prune_checkpoints(self.out_dir, keep_last=self.keep_last,
                                   keep_iterations=self.keep_iterations)
        barrier(self.info)
        self.last_saved = self.iteration
        return path

    def checkpoint_due(self) -> bool:
        it = self.iteration
        return it % self.checkpoint_every == 0 or it in self.keep_iterations or it == self.max_iter

    def save_final_model(self, diverged: dict[str, Any] | None = None) -> Path:
        """``model_final.pt``: the current weights and the experiment; with ``diverged``
        (``{iteration, terms}``, :mod:`lla.diverged`) also the record of a run that stopped on
        a non-finite loss (its weights are then the last good ones: the bad step was never
        applied)."""
        path = self.out_dir / ckpt.FINAL_MODEL
        if self.info.is_main:
            state = {"format": ckpt.CHECKPOINT_FORMAT, "iteration": self.iteration,
                     "model": self.model.state_dict(), "config": self.exp.to_dict()}
            if diverged is not None:
                state["diverged"] = diverged
            ckpt.save_checkpoint(path, state)
        barrier(self.info)
        return path

    # ------------------------------------------------------------------ the loop

    def fit(self, *, stop_after: int | None = None, stop_request: StopRequest | None = None) -> int:
        """Train from ``self.iteration`` to the end of the schedule; returns the exit code.

        Args:
            stop_after: stop (with a checkpoint, exit 0) once this many iterations are done.
            stop_request: the signal handlers' record (installed around the whole run so a
                signal during set-up counts too); None installs them here.
        """
        if stop_request is None:
            with StopRequest() as stop_request:
                return self.fit(stop_after=stop_after, stop_request=stop_request)
        info = self.info
        if stop_after is not None and stop_after <= self.iteration:
            if info.is_main:
                logger.info("already at iteration %d >= --stop-after %d", self.iteration,
                            stop_after)
            return EXIT_OK
        if self.iteration >= self.max_iter:
            if info.is_main:
                logger.info("already trained %d/%d iterations", self.iteration, self.max_iter)
            self.save_final_model()
            return EXIT_OK
        self.step.wrap_ddp()
        self.model.train()
        log = TrainingLog(self.out_dir, start_iter=self.iteration, max_iter=self.max_iter,
                          print_every=int(self.exp.train["print_every"]),
                          summary_every=int(self.exp.train["print_every"]),
                          enabled=info.is_main, progress_bar=self.progress_bar)
        log.info("training %s (%s, profile %s): iterations %d -> %d, %d x %d images per "
                 "iteration, lr %.4g, %s", self.exp.name, self.exp.variant, self.exp.profile,
                 self.iteration, self.max_iter, self.images_per_device, info.world_size, self.lr,
                 info.device)
        try:
            stop_reason = self.run_loop(log, stop_request, stop_after)
        finally:
            log.close()
        signal_name = stop_request.signal_name

        if stop_reason == "done":
            path = self.save_final_model()
            if info.is_main:
                (self.out_dir / PREEMPTED_MARKER).unlink(missing_ok=True)
                logger.info("finished %d iterations: %s", self.iteration, path)
            return EXIT_OK
        if stop_reason == "signal":
            if info.is_main:
                atomic_write_json(self.out_dir / PREEMPTED_MARKER,
                                  {"iteration": self.iteration, "signal": signal_name or "peer",
                                   "checkpoint": str(ckpt.checkpoint_path(self.out_dir,
                                                                          self.iteration))},
                                  indent=1)
                logger.warning("stopped by %s after iteration %d; checkpoint saved, exiting with "
                               "%d (requeue)", signal_name or "a signal on another rank",
                               self.iteration, EXIT_REQUEUE)
            return EXIT_REQUEUE
        if info.is_main:
            logger.info("stopped after iteration %d as asked (--stop-after); resume to continue",
                        self.iteration)
        return EXIT_OK

    def run_loop(self, log: TrainingLog, stop_request: StopRequest, stop_after: int | None) -> str:
        """Iterate until the schedule ends ("done"), a rank got a signal ("signal") or
        ``stop_after`` is reached ("stop_after"); the last state is saved in each case."""
        while True:
            self.dataset.set_epoch(self.sampler.epoch)
            consumed = 0  # batches of this pass over the sampler trained on
            for batch in self.loader:
                losses, lr = self.step.forward(batch)
                values, stop_now = self.step.reduce(losses, stop_request.requested)
                bad = [name for name, value in values.items() if not math.isfinite(value)]
                if bad:
                    self.abort_non_finite(bad, values, consumed)
                self.step.backward_and_update(losses)
                self.iteration += 1
                consumed += 1
                log.log(self.iteration, values, lr)
                stop_reason = None
                if self.iteration >= self.max_iter:
                    stop_reason = "done"
                elif stop_now:
                    stop_reason = "signal"
                elif stop_after is not None and self.iteration >= stop_after:
                    stop_reason = "stop_after"
                if stop_reason is not None or self.checkpoint_due():
                    log.info("saved %s", self.save(consumed))
                if stop_reason is not None:
                    return stop_reason

    def abort_non_finite(self, bad: list[str], values: dict[str, float], consumed: int) -> None:
        """Save the (still good) state before this step unless saved already, then raise."""
        if self.last_saved != self.iteration:
            self.save(consumed)
        path = ckpt.checkpoint_path(self.out_dir, self.iteration)
        terms = ", ".join(f"{name} = {value:.6g}" for name, value in values.items())
        raise NonFiniteLossError(
            f"non-finite loss at iteration {self.iteration + 1}: {', '.join(bad)} ({terms}); "
            f"the last good state (after iteration {self.iteration}) is {path}",
            iteration=self.iteration + 1, terms=list(bad))


# ---------------------------------------------------------------------------- CLI

#: train settings that change no computed value: a checkpoint saved under other values of
#: these is resumed as it is (with a warning); any other difference starts afresh.
BOOKKEEPING_TRAIN_KEYS = frozenset({"checkpoint_every", "keep_last", "keep_checkpoints",
                                    "print_every", "num_workers", "infer_images_per_device",
                                    "cache_images"})


def result_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved experiment (``Experiment.to_dict()``) that decides the weights."""
    train = {k: v for k, v in (config.get("train") or {}).items() if k not in BOOKKEEPING_TRAIN_KEYS}
    return {"model": config.get("model"), "dataset": config.get("dataset"),
            "input": config.get("input"), "seed": config.get("seed"), "train": train}


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the result-deciding settings that differ (``model``, ``train.base_lr``, ...)."""
    old, new = result_settings(saved), result_settings(current)
    changed = [key for key in ("model", "dataset", "input", "seed") if old[key] != new[key]]
    changed += [f"train.{key}" for key in sorted(set(old["train"]) | set(new["train"]))
                if old["train"].get(key) != new["train"].get(key)]
    return changed


def supersede_stale_checkpoints(out_dir: Path, start: Path, exp: Experiment,
                                info: DistInfo) -> Path | None:
    """``--resume auto`` after the experiment's settings changed: start afresh.

    The pipeline reruns a training job when its experiment's parameters change; resuming
    the old run would silently mix two configurations. Its checkpoints are moved to
    ``checkpoints.superseded/`` (replacing an older such folder), never deleted.
    Returns ``start`` when the settings are unchanged, else None.
    """
    changed = changed_settings(ckpt.load_checkpoint(start)["config"], exp.to_dict())
    if not changed:
        return start
    if info.is_main:
        logger.warning("the settings changed since %s (%s): starting afresh; the old checkpoints "
                       "are kept in %s", start, ", ".join(changed),
                       out_dir / f"{ckpt.CHECKPOINT_DIR}.superseded")
        superseded = out_dir / f"{ckpt.CHECKPOINT_DIR}.superseded"
        if superseded.exists():
            shutil.rmtree(superseded)
        (out_dir / ckpt.CHECKPOINT_DIR).rename(superseded)
    barrier(info)
    return None


def resume_checkpoint(out_dir: Path, resume: str) -> Path | None:
    """The checkpoint to start from: ``auto`` the newest in ``out_dir`` (None: from scratch),
    ``never`` none (refused when ``out_dir`` already has checkpoints), else the given path."""
    if resume == "auto":
        return ckpt.latest_checkpoint(out_dir)
    if resume == "never":
        existing = ckpt.list_checkpoints(out_dir)
        if existing:
            raise DataError(existing[-1][1], "--resume never, but the output directory holds "
                                             "checkpoints of an earlier run; resume it "
                                             "(--resume auto) or choose another --out-dir")
        return None
    return Path(resume)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    profile = selected_profile(params, args.profile)
    exp = resolve_experiment(params, args.experiment, profile)
    out_dir = args.out_dir or layout.run_dir(profile, exp.name)
    if args.stop_after is not None and args.stop_after < 1:
        raise DataError(args.params, f"--stop-after must be >= 1, got {args.stop_after}")
    info = setup_distributed(args.device)
    try:
        with StopRequest() as stop_request:
            try:
                train_json = args.data or exp.split_json(params, "train")
                trainer = Trainer(exp, train_json, out_dir, info)
            except ValueError as e:  # a bad schedule, optimizer, lr rule, AMP dtype, ...
                if isinstance(e, DataError):
                    raise
                raise DataError(args.params, f"invalid training settings: {e}",
                                record=f"train.{profile} / experiments.{exp.name}") from e
            start = resume_checkpoint(Path(out_dir), args.resume)
            if start is not None and args.resume == "auto":
                start = supersede_stale_checkpoints(Path(out_dir), start, exp, info)
            if start is not None:
                trainer.load_state_dict(ckpt.load_checkpoint(start), start)
                if info.is_main:
                    logger.info("resuming from %s (iteration %d)", start, trainer.iteration)
            code = trainer.fit(stop_after=args.stop_after, stop_request=stop_request)
        if code == EXIT_OK and args.infer_out is not None and trainer.iteration >= trainer.max_iter:
            # the final model's detections in this process group (every rank takes part)
            infer(Path(out_dir) / ckpt.FINAL_MODEL, args.infer_out, info=info,
                  split=args.infer_split, profile=profile, data=args.infer_data,
                  params=args.params)
        return code
    except NonFiniteLossError as e:
        if info.is_main:
            print(f"error: {e}", file=sys.stderr)
        if args.on_diverge == "fail":
            return EXIT_FAILED
        record = {"iteration": e.iteration, "terms": e.terms}
        path = trainer.save_final_model(diverged=record)
        if info.is_main:
            if args.infer_out is not None:
                write_diverged_detections(args.infer_out, record)
            logger.warning("recorded the divergence (--on-diverge record): %s%s", path,
                           f", {args.infer_out}" if args.infer_out is not None else "")
        return EXIT_OK
    finally:
        cleanup_distributed()
