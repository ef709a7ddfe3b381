"""The command-line programs: `drive-run` (run.py), `drive-memory` (memory.py), and what they share
(compose.py: configs composed and errors worded the way drive-run does it)."""
