"""A researcher's own project: a model, a dataset and a pruning rule, run through drive-run (docs/extending.md)."""
