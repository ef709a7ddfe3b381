"""The runner of methods that prune while the network trains (GMP's gradual magnitude pruning, PruneTrain's
channel removal): their training-loop callbacks act during training, and the mask is final only after it.

    dense warm-up  ->  training with the method's callbacks  ->  the final mask reported and saved  ->  evaluation
"""

from __future__ import annotations

from drive_runner.errors import ConfigError
from drive_runner.instantiation import label
from drive_runner.pruning.ablation import Ablation
from drive_runner.runners.backprop import BackpropRunner


class DuringTrainingRunner(BackpropRunner):
    def run(self) -> dict:
        self.warm_up()
        history = self.train_rest(self.method.training_callbacks(self.training))
        self.check_survivors("after training")
        connectivity = self.report_mask()
        return self.finish(history, connectivity)

    @classmethod
    def check(cls, cfg, method, model, input_shape, num_classes: int, memory: bool = True) -> None:
        if cfg.prune.ablation != Ablation.none:
            raise ConfigError("prune.ablation", f"{label(cfg.method)} fixes no mask before sparse training, so there "
                                                "is none to shuffle or re-initialise; use it with a method that "
                                                "prunes before training (snip, synflow, drive, imp, ...)")
        super().check(cfg, method, model, input_shape, num_classes, memory)
