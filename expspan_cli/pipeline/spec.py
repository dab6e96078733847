"""Reproduction recipes: one YAML file = data preparation, an optional tiny pre-training, a fine-tuning grid (one
row of the paper's table per entry, plus the non-fine-tuned row), the evaluations and the paper table to compare.

Training fields are `expspan_cli.train.recipe.TrainRecipe`'s (validated by `build_recipe`); evaluation options are the
keyword arguments of the evaluation functions; every error names the field it is about (`grid[2].attn_params`).
A `quick:` section holds overrides deep-merged on top with `--quick` (the test-sized profile).
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expspan_cli.config import check_known
from expspan_cli.errors import ExpspanError, require
from expspan_cli.eval.kinds import EVAL_KINDS
from expspan_cli.options import parse_lengths

TOP_LEVEL = {"name", "title", "description", "paper", "resources", "data", "pretrain", "finetune", "grid", "baseline",
             "eval", "bench", "quick"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Set by the pipeline, never by a recipe: where data and models live is decided by the run directory.
_PIPELINE_OWNED = {"data", "model"}


@dataclass
class DataSpec:
    name: str
    kind: str
    tokenizer: str
    seq_len: int
    source: str | None = None  # pg19: None = the hub; text: required
    splits: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # synthetic: SyntheticSpec fields; pg19/text: max_*
    optional: bool = False  # a local source that may be absent: its stages are skipped, the report says so
    num_proc: int = 1

    def available(self) -> bool:
        return not self.optional or (self.source is not None and Path(self.source).exists())

    @property
    def tokenizer_of(self) -> str | None:
        """The recipe data whose prepared tokenizer this one reuses (`tokenizer: data:NAME`), so ids match."""
        return self.tokenizer[len("data:"):] if self.tokenizer.startswith("data:") else None


@dataclass
class Row:
    """One row of the comparison: a fine-tuning run (train = TrainRecipe fields) or the non-fine-tuned model."""

    name: str
    label: str
    train: dict[str, Any] | None  # None: the baseline row (the model before fine-tuning)
    group: str | None = None  # the table row a seed belongs to (a grid entry with `seeds:`); None: its own row
    seed: int | None = None  # the fine-tuning seed of one of a group's runs


@dataclass
class EvalJob:
    name: str
    kind: str
    data: str | None  # a data name of the recipe (pg19: scored split; ruler: essay haystack); None for harness
    attn: str  # "full" (the paper's default) or "same" (the row's fine-tuning attention, Table 2 / Fig. 11)
    options: dict[str, Any]
    rows: list[str] | None = None  # None: every row


@dataclass
class Reproduction:
    name: str
    title: str
    description: str
    paper: dict[str, Any]  # {"table": key of report.paper.PUBLISHED, "scale": ...}
    resources: dict[str, Any]  # what it needs: gpus, hours, data (README lists these)
    data: dict[str, DataSpec]
    model: str  # what fine-tuning starts from when there is no pre-training
    pretrain: dict[str, Any] | None  # TrainRecipe fields (+ data: a data name)
    train_data: str | None  # the data name fine-tuning reads (None: a recipe without rows, e.g. a benchmark)
    rows: list[Row]
    evals: list[EvalJob]
    bench: dict[str, Any] | None  # bench_attention keyword arguments (Fig. 4)
    source: dict[str, Any]  # the resolved YAML (after --quick), recorded in the run directory


def deep_merge(base: Any, over: Any) -> Any:
    """`over` on top of `base`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    require(isinstance(value, dict), f"recipe field {where!r} must be a mapping, got {value!r}")
    return value


def _name(value: Any, where: str) -> str:
    require(isinstance(value, str) and bool(_NAME.match(value)),
            f"recipe field {where!r} must be a name (letters, digits, _ . -), got {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
            f"recipe field {where!r} must be a positive integer, got {value!r}")
    return value


def _check_train(values: dict[str, Any], where: str) -> None:
    """Validate TrainRecipe fields now (dry-run), so a typo fails before hours of preparation."""
    from expspan_cli.train.recipe import build_recipe

    owned = sorted(set(values) & (_PIPELINE_OWNED - {"model"} if where == "pretrain" else _PIPELINE_OWNED))
    require(not owned, f"recipe field {where}.{owned[0] if owned else ''} is set by the pipeline",
            hint="name data under `data:` and the base model under `finetune.model`")
    try:
        build_recipe(None, **values)
    except ExpspanError as err:
        raise ExpspanError(f"{where}: {err.message}", err.hint) from None
    attn, params = values.get("attn"), values.get("attn_params")
    if attn not in (None, "full") and params:
        from expspan_cli.attention import make_params

        try:
            make_params(attn, **params)
        except ExpspanError as err:
            raise ExpspanError(f"{where}.attn_params: {err.message}", err.hint) from None


