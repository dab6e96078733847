"""Tables in the paper's layout (rows = attention variant / adapter; columns = PPL by length, harness tasks, RULER
average by length, as in Tables 1-4), pivoted from the results frame, and their Markdown, CSV and LaTeX forms."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from expspan_cli.report.frame import over_seeds, results_frame
from expspan_cli.report.records import Collection


def column_order(column: str) -> tuple[str, int]:
    head, _, tail = column.rpartition(" ")
    return (head, int(tail)) if tail.isdigit() else (column, 1 << 30)


def comparison_table(col: Collection) -> pd.DataFrame:
    """One row per recipe row (its label), one column per (job, metric, x) of the results frame; NaN where a record
    is missing; a row fine-tuned with several seeds shows their mean. The first job of a kind with records gets the
    plain names (PPL 2048); later ones are prefixed by their name. `attrs["fields"]` says what each column holds,
    `attrs["results"]` the numbers in long form with their counts and seed spread, `attrs["per_seed"]` each run's."""
    per_seed = results_frame(col)
    long = over_seeds(per_seed)
    columns: dict[str, dict[str, float]] = {}
    spec = []
    seen_kinds: set[str] = set()
    for job in col.jobs:
        part = long[long["job"] == job.name]
        if part.empty:
            continue
        plain = job.kind not in seen_kinds
        seen_kinds.add(job.kind)
        block: dict[str, dict[str, float]] = {}
        keys: dict[str, tuple] = {}
        for line in part.itertuples(index=False):
            name = ("" if plain else f"{job.name} ") + line.metric + ("" if line.x is None else f" {line.x}")
            block.setdefault(name, {})[line.row] = line.value
            keys[name] = (job.name, job.kind, line.metric, line.x, plain)
        for name in sorted(block, key=column_order) if job.kind in ("pg19", "ruler") else block:
            columns[name] = block[name]
            spec.append((name, *keys[name]))
    rows = col.table_rows()
    labels = dict(rows)
    frame = pd.DataFrame({c: [v.get(r, math.nan) for r, _ in rows] for c, v in columns.items()},
                         index=[labels[r] for r, _ in rows])
    frame.index.name = "Attention"
    frame.attrs["fields"] = pd.DataFrame(spec, columns=["column", "job", "kind", "metric", "x", "plain"])
    frame.attrs["results"] = long  # the counts behind the cells (recall: facts per bucket) and the seed spread
    frame.attrs["per_seed"] = per_seed
    # A record that holds NaN is not a missing record: its cells say NaN, and the claims flag them.
    frame.attrs["nan_cells"] = sorted((labels[r], c) for c, v in columns.items() for r, x in v.items()
                                      if isinstance(x, float) and math.isnan(x))
    return frame


def _shown(frame: pd.DataFrame, label: Any, column: Any, value: Any, digits: int) -> str:
    if (label, column) in set(map(tuple, frame.attrs.get("nan_cells", []))):
        return "NaN"
    return _cell(value, digits)


def to_csv(frame: pd.DataFrame, digits: int = 4) -> str:
    """CSV with an empty cell where no record is and NaN where a record holds NaN."""
    cells = frame.attrs.get("nan_cells", [])
    shown = frame.copy()
    for column in {c for _, c in cells}:  # those columns as text, the rest exactly as pandas writes them
        shown[column] = [f"{v:.{digits}f}" if isinstance(v, float) and not math.isnan(v) else "" for v in frame[column]]
    for label, column in cells:
        shown.loc[label, column] = "NaN"
    return shown.to_csv(float_format=f"%.{digits}f")


def ruler_groups_table(col: Collection) -> pd.DataFrame:
    """Long form: row, task group (the paper's NIAH-S, NIAH-M, NIAH-M-QV, VT, CF-WE), length, accuracy."""
    rows = []
    labels = dict(col.rows)
    for entry in col.entries:
        if entry.kind != "ruler":
            continue
        for group, by_length in entry.record["metrics"].get("groups", {}).items():
            for length, value in by_length.items():
                rows.append({"row": labels.get(entry.row, entry.row), "job": entry.job, "group": group,
                             "length": int(length), "accuracy": value})
    return pd.DataFrame(rows, columns=["row", "job", "group", "length", "accuracy"])


def training_table(col: Collection) -> pd.DataFrame:
    """Per fine-tuning row: method, attention, steps, final loss, tokens/s, wall time, trainable parameters."""
    rows = []
    labels = dict(col.rows)
    for row, manifest in col.training.items():
        summary = manifest.get("summary", {})
        everything = next((t for t in manifest.get("trainable", []) if t.get("group") == "all"), {})
        seed = col.group_of(row)[1]
        rows.append({"row": labels.get(row, row) + ("" if seed is None else f" (seed {seed})"), "method": manifest.get("method"),
                     "attention": manifest.get("attention"), "seq_len": manifest.get("seq_len"),
                     "steps": summary.get("steps"), "final_loss": summary.get("final_loss"),
                     "tokens_per_s": summary.get("tokens_per_s"), "wall_time_s": summary.get("wall_time_s"),
                     "trainable": everything.get("trainable"), "trainable_pct": everything.get("percent")})
    return pd.DataFrame(rows)


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def to_markdown(frame: pd.DataFrame, digits: int = 2, index: bool = True) -> str:
    head = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, values in frame.iterrows():
        cells = ([str(label)] if index else []) + [_shown(frame, label, c, v, digits) for c, v in values.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("²", r"$^2$"), ("—", "--")):
        text = text.replace(a, b)
    return text


def to_latex(frame: pd.DataFrame, digits: int = 2, caption: str | None = None) -> str:
    """A booktabs table with the best value of each column in bold (lowest for PPL, highest otherwise)."""
    best: dict[str, Any] = {}
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce").dropna()
        if len(values) > 1:
            best[column] = values.min() if "PPL" in str(column) else values.max()
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(frame.columns) + "}",
             r"\toprule", " & ".join([_tex(frame.index.name or "")] + [_tex(str(c)) for c in frame.columns]) + r" \\",
             r"\midrule"]
    for label, values in frame.iterrows():
        cells = [_tex(str(label))]
        for column, value in zip(frame.columns, values):
            text = _tex(_shown(frame, label, column, value, digits))
            cells.append(rf"\textbf{{{text}}}" if column in best and value == best[column] else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
