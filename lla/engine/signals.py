"""Pre-emption: SIGTERM / SIGUSR1 ask the training loop to stop after the current step.

Slurm sends SIGTERM when it pre-empts or cancels a job (and, with ``--signal=USR1@T``,
SIGUSR1 ``T`` seconds before the time limit). The handler only records the signal; the
loop finishes its step, saves a checkpoint and exits with :data:`EXIT_REQUEUE`, the
code the workflow requeues on.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

# sysexits.h EX_TEMPFAIL: "temporary failure, the user is invited to retry".
EXIT_REQUEUE = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Context manager installing handlers that record a stop request.

    ``signal_name`` is None until one of ``signals`` arrives, then its name (e.g.
    "SIGTERM"). The previous handlers are restored on exit. Outside the main thread
    (where Python cannot install handlers) it records nothing.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS):
        self.signals = signals
        self.signal_name: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
