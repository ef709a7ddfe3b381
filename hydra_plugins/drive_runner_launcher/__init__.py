"""drive-runner's Hydra launcher `hydra/launcher=processes`: every job in a process of its own."""
