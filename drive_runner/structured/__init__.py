"""PruneTrain (Lym et al., SC'19): group-lasso structured pruning that physically shrinks the model while it trains."""
