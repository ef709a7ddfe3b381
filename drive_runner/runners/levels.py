"""The runner of methods that prune in levels with rewinding (IMP; Frankle & Carbin 2019, Frankle et al. 2020).

    level 0: train the dense network, keeping the state at the rewind step
    every level: remove the method's lowest-scored survivors, [train the level's control], rewind, train
    then: the last ticket rewound, settled and trained as the sparse-training phase  ->  evaluation

Every level is a sequence of stages (train -> prune -> control), so a resumed run continues inside the stage
it was in; the rewind state, the ticket's mask while a control trains and the rewind snapshot are saved with
the training state.
"""

from __future__ import annotations

from drive_runner.errors import ConfigError
from drive_runner.pruning.ablation import Ablation, ablate
from drive_runner.runners.backprop import BackpropRunner
from drive_runner.train.loop import StepSnapshot, early_stop


class LevelsRunner(BackpropRunner):
    def __init__(self, setup, method):
        self.rewind_state: dict | None = None
        self.ticket: dict | None = None  # the ticket's mask while a control trains
        self.snapshot: StepSnapshot | None = None
        super().__init__(setup, method)
        self.progress.position = self.progress.position or {"level": 0, "stage": "train", "entered": False}

    def run(self) -> dict:
        self.warm_up()
        with self.pruning():
            if not self.progress.mask_done:
                self.train_levels()
        connectivity = self.settle_mask()
        history = self.train_rest([])
        self.check_survivors("after training")
        return self.finish(history, connectivity)

    def train_levels(self) -> None:
        engine, method = self.engine, self.method
        levels = method.level_survivors(engine, self.density)
        if not levels:
            return
        rewind_step = int(method.options.rewind_step)
        while self.position["level"] < len(levels):
            level, stage = self.position["level"], self.position["stage"]
            if stage == "train":
                self._train_ticket(level, rewind_step)
                self._move_to(level, "prune")
            elif stage == "prune":
                engine.prune_to_count(method.score(self.setup.model, engine.names), levels[level])
                self._move_to(level, "control" if method.options.control != Ablation.none else "train",
                              next_level=method.options.control == Ablation.none)
                self._pruning_step(level + 1, len(levels), engine.density())
            else:
                self._train_control(level + 1, rewind_step)
                self._move_to(level + 1, "train")
        self.session.rewind(self.rewind_state, rewind_step)  # the final ticket trains in the sparse-training phase

    @property
    def position(self) -> dict:
        return self.progress.position

    def _move_to(self, level: int, stage: str, next_level: bool = False) -> None:
        self.progress.position = {"level": level + 1 if next_level else level, "stage": stage, "entered": False}

    def _train_ticket(self, level: int, rewind_step: int) -> None:
        """Level 0 trains the dense network, keeping the state at the rewind step; every later level
        rewinds to it and retrains under the current mask."""
        session = self.session
        if level == 0:
            self.snapshot = self.snapshot or StepSnapshot(rewind_step)
            session.callbacks.append(self.snapshot)
            self._train_level(0)
            session.callbacks.remove(self.snapshot)
            self.rewind_state = self.training.initial_state if rewind_step == 0 else self.snapshot.state
            self.snapshot = None
            if self.rewind_state is None:
                raise ConfigError("method.rewind_step", f"step {rewind_step} is beyond the training run "
                                                        f"({session.step} steps)")
            return
        if not self.position["entered"]:
            session.rewind(self.rewind_state, rewind_step)
            self.position["entered"] = True
        self._train_level(level)

    def _train_control(self, level: int, rewind_step: int) -> None:
        """This level's mask trained as the control variant; the ticket's mask is put back afterwards."""
        control = self.method.options.control
        if not self.position["entered"]:
            self.ticket = self.engine.mask_state()
            ablate(control, self.training, self.rewind_state, draw=level, step=rewind_step)
            self.position["entered"] = True
        self._train_phase(f"imp-control-{level}", "imp_control", level=level, control=str(control))
        self.engine.replace_masks(self.ticket)
        self.ticket = None

    def _train_level(self, level: int) -> None:
        self._train_phase(f"imp-level-{level}", "imp_level", level=level)

    def _train_phase(self, phase: str, event: str, **fields) -> None:
        """Train one level's network for trainer.epochs and log its event: density, the last test accuracy and,
        with a validation split, the early-stopping point."""
        history = self.session.train_until(int(self.session.cfg.epochs), phase)
        self.setup.tracker.event(event, **fields, density=self.engine.density(),
                                 test_acc=history[-1].get("test_top1") if history else None,
                                 **early_stop(self.phase_records(phase, history)))

    def weights_under_mask(self) -> dict:
        return self.rewind_state

    def state_dict(self) -> dict:
        return {"rewind_state": self.rewind_state, "ticket": self.ticket,
                "snapshot": self.snapshot.state_dict() if self.snapshot else None}

    def load_state_dict(self, state: dict) -> None:
        self.rewind_state, self.ticket = state["rewind_state"], state["ticket"]
        if state["snapshot"] is not None:
            self.snapshot = StepSnapshot(int(self.method.options.rewind_step))
            self.snapshot.load_state_dict(state["snapshot"])
