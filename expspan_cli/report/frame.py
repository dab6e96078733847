"""The results frame: every number of every record in long form (row, label, seed, job, kind, metric, x, value, n),
the one schema the tables pivot and the figures and claims filter by field, and its mean over seeds."""

from __future__ import annotations

import math

import pandas as pd

from expspan_cli.eval.kinds import EVAL_KINDS
from expspan_cli.report.records import Collection

COLUMNS = ["row", "label", "seed", "job", "kind", "metric", "x", "value", "n"]
_KEY = ["row", "label", "job", "kind", "metric", "x"]


def results_frame(col: Collection) -> pd.DataFrame:
    """One line per number of each run, rows in table order (a seeded run under its group's row), then jobs in
    column order, then each record's own order."""
    lines = []
    for name, label in col.rows:
        row, seed = col.group_of(name)
        for job in col.jobs:
            entry = col.get(name, job.name)
            if entry is None:
                continue
            lines += [(row, label, seed, job.name, job.kind, v.metric, v.x, v.value, v.n)
                      for v in EVAL_KINDS[job.kind].values(entry.record)]
    return pd.DataFrame(lines, columns=COLUMNS, dtype=object)  # object: x mixes lengths, buckets and None


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def over_seeds(long: pd.DataFrame) -> pd.DataFrame:
    """One line per (row, job, metric, x): the mean over the row's seeds (NaN if any seed gave NaN), the per-seed
    count n, how many seeds, the lowest and the highest."""
    groups: dict[tuple, list] = {}
    for line in long.itertuples(index=False):
        groups.setdefault(tuple(getattr(line, k) for k in _KEY), []).append(line)
    out = []
    for key, lines in groups.items():
        values = [_number(line.value) for line in lines]
        numeric = any(isinstance(line.value, (int, float)) for line in lines)
        mean = math.fsum(values) / len(values) if numeric else lines[0].value
        counts = [line.n for line in lines if line.n is not None]
        out.append((*key, mean, counts[0] if counts else None, len(lines),
                    min(values) if numeric else math.nan, max(values) if numeric else math.nan))
    return pd.DataFrame(out, columns=_KEY + ["value", "n", "seeds", "low", "high"], dtype=object)


def fields(table: pd.DataFrame) -> pd.DataFrame:
    """What each column of a comparison table holds: column, job, kind, metric, x, plain (named without its job)."""
    return table.attrs["fields"]


def columns_where(table: pd.DataFrame, **match: object) -> list[str]:
    """The comparison table's columns whose fields equal `match` (e.g. metric="PPL", plain=True), in table order."""
    spec = fields(table)
    keep = pd.Series(True, index=spec.index)
    for key, value in match.items():
        keep &= spec[key] == value
    return list(spec.loc[keep, "column"])
