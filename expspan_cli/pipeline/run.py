"""`expspan reproduce`: the plan's stages in dependency order (each skipped when its manifest says it is done),
optionally several at once in worker processes, then the report."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from expspan_cli.errors import ExpspanError, require
from expspan_cli.pipeline.plan import RECIPE_FILE, Stage, build_plan, write_plan
from expspan_cli.pipeline.spec import Reproduction, parse_reproduction
from expspan_cli.pipeline.stages import run_stage
from expspan_cli.runs import atomic_write_json, atomic_write_text, check_output


@dataclass
class Outcome:
    run: Path
    stages: list[Stage]
    ran: list[str]
    report: Path | None  # None: stages of other shards are still missing
    wall_time_s: float


def _fmt_tokens(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.2f}B tok" if n >= 1e9 else f"{n / 1e6:.1f}M tok" if n >= 1e6 else f"{n / 1e3:.0f}k tok"


def plan_table(recipe: Reproduction, stages: list[Stage], run: Path) -> Table:
    table = Table(title=f"{recipe.name} -> {run}", caption=recipe.title)
    for col, justify in (("#", "right"), ("stage", "left"), ("status", "left"), ("est. cost", "right"),
                         ("output (in the run directory)", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for i, s in enumerate(stages, 1):
        table.add_row(str(i), s.id, s.status(), _fmt_tokens(s.tokens), str(s.path.relative_to(run)))
    return table


def check_run_dir(run: Path, recipe: Reproduction) -> None:
    """A run directory belongs to one recipe: refuse to mix the outputs of two different recipes."""
    saved = run / RECIPE_FILE
    require(not run.exists() or run.is_dir(), f"{run} exists and is not a directory", hint="pass another --out")
    if run.is_dir() and any(run.iterdir()) and not saved.exists():
        raise ExpspanError(f"{run} holds files that are not an expspan reproduction; they are left as they are",
                           hint="pass another --out")
    if saved.exists():
        try:
            old = json.loads(saved.read_text(encoding="utf-8")).get("recipe")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise ExpspanError(f"{saved} is unreadable", hint="pass another --out") from None
        if old != json.loads(json.dumps(recipe.source, default=str)):
            raise ExpspanError(f"{run} holds a run of a different recipe (or profile)",
                               hint="pass another --out, or delete the old run directory")


def _pin(threads: int, gpu: int | None) -> None:
    """Worker start-up, before torch is imported there: its CPU threads and (with one GPU per job) its GPU."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _worker(source: dict[str, Any], run: str, stage: Stage, threads: int) -> str:
    import torch

    torch.set_num_threads(threads)
    run_stage(parse_reproduction(source, origin="recipe"), run, stage, quiet=True)
    return stage.id


def _gpus() -> list[int]:
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def _execute(recipe: Reproduction, run: Path, todo: list[Stage], by_id: dict[str, Stage], jobs: int,
             console: Console, started: float) -> list[str]:
    ran: list[str] = []
    total = len(todo)

    def announce(stage: Stage) -> None:
        elapsed = time.perf_counter() - started
        console.rule(f"[bold]stage {len(ran) + 1}/{total}[/] {stage.id}  "
                     f"[dim]({len(ran)} done, {elapsed / 60:.1f} min elapsed, "
                     f"{len(ran) / elapsed * 60 if elapsed and ran else 0:.1f} stages/min)[/]")

    if jobs <= 1:
        for stage in todo:
            announce(stage)
            run_stage(recipe, run, stage)
            ran.append(stage.id)
        return ran
    threads = max(1, (os.cpu_count() or 1) // jobs)
    gpus = _gpus()
    slots = list(range(jobs))  # a job slot is a GPU when there is one per job
    pending = list(todo)
    running: dict[concurrent.futures.Future, tuple[Stage, int, concurrent.futures.Executor]] = {}
    source = dict(recipe.source, quick=False)  # already merged: workers must not merge the quick profile again
    ctx = multiprocessing.get_context("spawn")
    try:
        while pending or running:
            ready = [s for s in pending if all(by_id[n].done() for n in s.needs)]
            for stage in ready[:len(slots)]:
                announce(stage)
                pending.remove(stage)
                slot = slots.pop(0)
                # One fresh process per stage: its GPU and thread settings apply before torch is imported.
                pool = concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=ctx, initializer=_pin,
                    initargs=(threads, gpus[slot] if len(gpus) >= jobs else None))
                running[pool.submit(_worker, source, str(run), stage, threads)] = (stage, slot, pool)
            require(bool(running), "no stage can start: a stage it needs did not complete",
                    hint=", ".join(s.id for s in pending))
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                stage, slot, pool = running.pop(future)
                pool.shutdown()
                slots.append(slot)
                future.result()  # re-raises a stage's failure here
                ran.append(stage.id)
                console.print(f"[green]done[/] {stage.id}")
    finally:
        for _, _, pool in running.values():
            pool.shutdown(wait=True, cancel_futures=True)
    return ran


def _log_invocation(run: Path, ran: list[str], seconds: float) -> None:
    """Append this invocation's wall time to RUN/timing.json (the results README names it)."""
    import shlex
    import sys

    from expspan_cli.report import TIMING_FILE

    path = run / TIMING_FILE
    try:
        timing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        timing = {"invocations": []}
    timing["invocations"].append({"command": shlex.join(["expspan", *sys.argv[1:]]), "stages_ran": len(ran),
                                  "wall_time_s": round(seconds, 1),
                                  "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(time.time() - seconds))})
    atomic_write_json(path, timing)


def reproduce(recipe: Reproduction, run: str | Path, *, results: str | Path | None = None, jobs: int = 1,
              shard: tuple[int, int] | None = None, console: Console | None = None) -> Outcome:
    """Run every stage of the recipe that is not done yet, then write the report (when no stage is missing)."""
    from expspan_cli.report import write_report

    console = console or Console(stderr=True)
    require(jobs >= 1, f"--jobs must be at least 1, got {jobs}")
    run = Path(run)
    started = time.perf_counter()
    check_run_dir(run, recipe)
    report_dir = Path(results) if results else run / "report"
    check_output(report_dir, "report", force=True)  # before hours of work: a user's folder is never replaced
    # Key order kept: the order of datasets and rows is meaningful (the first dataset is the default training data).
    atomic_write_text(run / RECIPE_FILE, json.dumps({"recipe": recipe.source}, indent=2, default=str) + "\n")
    write_plan(recipe, run)
    stages = build_plan(recipe, run, shard)
    by_id = {s.id: s for s in stages}
    todo = [s for s in stages if not s.skipped and not s.done()]
    console.print(f"{recipe.name}: {len(stages)} stages, {len(todo)} to run, "
                  f"{sum(1 for s in stages if s.done())} already done -> {run}")
    ran = _execute(recipe, run, todo, by_id, jobs, console, started)
    _log_invocation(run, ran, time.perf_counter() - started)
    # Unsharded, only stages whose local data is absent are skipped; anything else not done belongs to a shard.
    missing = [s.id for s in build_plan(recipe, run) if not s.skipped and not s.done()]
    report = None
    if missing:
        console.print(f"report not written yet: {len(missing)} stage(s) of other shards missing "
                      f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    else:
        report = write_report([run], report_dir, console=console)
        console.print(f"report: {report}")
    return Outcome(run, stages, ran, report, time.perf_counter() - started)
