"""The mask machinery every method shares: the mask engine, selection and schedules, the scorers' data and
helpers, mask ablations and collapse detection. The methods themselves are in drive_runner.methods."""
