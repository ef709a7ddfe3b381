"""`python -m drive_runner.report DIR...` is `drive-report DIR...`."""

from drive_runner.cli.report import entry

entry()