def _data(name: str, raw: Any) -> DataSpec:
    from expspan_cli.data.kinds import check_options, get_data_kind

    where = f"data.{name}"
    raw = _mapping(raw, where)
    check_known(raw, ("kind", "tokenizer", "seq_len", "source", "splits", "options", "optional", "num_proc"), where)
    kind = get_data_kind(raw.get("kind"), f"{where}.kind")
    require(isinstance(raw.get("tokenizer"), str), f"recipe field {where}.tokenizer must be a tokenizer "
            "(bpe:N, a model id or a local path)")
    source = os.path.expanduser(os.path.expandvars(str(raw["source"]))) if raw.get("source") else None
    spec = DataSpec(name, kind.name, raw["tokenizer"], _int(raw.get("seq_len"), f"{where}.seq_len"), source,
                    raw.get("splits"), _mapping(raw.get("options", {}), f"{where}.options"),
                    bool(raw.get("optional", False)), _int(raw.get("num_proc", 1), f"{where}.num_proc"))
    require(kind.source != "required" or spec.source is not None,
            f"recipe field {where}.source is required for {kind.name} data")
    require(spec.splits is None or (isinstance(spec.splits, list) and all(isinstance(s, str) for s in spec.splits)),
            f"recipe field {where}.splits must be a list of split names")
    check_options(kind, spec.options, f"{where}.options")
    return spec


def _eval_job(index: int, raw: Any, data: dict[str, DataSpec], rows: list[str]) -> EvalJob:
    where = f"eval[{index}]"
    raw = dict(_mapping(raw, where))
    kind = raw.pop("kind", None)
    require(kind in EVAL_KINDS, f"recipe field {where}.kind must be one of {', '.join(EVAL_KINDS)}, got {kind!r}")
    spec = EVAL_KINDS[kind]
    name = _name(raw.pop("name", kind), f"{where}.name")
    attn = raw.pop("attn", "full")
    require(attn in ("full", "same"), f"recipe field {where}.attn must be 'full' or 'same', got {attn!r}")
    data_name = raw.pop("data", None)
    require(data_name is None or data_name in data, f"recipe field {where}.data names no dataset: {data_name!r}",
            hint=f"datasets: {', '.join(data) or 'none'}")
    require(spec.data != "required" or data_name is not None, f"recipe field {where}.data is required for {kind}")
    only = raw.pop("rows", None)
    require(only is None or (isinstance(only, list) and set(only) <= set(rows)),
            f"recipe field {where}.rows must list row names", hint=f"rows: {', '.join(rows)}")
    check_known(raw, spec.options, where)
    if spec.lengths:
        require("lengths" in raw, f"recipe field {where}.lengths is required")
        try:
            raw["lengths"] = parse_lengths(raw["lengths"])
        except ExpspanError as err:
            raise ExpspanError(f"{where}.lengths: {err.message}") from None
    spec.check(raw, where)
    return EvalJob(name, kind, data_name, attn, raw, only)


def _seeds(value: Any, where: str, has_seed: bool) -> list[int] | None:
    if value is None:
        return None
    require(not has_seed, f"recipe field {where} sets both seed and seeds", hint="keep one of them")
    require(isinstance(value, list) and len(value) >= 1 and len(set(value)) == len(value)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value),
            f"recipe field {where}.seeds must be a list of distinct non-negative integers, got {value!r}")
    return value


