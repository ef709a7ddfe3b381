"""Published tables as runnable sweeps: the grids of `conf/table/<name>.yaml` (grid.py) and the papers'
numbers they are compared with, shipped as data (references.py, references/<name>.yaml)."""
