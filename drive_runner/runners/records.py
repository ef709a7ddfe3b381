"""What a run carries from one phase to the next and saves with its training state: the time each phase
took, which phases it has entered, and how far the scorers' own stream of mini-batches has got."""

from __future__ import annotations

import contextlib
import time

import torch

from drive_runner.pruning.sampling import batch_stream


class Phases:
    """Wall-clock of named phases, in seconds."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()
        self._first_phase: float | None = None
        self._current: tuple[str, float] | None = None
        self._earlier_total = self._earlier_since_start = 0.0  # what earlier attempts measured up to their state

    @contextlib.contextmanager
    def measure(self, name: str):
        start = time.perf_counter()
        self._first_phase = self._first_phase or start
        self._current = (name, start)
        try:
            yield
        finally:
            self._current = None
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        return self._earlier_total + time.perf_counter() - self._started

    def since_start(self) -> float:
        """Seconds since the first measured phase began (the model was initialised just before)."""
        return self._earlier_since_start + (time.perf_counter() - self._first_phase if self._first_phase else 0.0)

    def state_dict(self) -> dict:
        """The time spent so far, the running phase included: a resumed run's timings count the work
        that led to its result, not the work an interruption threw away."""
        seconds = dict(self.seconds)
        if self._current:
            name, start = self._current
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        return {"seconds": seconds, "total": self.total(), "since_start": self.since_start()}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = dict(state["seconds"])
        self._earlier_total, self._earlier_since_start = state["total"], state["since_start"]


class Progress:
    """Which phases the run has entered and what it carries between them, as part of its training state."""

    def __init__(self):
        self.entered: list[str] = []
        self.mask_done = False  # the mask is found, checked, ablated if asked, reported and saved
        self.before_pruning: dict | None = None  # the weights as pruning began (what a shuffled mask sits on)
        self.mask_fixed_at: list[float] = []  # when a method that prunes while training fixed its mask
        self.position: dict = {}  # where a runner that prunes in levels is (its level and stage)

    def enter(self, phase: str) -> bool:
        """True the first time a phase is entered; False when a resumed run is already inside or past it."""
        if phase in self.entered:
            return False
        self.entered.append(phase)
        return True

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


class BatchStream:
    """Fresh mini-batches from a dedicated stream, independent of the training data order (DRIVE); its
    position is part of the training state, so a resumed run draws the batches it would have drawn."""

    def __init__(self, source, batch_size: int, seed: int):
        self._source, self._batch_size, self._seed = source, batch_size, seed
        self._stream = None
        self.drawn = 0

    def next(self, count: int):
        if self._stream is None:
            self._stream = batch_stream(self._source, self._batch_size, torch.Generator().manual_seed(self._seed + 104_729))
            for _ in range(self.drawn):  # replay the draws of earlier attempts
                next(self._stream)
        self.drawn += count
        return [next(self._stream) for _ in range(count)]

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])
