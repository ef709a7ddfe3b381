"""Memory budgets: measured training memory, batch sizes that fit, and NeuroFlux (adaptive local learning)."""