def _rows(raw: dict[str, Any], defaults: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    baseline = raw.get("baseline", {"label": "Non-fine-tuned"})
    if baseline:
        baseline = _mapping(baseline, "baseline")
        rows.append(Row(_name(baseline.get("name", "non-ft"), "baseline.name"),
                        str(baseline.get("label", "Non-fine-tuned")), None))
    grid = raw.get("grid") or []
    require(isinstance(grid, list), "recipe field 'grid' must be a list of fine-tuning runs")
    for i, entry in enumerate(grid):
        entry = dict(_mapping(entry, f"grid[{i}]"))
        name = _name(entry.pop("name", None), f"grid[{i}].name")
        label = str(entry.pop("label", name))
        seeds = _seeds(entry.pop("seeds", None), f"grid[{i}]", "seed" in entry)
        train = {**defaults, **entry}
        _check_train(train, f"grid[{i}]")
        if seeds is None:
            rows.append(Row(name, label, train))
        else:  # one fine-tuning run per seed; the report shows the group's mean and spread as one row
            rows += [Row(f"{name}-s{s}", label, {**train, "seed": s}, group=name, seed=s) for s in seeds]
    names = [r.name for r in rows]
    dup = sorted({n for n in names if names.count(n) > 1})
    require(not dup, f"recipe rows must have distinct names; {dup[0] if dup else ''!r} repeats")
    return rows


def parse_reproduction(raw: Any, quick: bool = False, origin: str = "recipe") -> Reproduction:
    """A validated Reproduction from the YAML's mapping; `quick` applies its `quick:` overrides first."""
    raw = _mapping(raw, origin)
    if quick:
        require("quick" in raw, f"{origin} has no quick profile", hint="add a `quick:` section of overrides")
        raw = deep_merge(raw, _mapping(raw["quick"], "quick"))
    check_known(raw, TOP_LEVEL)
    name = _name(raw.get("name"), "name")
    data = {n: _data(n, spec) for n, spec in _mapping(raw.get("data", {}), "data").items()}
    for spec in data.values():
        require(spec.tokenizer_of is None or spec.tokenizer_of in data and spec.tokenizer_of != spec.name,
                f"recipe field data.{spec.name}.tokenizer names no other dataset: {spec.tokenizer!r}")
    finetune = dict(_mapping(raw.get("finetune", {}), "finetune"))
    model = str(finetune.pop("model", "tiny-hybrid"))
    train_data = finetune.pop("data", next(iter(data), None))
    pretrain = raw.get("pretrain")
    if pretrain is not None:
        pretrain = dict(_mapping(pretrain, "pretrain"))
        pre_data = pretrain.pop("data", train_data)
        require(pre_data in data, f"recipe field pretrain.data names no dataset: {pre_data!r}")
        _check_train(pretrain, "pretrain")
        pretrain["data"] = pre_data
    rows = _rows(raw, finetune)
    from expspan_cli.models.zoo import is_random_preset

    require(pretrain is not None or not any(r.train for r in rows) or not is_random_preset(model)
            or finetune.get("random_base") is True, f"recipe field finetune.model: preset {model!r} is random-init "
            "and the recipe pre-trains nothing", hint="add a pretrain section, name a pre-trained finetune.model, or "
            "set finetune.random_base: true to fine-tune random weights on purpose")
    require(bool(rows) or raw.get("bench") is not None, "the recipe has nothing to run",
            hint="add a grid of fine-tuning runs, a baseline, or a bench section")
    require(not rows or train_data in data, f"recipe field finetune.data names no dataset: {train_data!r}",
            hint=f"datasets: {', '.join(data) or 'none (add a data section)'}")
    names = list(dict.fromkeys([r.name for r in rows] + [r.group for r in rows if r.group]))
    evals = [_eval_job(i, e, data, names) for i, e in enumerate(raw.get("eval") or [])]
    names = [e.name for e in evals]
    require(len(set(names)) == len(names), "recipe eval entries must have distinct names (set `name:`)")
    bench = raw.get("bench")
    if bench is not None:
        bench = _mapping(bench, "bench")
        from expspan_cli.attention.bench import BENCH_OPTIONS

        check_known(bench, BENCH_OPTIONS, "bench")
        require("variants" in bench and "lengths" in bench, "recipe field bench needs variants and lengths")
    return Reproduction(name=name, title=str(raw.get("title", name)), description=str(raw.get("description", "")),
                        paper=_mapping(raw.get("paper", {}), "paper"),
                        resources=_mapping(raw.get("resources", {}), "resources"), data=data, model=model,
                        pretrain=pretrain, train_data=train_data, rows=rows, evals=evals, bench=bench,
                        source={k: v for k, v in raw.items() if k != "quick"} | {"quick": quick})


def read_recipe(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's mapping with `extends: OTHER.yaml` (relative to the recipe) resolved: this file's fields
    deep-merged on top of the other's (a list such as `grid` replaces the other's whole)."""
    from expspan_cli.config import read_yaml

    path = Path(path)
    require(path.resolve() not in seen, f"recipe {path} extends itself (through {', '.join(map(str, seen))})")
    raw = _mapping(read_yaml(path, "recipe"), str(path))
    base = raw.pop("extends", None)
    if base is None:
        return raw
    require(isinstance(base, str), f"recipe field extends must be a recipe path, got {base!r}")
    parent = path.parent / base
    require(parent.is_file(), f"recipe {path} extends {base}, which does not exist", hint=f"looked for {parent}")
    return deep_merge(read_recipe(parent, (*seen, path.resolve())), raw)


def load_reproduction(path: str | Path, quick: bool = False) -> Reproduction:
    return parse_reproduction(read_recipe(path), quick, str(path))
