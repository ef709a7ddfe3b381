"""drive-runner: a config-driven experiment runner for pruning and memory-efficient CNN training."""

__version__ = "0.1.0"
