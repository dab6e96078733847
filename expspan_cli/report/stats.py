"""Counts behind the percentages: facts recalled pooled over distance buckets (RULER samples over lengths), with 95 %
Wilson score intervals
(right at 0 % and 100 % and for small counts, where the normal approximation is not)."""

from __future__ import annotations

import math

import pandas as pd

Z95 = 1.959964  # two-sided 95 %


def wilson(hits: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of hits / n, as fractions in [0, 1]."""
    if n <= 0:
        return math.nan, math.nan
    p = hits / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def pooled(results: pd.DataFrame, label: str, job: str, buckets: list, metric: str = "Recall"
           ) -> tuple[float, float, float, int] | None:
    """Percent of the items in `buckets` (facts by distance; RULER: samples by length) that the row got right, its
    95 % interval (percent) and the count of items; None when the records do not count them."""
    part = results[(results["label"] == label) & (results["job"] == job) & (results["metric"] == metric)
                   & results["x"].isin(buckets)]
    if part.empty or part["n"].isna().any():
        return None
    n = int(part["n"].sum())
    if n == 0:
        return None
    # A seed mean's count of hits need not be whole; rounding it would move the share off the table's cell.
    hits = math.fsum(float(v) / 100 * int(c) for v, c in zip(part["value"], part["n"]) if c)  # empty: no value
    lo, hi = wilson(hits, n)
    return 100 * hits / n, 100 * lo, 100 * hi, n
