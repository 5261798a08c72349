"""Training log of rank 0: DVCLive metrics every iteration, a progress bar or plain lines.

DVCLive writes ``<out>/dvclive/plots/metrics/train/<name>.tsv`` (columns ``step`` and the
value; ``step`` = finished iterations), ``<out>/dvclive/metrics.json`` (the latest values)
and ``<out>/dvclive/dvc.yaml`` declaring the plots, so ``dvc plots show
<out>/dvclive/dvc.yaml`` (or a pipeline stage listing the tsv files) draws the curves.

The logger never opens the DVC or git repository it runs in: no experiment is saved,
no ``dvc init`` happens in a git repository without DVC (what ``dvclive.Live`` does by
default), and nothing is posted to DVC Studio. A resumed run drops the rows logged
after its checkpoint, so the curves have one value per iteration.

On a terminal a tqdm bar shows the iteration, the loss, the lr and the ETA; in a batch
log (stderr not a terminal) a plain line is written every ``print_every`` iterations.
"""

from __future__ import annotations

import csv
import datetime
import logging
import os
import sys
import time
from pathlib import Path

from lla.io import atomic_write_text

logger = logging.getLogger("lla.engine.train")

DVCLIVE_DIR = "dvclive"
METRIC_PREFIX = "train/"


def _local_live_class():
    from dvclive import Live

    class LocalLive(Live):
        """``dvclive.Live`` that leaves the surrounding DVC/git repository alone.

        ``Live.__init__`` locates (and, in a git repository without DVC, initialises) the
        DVC repository, reads git for an experiment name and may post to DVC Studio.
        Metrics files are all this project needs, so those two steps are skipped.
        """

        def _init_dvc(self):
            self._dvc_file = self._init_dvc_file()

        def _init_studio(self):
            self._dvc_studio_config = {}
            self._studio_events_to_skip.update({"start", "data", "done"})

    return LocalLive


def truncate_metric_history(plots_dir: str | Path, last_step: int) -> int:
    """Drop rows with ``step > last_step`` from every DVCLive ``.tsv`` under ``plots_dir``.

    Returns the number of rows dropped. Files are rewritten atomically.
    """
    dropped = 0
    for path in sorted(Path(plots_dir).rglob("*.tsv")):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
            fieldnames = list(rows[0]) if rows else None
        if fieldnames is None or "step" not in fieldnames:
            continue
        kept = [row for row in rows if int(row["step"]) <= last_step]
        if len(kept) == len(rows):
            continue
        dropped += len(rows) - len(kept)
        lines = ["\t".join(fieldnames)] + ["\t".join(row[k] for k in fieldnames) for row in kept]
        atomic_write_text(path, os.linesep.join(lines) + os.linesep)
    return dropped


def format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(max(seconds, 0.0)))))


class TrainingLog:
    """Per-iteration log (a no-op object on ranks other than 0).

    Args:
        out_dir: the run directory (DVCLive writes to ``out_dir/dvclive``).
        start_iter: iterations finished before this process started (resume point).
        max_iter: iterations of the whole schedule.
        print_every: plain-line interval in iterations (batch logs).
        summary_every: how often DVCLive's ``metrics.json`` is rewritten.
        enabled: False on ranks other than 0.
        progress_bar: None: a bar when stderr is a terminal.
    """

    def __init__(self, out_dir: str | Path, *, start_iter: int, max_iter: int, print_every: int,
                 summary_every: int, enabled: bool = True, progress_bar: bool | None = None):
        self.enabled = enabled
        self.start_iter = start_iter
        self.max_iter = max_iter
        self.print_every = max(int(print_every), 1)
        self.summary_every = max(int(summary_every), 1)
        self._start_time = time.perf_counter()
        self._bar = None
        self._live = None
        if not enabled:
            return
        live_dir = Path(out_dir) / DVCLIVE_DIR
        resume = start_iter > 0
        if resume and (live_dir / "plots").is_dir():
            truncate_metric_history(live_dir / "plots", start_iter)
        live_class = _local_live_class()
        self._live = live_class(dir=str(live_dir), resume=resume, save_dvc_exp=False,
                                dvcyaml=str(live_dir / "dvc.yaml"), report=None)
        if progress_bar is None:
            progress_bar = sys.stderr.isatty()
        if progress_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=max_iter, initial=start_iter, unit="it", dynamic_ncols=True,
                             desc="train")

    def log(self, iteration: int, losses: dict[str, float], lr: float) -> None:
        """Record the losses (already averaged over ranks) and the lr of ``iteration``."""
        if not self.enabled:
            return
        total = sum(losses.values())
        live = self._live
        live.step = iteration
        live.log_metric(METRIC_PREFIX + "loss", total)
        for name, value in losses.items():
            live.log_metric(METRIC_PREFIX + name, value)
        live.log_metric(METRIC_PREFIX + "lr", lr)
        if iteration % self.summary_every == 0:
            live.make_summary()
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{total:.4f}", lr=f"{lr:.3g}", refresh=False)
            self._bar.update(iteration - self._bar.n)
        elif iteration % self.print_every == 0 or iteration == self.max_iter:
            elapsed = time.perf_counter() - self._start_time
            per_iter = elapsed / max(iteration - self.start_iter, 1)
            terms = " ".join(f"{name.removeprefix('loss_')} {value:.4f}"
                             for name, value in losses.items())
            logger.info("iter %d/%d  loss %.4f (%s)  lr %.3g  %.3f s/it  eta %s", iteration,
                        self.max_iter, total, terms, lr, per_iter,
                        format_duration(per_iter * (self.max_iter - iteration)))

    def info(self, message: str, *args) -> None:
        """A message that does not break the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message % args if args else message, file=sys.stderr)
        else:
            logger.info(message, *args)

    def close(self) -> None:
        if self._live is not None:
            self._live.make_summary()
            self._live.make_dvcyaml()
            self._live = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None
