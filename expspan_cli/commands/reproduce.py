"""`expspan reproduce RECIPE`: parse options, call expspan_cli.pipeline.reproduce (or print its plan)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def reproduce(
    recipe: Path = typer.Argument(..., help="A reproduction recipe, e.g. recipes/tiny.yaml or recipes/paper/table1.yaml."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory [runs/<recipe name>]; rerun to resume."),
    results: Optional[Path] = typer.Option(None, "--results", help="Report folder [RUN/report]; results/<recipe "
                                           "name> holds the committed reference, replaced only when named here."),
    quick: bool = typer.Option(False, "--quick", help="The recipe's quick profile (test-sized; a separate run)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate the recipe and print the plan: stages, which "
                                 "are done, estimated cost. Runs nothing."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Stages to run at once in worker processes (CPU cores are split)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: run the shared stages and every n-th row "
                                        "starting at row i (spread a recipe over n machines)."),
) -> None:
    """Run a recipe end to end: prepare, pretrain, fine-tune each grid entry, evaluate, report; resumes."""
    from rich.console import Console

    from expspan_cli.pipeline import build_plan, load_reproduction, parse_shard, plan_table
    from expspan_cli.pipeline import reproduce as run_recipe

    spec = load_reproduction(recipe, quick=quick)
    suffix = "-quick" if quick else ""
    run = out or Path("runs") / f"{spec.name}{suffix}"
    report_dir = results or run / "report"  # results/ holds committed references: written only when asked
    console = Console()
    if dry_run:
        stages = build_plan(spec, run, parse_shard(shard))
        console.print(plan_table(spec, stages, run))
        needs = spec.resources
        if needs:
            console.print("needs: " + ", ".join(f"{k} {v}" for k, v in needs.items()), highlight=False)
        console.print(f"report -> {report_dir}")
        return
    outcome = run_recipe(spec, run, results=report_dir, jobs=jobs, shard=parse_shard(shard))
    typer.echo(f"{len(outcome.ran)} stage(s) run in {outcome.wall_time_s / 60:.1f} min; "
               f"report: {outcome.report or 'waiting for other shards'}")
    reference = Path("results") / spec.name / "comparison.csv"
    if outcome.report is not None and reference.exists() and not quick \
            and reference.resolve() != (report_dir / "comparison.csv").resolve():
        from expspan_cli.report.compare import compare_tables

        console.print(compare_tables(report_dir / "comparison.csv", reference))
