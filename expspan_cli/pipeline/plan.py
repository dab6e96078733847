"""The stages of a reproduction, where each writes, what each waits for, whether it is done, and what it costs.

A stage is done when its output directory holds a manifest (prepare, pretrain and finetune write theirs last; eval
and bench outputs are built with `atomic_dir`), so a killed run resumes at the first stage without one.

RUN/recipe.json                 the resolved recipe (a rerun checks it is the same recipe)
RUN/plan.json                   what `expspan report` reads: rows, evaluations, contexts, every stage's path
RUN/data/<name>/                expspan prepare
RUN/pretrain/                   expspan pretrain (tiny recipes)
RUN/finetune/<row>/             expspan finetune, one per grid entry
RUN/eval/<row>/<job>/           one eval record + manifest.json
RUN/bench/                      attention benchmark rows (Fig. 4)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expspan_cli.errors import require
from expspan_cli.eval.kinds import EVAL_KINDS
from expspan_cli.pipeline.spec import EvalJob, Reproduction, Row
from expspan_cli.runs import PLAN_FILE, atomic_write_json, is_partial, read_manifest

RECIPE_FILE = "recipe.json"


@dataclass
class Stage:
    id: str  # "prepare:pg19", "pretrain", "finetune:se", "eval:se/ruler", "bench"
    kind: str  # prepare | pretrain | finetune | eval | bench
    path: Path
    needs: list[str] = field(default_factory=list)
    row: str | None = None  # the comparison row (finetune/eval); None: shared by every row
    job: EvalJob | None = None
    tokens: int | None = None  # estimated tokens processed (training or evaluation)
    skipped: str | None = None  # why it will not run (data absent, another shard)

    def done(self) -> bool:
        return read_manifest(self.path) is not None

    def partial(self) -> bool:
        return is_partial(self.path)

    def status(self) -> str:
        if self.skipped:
            return f"skipped ({self.skipped})"
        return "done" if self.done() else "partial (resumes)" if self.partial() else "to run"


def row_model(recipe: Reproduction, run: Path, row: Row) -> str:
    """What a row evaluates: its fine-tuning run, or (the baseline) the model fine-tuning starts from."""
    if row.train is not None:
        return str(run / "finetune" / row.name)
    return str(run / "pretrain") if recipe.pretrain is not None else recipe.model


def _train_tokens(train: dict[str, Any], default_len: int) -> int:
    from expspan_cli.train.recipe import TrainRecipe

    values = {**TrainRecipe().to_dict(), **{k: v for k, v in train.items() if v is not None}}
    return values["max_steps"] * (values["seq_len"] or default_len) * values["per_device_batch_size"] * \
        values["grad_accum"]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`i/n` (1-based) -> (i, n)."""
    if text is None:
        return None
    i, sep, n = text.partition("/")
    require(bool(sep) and i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n),
            f"--shard must be i/n with 1 <= i <= n, got {text!r}", hint="e.g. --shard 2/4 on the second of four nodes")
    return int(i), int(n)


