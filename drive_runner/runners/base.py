"""What every runner is: built from the run's setup and its method, checked before any work, run once."""

from __future__ import annotations

from drive_runner.runners.setup import Setup


class Runner:
    """Trains one job from its setup to its result (the dict summary.json reports)."""

    sparsity_target = True  # False: the jobs it runs have no sparsity target, whatever the method
    def __init__(self, setup: Setup, method):
        self.setup, self.method = setup, method

    @classmethod
    def check(cls, cfg, method, model, input_shape, num_classes: int, memory: bool = True) -> None:
        """This runner's rules for a config, checked on the meta-device model before any work; raise
        ConfigError naming the key. `memory=False` leaves out the checks against a memory budget."""

    @classmethod
    def check_parallel(cls, cfg, world) -> None:
        """What this runner cannot do under data parallelism (several processes, one job), refused before any
        process group or directory exists."""

    def run(self) -> dict:
        raise NotImplementedError
