"""A new run's comparison table against a committed reference (`results/<recipe>/comparison.csv`): how far each
number moved, largest first, so a user sees at once whether their rerun reproduces the committed one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

SHOWN = 10


def compare_tables(new_csv: Path, reference_csv: Path) -> Table | str:
    new = pd.read_csv(new_csv, index_col=0)
    ref = pd.read_csv(reference_csv, index_col=0)
    rows = [(label, column, ref.loc[label, column], new.loc[label, column])
            for label in new.index.intersection(ref.index) for column in new.columns.intersection(ref.columns)
            if pd.notna(new.loc[label, column]) and pd.notna(ref.loc[label, column])]
    rows.sort(key=lambda r: -abs(float(r[3]) - float(r[2])))
    same = sum(1 for r in rows if abs(float(r[3]) - float(r[2])) < 5e-3)
    if same == len(rows):
        return f"this run against {reference_csv}: all {len(rows)} shared cells equal to 2 decimals"
    table = Table(title=f"this run against {reference_csv}: {same} of {len(rows)} shared cells equal to 2 decimals; "
                        f"the {min(SHOWN, len(rows))} that moved most", title_justify="left")
    for name in ("row", "column", "reference", "this run", "change"):
        table.add_column(name, justify="left" if name in ("row", "column") else "right")
    for label, column, old, value in rows[:SHOWN]:
        table.add_row(str(label), str(column), f"{old:.2f}", f"{value:.2f}", f"{value - old:+.2f}")
    return table
