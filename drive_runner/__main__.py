"""`python -m drive_runner ...` is the same as `drive-run ...`."""

from drive_runner.cli.run import entry

entry()