def build_plan(recipe: Reproduction, run: str | Path, shard: tuple[int, int] | None = None) -> list[Stage]:
    """Every stage in dependency order. With a shard (i, n), rows are dealt round-robin and row stages of other
    shards are marked skipped; shared stages (data, pre-training) run on every shard that needs them."""
    run = Path(run)
    stages: list[Stage] = []
    for spec in recipe.data.values():
        stages.append(Stage(f"prepare:{spec.name}", "prepare", run / "data" / spec.name,
                            [f"prepare:{spec.tokenizer_of}"] if spec.tokenizer_of else [],
                            skipped=None if spec.available() else f"local source {spec.source} absent"))
    data_seq = {n: s.seq_len for n, s in recipe.data.items()}
    base_needs = [f"prepare:{recipe.train_data}"] if recipe.rows else []
    if recipe.pretrain is not None:
        pre_data = recipe.pretrain["data"]
        stages.append(Stage("pretrain", "pretrain", run / "pretrain", [f"prepare:{pre_data}"],
                            tokens=_train_tokens(recipe.pretrain, data_seq[pre_data])))
        base_needs.append("pretrain")
    for index, row in enumerate(recipe.rows):
        other = shard is not None and index % shard[1] != shard[0] - 1
        why = f"shard {index % shard[1] + 1}/{shard[1]}" if other and shard else None
        model_stage = base_needs[-1] if row.train is None else f"finetune:{row.name}"
        if row.train is not None:
            stages.append(Stage(f"finetune:{row.name}", "finetune", run / "finetune" / row.name, list(base_needs),
                                row=row.name, tokens=_train_tokens(row.train, data_seq[recipe.train_data]),
                                skipped=why))
        for job in recipe.evals:
            if job.rows is not None and row.name not in job.rows and row.group not in job.rows:
                continue
            needs = [model_stage] + ([f"prepare:{job.data}"] if job.data else [])
            absent = job.data is not None and not recipe.data[job.data].available()
            stages.append(Stage(f"eval:{row.name}/{job.name}", "eval", run / "eval" / row.name / job.name, needs,
                                row=row.name, job=job, tokens=EVAL_KINDS[job.kind].tokens(job.options),
                                skipped=why or (f"data {job.data} absent" if absent else None)))
    if recipe.bench is not None:
        stages.append(Stage("bench", "bench", run / "bench",
                            skipped="shard 1 runs it" if shard is not None and shard[0] != 1 else None))
    by_id = {s.id: s for s in stages}
    for stage in stages:  # in dependency order, so a skip propagates down the chain
        blocked = next((n for n in stage.needs if by_id[n].skipped), None)
        if blocked and not stage.skipped:
            stage.skipped = f"needs {blocked}"
    return stages


def contexts_of(recipe: Reproduction) -> dict[str, int]:
    """The lengths the claims are about: pre-training context, fine-tuning length, SW-Attn window."""
    from expspan_cli.attention import SWParams
    from expspan_cli.models import PRESETS

    out: dict[str, int] = {}
    preset = PRESETS.get(recipe.model)
    if recipe.pretrain is not None:
        out["pretrain"] = recipe.pretrain.get("seq_len") or recipe.data[recipe.pretrain["data"]].seq_len
    elif preset is not None and preset.pretrain_context:
        out["pretrain"] = preset.pretrain_context
    for row in recipe.rows:
        if row.train is not None:
            out.setdefault("finetune", row.train.get("seq_len") or recipe.data[recipe.train_data].seq_len)
            if row.train.get("attn") == "swa":
                out.setdefault("window", (row.train.get("attn_params") or {}).get("window", SWParams().window))
    return out


def _attention(row: Row) -> str | None:
    from expspan_cli.train.methods import training_attention

    return training_attention(row.train.get("method", "hylora"), row.train.get("attn")) if row.train else None


def row_span(recipe: Reproduction, row: Row) -> int | None:
    """The most keys a query attends to while the row fine-tunes (None: the non-fine-tuned row)."""
    from expspan_cli.attention.params import make_params, span

    if row.train is None:
        return None
    attn = _attention(row)
    length = row.train.get("seq_len") or recipe.data[recipe.train_data].seq_len
    return span(attn, make_params(attn, **(row.train.get("attn_params") or {})), length)


def write_plan(recipe: Reproduction, run: str | Path) -> Path:
    """RUN/plan.json: everything `expspan report` needs to know of the recipe, so the report reads files only."""
    run = Path(run)
    rows = [{"name": r.name, "label": r.label, "method": (r.train or {}).get("method", "hylora") if r.train else None,
             "attn": _attention(r), "group": r.group, "seed": r.seed,
             "span": row_span(recipe, r)} for r in recipe.rows]
    evals = [{"name": j.name, "kind": j.kind, "attn": j.attn, "rows": j.rows, "data": j.data,
              "split": j.options.get("split")} for j in recipe.evals]
    stages = [{"id": s.id, "kind": s.kind, "path": str(s.path.relative_to(run)), "row": s.row,
               "job": s.job.name if s.job else None, "skipped": s.skipped} for s in build_plan(recipe, run)]
    return atomic_write_json(run / PLAN_FILE, {
        "name": recipe.name, "title": recipe.title, "description": recipe.description, "paper": recipe.paper,
        "resources": recipe.resources, "rows": rows, "evals": evals, "contexts": contexts_of(recipe),
        "stages": stages})
