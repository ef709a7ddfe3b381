"""drive-runner: a config-driven experiment runner for pruning and memory-efficient CNN training."""

import logging

__version__ = "0.1.0"

# Library practice: records reach whatever the application configures (drive-run: Hydra's run.log), and
# nothing is printed twice when nothing is configured.
logging.getLogger("drive_runner").addHandler(logging.NullHandler())
