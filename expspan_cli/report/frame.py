"""The results frame: every number of every record in long form (row, job, kind, metric, x, value, n), the one
schema the tables pivot and the figures and claims filter by field."""

from __future__ import annotations

import pandas as pd

from expspan_cli.eval.kinds import EVAL_KINDS
from expspan_cli.report.records import Collection

COLUMNS = ["row", "label", "job", "kind", "metric", "x", "value", "n"]


def results_frame(col: Collection) -> pd.DataFrame:
    """One line per number, rows in table order, then jobs in column order, then each record's own order."""
    lines = []
    for row, label in col.rows:
        for job in col.jobs:
            entry = col.get(row, job.name)
            if entry is None:
                continue
            lines += [(row, label, job.name, job.kind, v.metric, v.x, v.value, v.n)
                      for v in EVAL_KINDS[job.kind].values(entry.record)]
    return pd.DataFrame(lines, columns=COLUMNS, dtype=object)  # object: x mixes lengths, buckets and None


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
