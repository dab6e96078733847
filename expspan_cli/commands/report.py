"""`expspan report RUN_DIR...`: parse options, call expspan_cli.report.write_report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def report(
    paths: list[Path] = typer.Argument(..., help="Run directories of `expspan reproduce` (several: shards of one "
                                       "recipe), folders of `expspan eval` records, or `expspan bench attention "
                                       "--json` files."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder [results/<recipe name>]."),
) -> None:
    """Tables (Markdown, CSV, LaTeX), figures and a README from JSON records; never reruns anything."""
    from expspan_cli.report import write_report
    from expspan_cli.report.records import collect

    if out is None:
        plan = collect(paths).plan
        out = Path("results") / (plan.name if plan else "report")
    typer.echo(f"report: {write_report(paths, out)}")


def register(app: typer.Typer) -> None:
    from expspan_cli.commands.reproduce import reproduce

    app.command()(reproduce)
    app.command()(report)
