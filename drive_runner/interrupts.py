"""Stopping a run cleanly on SIGINT, SIGTERM and SIGUSR2 (submitit's preemption and timeout signal).

A signal only records the request; the run acts on it at its next step boundary (an optimizer step or a
pruning step), where its state is consistent: it saves its training state and raises `Interrupted`, so
the run directory, W&B and the exit code all say "interrupted" and a relaunch continues from there.
A second Ctrl-C exits at once. A handler that was installed before ours (submitit's requeue on SIGUSR2)
is called once the run has recorded everything, so a cluster job is still requeued.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable

from drive_runner import distributed

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR2") if hasattr(signal, name))


class Interrupted(BaseException):
    """Raised at a step boundary after a stop signal; a BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int, previous_handler=None):
        self.signum = signum
        self._previous_handler = previous_handler
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    def forward(self) -> None:
        """Give the signal to the handler installed before ours, if it was a program's own (submitit's
        requeue on SIGUSR2 requeues the job and exits); Python's and the system's defaults are left out."""
        handler = self._previous_handler
        if callable(handler) and handler is not signal.default_int_handler:
            handler(self.signum, None)

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + self.signum


class StopRequests:
    """The signal handlers of one run, installed for its duration (`with StopRequests() as stop:`)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _record(self, signum: int, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            sys.stderr.write("drive-run: interrupted again; exiting now without saving\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = self.signum or signum

    def check(self, save: Callable[[], None]) -> None:
        """At a step boundary: if a stop was requested, save the state and raise Interrupted. Under data
        parallelism a request on any rank stops every rank at the same step (rank 0 saves)."""
        if distributed.any_rank(self.signum is not None):
            save()
            signum = self.signum or signal.SIGTERM  # a rank that did not get the signal stops with its peers
            raise Interrupted(signum, self._previous.get(signum))
