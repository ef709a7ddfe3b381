"""Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020; docs/magnitude-during-training.md).

Level 0 trains the dense network with the full recipe; every later level removes a fraction of the
surviving weights by trained magnitude, rewinds the complete state (weights, biases, BN parameters and
statistics) to step k, and retrains with a fresh optimizer, the LR schedule and data order resuming at k.

`method.control=reinit` (or `shuffle`) adds the Lottery Ticket paper's control: every level's mask is also
trained from a fresh initialisation (or as a layer-wise shuffled mask on the rewound weights), and its
accuracy is logged beside the ticket's (`imp_control` events); the ticket itself carries on unchanged.
"""

from __future__ import annotations

from drive_runner.errors import ConfigError
from drive_runner.pruning.ablation import ablate
from drive_runner.pruning.masks import MaskEngine, keep_count
from drive_runner.pruning.methods import PruningContext, PruningMethod, register_method
from drive_runner.pruning.schedules import imp_survivors
from drive_runner.train.loop import StepSnapshot

OUTPUT_LAYER_KEPT_DENSE = ("lenet", "vgg")  # open_lth presets; CIFAR ResNets prune their classifier


@register_method
class IterativeMagnitudePruning(PruningMethod):
    name = "imp"
    schedules = ("imp_levels",)
    default_schedule = "imp_levels"
    needs_session = True
    step_name = "level"

    def check_config(self, cfg) -> None:
        if int(cfg.trainer.epochs) == 0:
            raise ConfigError("trainer.epochs", "imp trains every level for trainer.epochs, so 0 finds no mask; "
                                                "give it epochs, or use method=magnitude to prune at initialisation")
        if self.warmup_epochs:
            raise ConfigError("method.warmup_epochs", "imp trains from initialisation in every level; use 0")
        if cfg.prune.scope != "global":
            raise ConfigError("prune.scope", "imp ranks all prunable weights together (open_lth); use global")
        if self.cfg.control != "none" and cfg.prune.ablation != "none":
            raise ConfigError("method.control", "a per-level control and prune.ablation together measure nothing "
                                                "clear; use one of them")

    def target_density(self, requested_density: float) -> float:
        return requested_density

    def excluded_tensors(self, model, model_name: str) -> list[str]:
        prune_output = self.cfg.prune_output_layer
        if prune_output is None:
            prune_output = not model_name.startswith(OUTPUT_LAYER_KEPT_DENSE)
        return [] if prune_output else [f"{model.classifier_name}.weight"]

    def level_survivors(self, engine: MaskEngine, density: float) -> list[int]:
        return imp_survivors(
            engine.total(), keep_count(engine.total(), density), float(self.schedule.fraction),
            bool(self.schedule.exact_target),
        )

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        levels = self.level_survivors(engine, density)
        return levels[-1] if levels else engine.total()

    def __init__(self, cfg, schedule_cfg):
        super().__init__(cfg, schedule_cfg)
        # Where find_mask is: the level and its stage (train -> prune -> control), whether the stage's
        # entry (rewinding, or installing the control's mask) is done, and what later stages need.
        self._position = {"level": 0, "stage": "train", "entered": False}
        self._rewind_state: dict | None = None
        self._ticket: dict | None = None  # the ticket's mask while a control trains
        self._snapshot: StepSnapshot | None = None

    def state_dict(self) -> dict:
        return {"position": dict(self._position), "rewind_state": self._rewind_state, "ticket": self._ticket,
                "snapshot": self._snapshot.state_dict() if self._snapshot else None}

    def load_state_dict(self, state: dict) -> None:
        self._position = dict(state["position"])
        self._rewind_state, self._ticket = state["rewind_state"], state["ticket"]
        if state["snapshot"] is not None:
            self._snapshot = StepSnapshot(int(self.cfg.rewind_step))
            self._snapshot.load_state_dict(state["snapshot"])

    def _move_to(self, level: int, stage: str, entered: bool = False) -> None:
        self._position = {"level": level, "stage": stage, "entered": entered}

    def find_mask(self, ctx: PruningContext) -> None:
        """Every level as a sequence of stages, so a resumed run continues inside the stage it was in."""
        session, engine = ctx.session, ctx.engine
        levels = self.level_survivors(engine, ctx.target_density)
        if not levels:
            return
        rewind_step = int(self.cfg.rewind_step)
        while self._position["level"] < len(levels):
            level, stage = self._position["level"], self._position["stage"]
            if stage == "train":
                self._train_ticket(ctx, level, rewind_step)
                self._move_to(level, "prune")
            elif stage == "prune":
                engine.prune_to_count({name: p.detach().abs() for name, p in engine.params.items()}, levels[level])
                if self.cfg.control != "none":
                    self._move_to(level, "control")
                else:
                    self._move_to(level + 1, "train")
                ctx.on_step(level + 1, len(levels), engine.density())
            else:
                self._train_control(ctx, level + 1, rewind_step)
                self._move_to(level + 1, "train")
        session.rewind(self._rewind_state, rewind_step)  # the final ticket trains in the sparse-training phase

    def _train_ticket(self, ctx: PruningContext, level: int, rewind_step: int) -> None:
        """Level 0 trains the dense network, keeping the state at the rewind step; every later level
        rewinds to it and retrains under the current mask."""
        session = ctx.session
        if level == 0:
            self._snapshot = self._snapshot or StepSnapshot(rewind_step)
            session.callbacks.append(self._snapshot)
            self._train_level(ctx, 0)
            session.callbacks.remove(self._snapshot)
            self._rewind_state = ctx.initial_state if rewind_step == 0 else self._snapshot.state
            self._snapshot = None
            if self._rewind_state is None:
                raise ConfigError("method.rewind_step",
                                  f"step {rewind_step} is beyond the training run ({session.step} steps)")
            return
        if not self._position["entered"]:
            session.rewind(self._rewind_state, rewind_step)
            self._move_to(level, "train", entered=True)
        self._train_level(ctx, level)

    def weights_under_mask(self, before_pruning: dict) -> dict:
        return self._rewind_state

    def _train_control(self, ctx: PruningContext, level: int, rewind_step: int) -> None:
        """This level's mask trained as the control variant; the ticket's mask is put back afterwards."""
        if not self._position["entered"]:
            self._ticket = ctx.engine.mask_state()
            ablate(self.cfg.control, ctx, self._rewind_state, draw=level, step=rewind_step)
            self._position["entered"] = True
        history = ctx.session.train_until(int(ctx.session.cfg.epochs), f"imp-control-{level}")
        ctx.log("imp_control", level=level, control=self.cfg.control, density=ctx.engine.density(),
                test_acc=history[-1].get("test_top1") if history else None)
        ctx.engine.replace_masks(self._ticket)
        self._ticket = None

    @staticmethod
    def _train_level(ctx: PruningContext, level: int) -> None:
        history = ctx.session.train_until(int(ctx.session.cfg.epochs), f"imp-level-{level}")
        ctx.log("imp_level", level=level, density=ctx.engine.density(),
                test_acc=history[-1].get("test_top1") if history else None)
