"""The runner of methods that fix their mask before sparse training: pruning at initialisation (random,
magnitude, SNIP, GraSP, SynFlow and any scoring rule), DRIVE after its warm-up, and the dense baseline.

    dense warm-up  ->  find the mask  ->  settle it (check, ablate, report, save)  ->  sparse training  ->  evaluation
"""

from __future__ import annotations

from drive_runner.errors import ConfigError
from drive_runner.instantiation import label
from drive_runner.pruning.ablation import Ablation
from drive_runner.runners.backprop import BackpropRunner


class MaskFirstRunner(BackpropRunner):
    def run(self) -> dict:
        method = self.method
        self.warm_up()
        with self.pruning():
            if not self.progress.mask_done:
                method.find_mask(self.scoring)
                method.after_mask(self.training)
        connectivity = self.settle_mask()
        history = self.train_rest(method.training_callbacks(self.training))
        self.check_survivors("after training")
        return self.finish(history, connectivity)

    @classmethod
    def check(cls, cfg, method, model, input_shape, num_classes: int, memory: bool = True) -> None:
        if cfg.prune.ablation != Ablation.none and not method.prunes:
            raise ConfigError("prune.ablation", f"{label(cfg.method)} keeps every weight, so there is no mask to "
                                                "shuffle or re-initialise; use it with a method that prunes")
        super().check(cfg, method, model, input_shape, num_classes, memory)
