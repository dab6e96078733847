"""Running one stage of a reproduction through the public library function of its area."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from expspan_cli.eval.kinds import EVAL_KINDS
from expspan_cli.pipeline.data import prepare_data
from expspan_cli.pipeline.plan import Stage, row_model
from expspan_cli.pipeline.spec import EvalJob, Reproduction, Row
from expspan_cli.runs import atomic_dir, provenance, write_manifest


def _train(recipe: Reproduction, run: Path, stage: Stage) -> None:
    from expspan_cli.train.recipe import build_recipe
    from expspan_cli.train.run import run_training

    if stage.kind == "pretrain":
        values = dict(recipe.pretrain or {})
        values["data"] = str(run / "data" / values["data"])
    else:
        row = next(r for r in recipe.rows if r.name == stage.row)
        values = {**(row.train or {}), "data": str(run / "data" / recipe.train_data),
                  "model": str(run / "pretrain") if recipe.pretrain is not None else recipe.model}
    # A directory without a manifest is an interrupted run: continue it from its last complete checkpoint.
    run_training(build_recipe(None, **values), stage.path, kind=stage.kind, resume=stage.path.exists())


def eval_attention(job: EvalJob, row: Row) -> tuple[str, dict[str, Any]]:
    """The attention an evaluation runs with: full (the paper's protocol), or the row's fine-tuning attention."""
    if job.attn == "full" or row.train is None:
        return "full", {}
    return row.train.get("attn") or "se", dict(row.train.get("attn_params") or {})


def _evaluate(recipe: Reproduction, run: Path, stage: Stage, quiet: bool) -> None:
    job = stage.job
    assert job is not None
    row = next(r for r in recipe.rows if r.name == stage.row)
    attn, attn_params = eval_attention(job, row)
    model = row_model(recipe, run, row)
    data = str(run / "data" / job.data) if job.data else None
    start = time.perf_counter()
    with atomic_dir(stage.path, kind="eval") as tmp:
        record = EVAL_KINDS[job.kind].run(model, data, tmp, attn, attn_params, quiet, **job.options)
        write_manifest(tmp, {"stage": stage.id, "kind": "eval", "row": row.name, "label": row.label,
                             "job": job.name, "eval_kind": job.kind, "record": record.name, "model": model,
                             "attn": attn, "wall_time_s": round(time.perf_counter() - start, 3),
                             "provenance": provenance()})


def _bench(recipe: Reproduction, stage: Stage) -> None:
    from expspan_cli.attention.bench import bench_attention
    from expspan_cli.runs import atomic_write_json

    options = dict(recipe.bench or {})
    start = time.perf_counter()
    with atomic_dir(stage.path, kind="bench") as tmp:
        rows = bench_attention(**options)
        atomic_write_json(tmp / "attention.json", {"rows": rows, "provenance": provenance()})
        write_manifest(tmp, {"stage": stage.id, "kind": "bench", "record": "attention.json",
                             "wall_time_s": round(time.perf_counter() - start, 3), "provenance": provenance()})


def run_stage(recipe: Reproduction, run: str | Path, stage: Stage, quiet: bool = False) -> None:
    """Run one stage to completion (its manifest written last); stages already done are not rerun by callers."""
    run = Path(run)
    if stage.kind == "prepare":
        prepare_data(recipe.data[stage.id.split(":", 1)[1]], stage.path)
    elif stage.kind in ("pretrain", "finetune"):
        _train(recipe, run, stage)
    elif stage.kind == "eval":
        _evaluate(recipe, run, stage, quiet)
    else:
        _bench(recipe, stage)
