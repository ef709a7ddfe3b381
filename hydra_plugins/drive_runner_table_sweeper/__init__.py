"""drive-runner's Hydra sweeper for `drive-run table=NAME` (Hydra finds plugins only in hydra_plugins)."""
