"""95% confidence intervals of a mean over a few seeds (Student's t): how far a reproduced number can be
trusted, for the report's difference from a paper and for the benchmarks' ratios."""

from __future__ import annotations

import math
import statistics

# Two-sided 95% quantiles of Student's t by degrees of freedom; beyond 30, 1.96 + 2.4/df is within 0.002.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042}


def t_975(degrees_of_freedom: int) -> float:
    return T_975.get(degrees_of_freedom) or 1.96 + 2.4 / degrees_of_freedom


def half_width(values: list[float]) -> float | None:
    """Half the 95% interval of the mean of `values`; None for fewer than two."""
    if len(values) < 2:
        return None
    return t_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
