"""PruneTrain's dynamic mini-batch, one of the paper's "additional reconfiguration techniques"
(docs/prunetrain.md): under a memory budget, every reconfiguration that shrinks the model frees memory,
and the next interval trains with the largest batch the smaller model fits.

The batch is chosen as `trainer.batch_size=auto` chooses it (memory/budget.py): the fitted memory model of
the smaller network proposes the largest power of two within the budget and one measured step confirms
it. It never shrinks and never exceeds `method.max_batch_size` (4 x the starting batch when unset); the LR
scale follows it linearly from the run's starting batch and scale (`trainer.lr_scaling`). The session
switches from the next epoch on and keeps its optimizer state and its place on the LR schedule.
"""

from __future__ import annotations

from drive_runner.memory.accounting import MB
from drive_runner.memory.budget import grown_batch_size

GROWTH_BOUND = 4  # method.max_batch_size=null: at most this many times the starting batch


class DynamicBatch:
    def __init__(self, ctx, hardware, max_batch_size: int | None):
        session = ctx.session
        self.ctx, self.hardware = ctx, hardware
        self.start_batch, self.start_lr_scale = session.batch_size, session.lr_scale
        self.max_batch = int(max_batch_size) if max_batch_size is not None else GROWTH_BOUND * self.start_batch
        # One entry per interval: the batch and LR scale it trains with from `from_epoch` on, and the
        # modelled peak of that batch on the model of that interval (the first interval's is in `memory`).
        self.history = [{"from_epoch": session.epoch + 1, "batch_size": session.batch_size,
                         "lr_scale": session.lr_scale, "model_peak_mb": None}]

    def refit(self, session) -> None:
        """After a reconfiguration that shrank the model, at an epoch's end: the batch of the next interval."""
        ctx = self.ctx
        choice = grown_batch_size(
            ctx.model, ctx.input_shape, ctx.num_classes, session.data.train.num_samples, session.cfg, self.hardware,
            ctx.device, current=session.batch_size, start_batch=self.start_batch, start_lr_scale=self.start_lr_scale,
            max_batch=self.max_batch,
        )
        session.set_batch_size(choice.batch_size, choice.lr_scale, choice.memory.static + choice.memory.margin)
        self.history.append({"from_epoch": session.epoch + 1, "batch_size": choice.batch_size,
                             "lr_scale": choice.lr_scale, "model_peak_mb": choice.memory.peak(choice.batch_size) / MB})

    def summary(self) -> dict:
        return {"start_batch": self.start_batch, "max_batch": self.max_batch,
                "final_batch": self.history[-1]["batch_size"], "history": self.history}

    def state_dict(self) -> dict:
        return {"start_batch": self.start_batch, "start_lr_scale": self.start_lr_scale, "max_batch": self.max_batch,
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.start_batch, self.start_lr_scale = int(state["start_batch"]), float(state["start_lr_scale"])
        self.max_batch, self.history = int(state["max_batch"]), list(state["history"])
