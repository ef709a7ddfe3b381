"""DRIVE (Saikumar & Varghese 2024; docs/drive.md): a short dense warm-up, then the dual-gradient
score applied over many small pruning steps, one fresh mini-batch per step, without resetting weights."""

from __future__ import annotations

from typing import Any

from drive_runner.errors import ConfigError
from drive_runner.pruning.methods import PruningContext, ScoredPruning, register_method
from drive_runner.pruning.sampling import Batch
from drive_runner.train.loop import StepSnapshot


@register_method
class DrivePruning(ScoredPruning):
    name = "drive"
    default_schedule = "exponential"
    _snapshot: StepSnapshot | None = None
    _saved_snapshot: dict | None = None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "snapshot": self._snapshot.state_dict() if self._snapshot else None}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._saved_snapshot = state["snapshot"]

    def check_config(self, cfg) -> None:
        if not any(self.cfg[term] > 0 for term in ("alpha", "beta", "gamma")):
            raise ConfigError("method.alpha", "with method.alpha, method.beta and method.gamma all 0 the score ranks "
                                              "nothing; give at least one term a positive weight")
        if self.cfg.after_prune == "rewind_step" and self.cfg.rewind_step > 0 and self.warmup_epochs == 0:
            raise ConfigError("method.rewind_step", "rewinding to a warm-up step needs method.warmup_epochs >= 1")

    def scoring_batches(self, ctx: PruningContext) -> list[Batch]:
        return ctx.next_batches(int(self.cfg.batches_per_iter))

    def scorer_options(self) -> dict[str, Any]:
        keys = ("alpha", "beta", "gamma", "normalization", "combine", "convergence_term", "bn_mode")
        return {key: self.cfg[key] for key in keys}

    def warmup_callbacks(self, ctx: PruningContext) -> list:
        self._snapshot = None
        if self.cfg.after_prune == "rewind_step" and self.cfg.rewind_step > 0:
            self._snapshot = StepSnapshot(int(self.cfg.rewind_step))
            if self._saved_snapshot:
                self._snapshot.load_state_dict(self._saved_snapshot)
            return [self._snapshot]
        return []

    def find_mask(self, ctx: PruningContext) -> None:
        self._rewound_to = None
        super().find_mask(ctx)
        if self.cfg.after_prune == "continue":
            return
        # Ablations: the found mask on earlier weights; the epoch budget and LR schedule carry on.
        state = ctx.initial_state
        if self.cfg.after_prune == "rewind_step" and self.cfg.rewind_step > 0:
            state = self._snapshot.state
            if state is None:
                raise ConfigError(
                    "method.rewind_step",
                    f"step {self.cfg.rewind_step} is beyond the warm-up ({ctx.session.step} steps)",
                )
        self._rewound_to = state
        ctx.session.rewind(state, ctx.session.step)

    def weights_under_mask(self, before_pruning: dict) -> dict:
        return before_pruning if self._rewound_to is None else self._rewound_to
