"""`expspan report`: tables (Markdown, CSV, LaTeX), figures (PNG) and a README per recipe, from JSON records only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from expspan_cli.errors import require
from expspan_cli.runs import atomic_dir, atomic_write_text

TIMING_FILE = "timing.json"  # written by `expspan reproduce` into the run directory: each invocation's wall time


def _timing(paths: list[Path]) -> dict[str, Any] | None:
    invocations = []
    for p in paths:
        try:
            invocations += json.loads((p / TIMING_FILE).read_text(encoding="utf-8")).get("invocations", [])
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
    return {"invocations": invocations} if invocations else None


def write_report(paths: list[str | Path], out: str | Path, console: Console | None = None) -> Path:
    """Write OUT/README.md, comparison.{md,csv,tex}, ruler_groups.csv, training.csv and the figures; returns the
    README. OUT is replaced as a whole (built aside, renamed into place) when it is an earlier report; anything
    else there is refused."""
    from expspan_cli.report.claims import check_claims
    from expspan_cli.report.figures import bench_figure, ppl_figure, recall_figure, ruler_average_figure, \
        ruler_groups_figure
    from expspan_cli.report.headline import source_of
    from expspan_cli.report.readme import render_readme
    from expspan_cli.report.records import collect
    from expspan_cli.report.tables import comparison_table, ruler_groups_table, to_csv, to_latex, to_markdown, \
        training_table

    from expspan_cli.runs import check_output

    console = console or Console(stderr=True)
    paths = [Path(p) for p in paths]
    check_output(out, "report", force=True)  # a folder of anything but an earlier report is never replaced
    col = collect(paths)
    require(bool(col.entries or col.bench or col.training), f"no evaluation records, training runs or benchmark "
            f"rows in {', '.join(map(str, paths))}", hint="give `expspan reproduce` run directories, folders of "
            "`expspan eval` records, or `expspan bench attention --json` files")
    for problem in col.problems:
        console.print(f"[yellow]warning:[/] {problem}", highlight=False)
    if col.missing or col.partial:
        console.print(f"[yellow]incomplete:[/] missing {', '.join(col.missing) or 'none'}; partial "
                      f"{', '.join(col.partial) or 'none'}", highlight=False)
    frame = comparison_table(col)
    groups = ruler_groups_table(col)
    training = training_table(col)
    contexts = col.plan.contexts if col.plan else {}
    checks = check_claims(col.plan, frame)
    marks = {f"{k} {v}": v for k, v in contexts.items()}
    out = Path(out)
    with atomic_dir(out, force=True, kind="report") as tmp:
        caption = col.plan.title if col.plan else "evaluation records"
        atomic_write_text(tmp / "comparison.md", to_markdown(frame))
        atomic_write_text(tmp / "comparison.csv", to_csv(frame))
        atomic_write_text(tmp / "comparison.tex", to_latex(frame, caption=caption))
        if not groups.empty:
            atomic_write_text(tmp / "ruler_groups.csv", groups.to_csv(index=False, float_format="%.4f"))
        if not training.empty:
            atomic_write_text(tmp / "training.csv", training.to_csv(index=False, float_format="%.4f"))
        drawn = {"Recall by distance": recall_figure(frame, tmp / "recall.png"),
                 "RULER average by length": ruler_average_figure(frame, tmp / "ruler_average.png", marks),
                 "Perplexity by length": ppl_figure(frame, tmp / "ppl.png", marks=marks,
                                                    corpus=source_of(col.plan, "pg19")),
                 "RULER by task group": ruler_groups_figure(groups, tmp / "ruler_groups.png"),
                 "Attention runtime and memory": bench_figure(col.bench, tmp / "runtime_memory.png")}
        figures = {name: path.name for name, path in drawn.items() if path is not None}
        atomic_write_text(tmp / "README.md", render_readme(col, frame, checks, figures, training, groups,
                                                           _timing(paths)))
    return out / "README.md"
