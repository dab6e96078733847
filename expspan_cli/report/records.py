"""Reading what reproductions wrote: eval records, training manifests and benchmark rows, JSON only.

Nothing here reruns anything. What a recipe expects but a run directory lacks is listed as missing or partial;
a JSON file that does not parse (or lacks the fields a record has) is named in `problems` and left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expspan_cli.errors import ExpspanError, require
from expspan_cli.eval.kinds import EVAL_KINDS
from expspan_cli.runs import MANIFEST, PLAN_FILE, is_partial, read_manifest

RECORD_FIELDS = ("kind", "metrics", "config")


@dataclass
class Entry:
    row: str
    label: str
    job: str
    kind: str
    record: dict[str, Any]
    path: Path


@dataclass
class PlannedRow:
    name: str
    label: str
    method: str | None  # None: the non-fine-tuned row
    attn: str | None  # the fine-tuning attention
    group: str | None = None  # the table row this seed's run belongs to (None: a row of its own)
    seed: int | None = None
    span: int | None = None  # the most keys a query attends to while fine-tuning (None: not fine-tuned)


@dataclass
class PlannedJob:
    name: str
    kind: str
    attn: str  # "full" or "same" (the row's own attention)
    rows: list[str] | None  # None: every row
    data: str | None = None  # the recipe data it reads
    split: str | None = None


@dataclass
class Plan:
    """RUN/plan.json, as `expspan reproduce` wrote it (pipeline/plan.py: write_plan)."""

    name: str
    title: str
    description: str
    paper: dict[str, Any]
    rows: list[PlannedRow]
    evals: list[PlannedJob]
    contexts: dict[str, int]  # pretrain, finetune, window: the lengths the claims are about
    stages: list[dict[str, Any]]  # id, kind, path (in the run directory), row, job, skipped

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Plan":
        return cls(obj["name"], obj["title"], obj.get("description", ""), obj.get("paper") or {},
                   [PlannedRow(**r) for r in obj["rows"]], [PlannedJob(**j) for j in obj["evals"]],
                   obj.get("contexts") or {}, obj["stages"])


@dataclass
class Collection:
    plan: Plan | None  # the plan the run directories were made from (None: loose eval records)
    rows: list[tuple[str, str]]  # (name, label) in table order
    jobs: list[PlannedJob]  # in column order (loose records: one per kind)
    entries: list[Entry] = field(default_factory=list)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)  # row -> its finetune manifest
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage id -> manifest (wall times)
    bench: list[dict[str, Any]] = field(default_factory=list)  # attention benchmark rows
    missing: list[str] = field(default_factory=list)  # stage ids with no output
    partial: list[str] = field(default_factory=list)  # started, not complete
    problems: list[str] = field(default_factory=list)  # corrupted or unreadable JSON, named

    def get(self, row: str, job: str) -> Entry | None:
        return next((e for e in self.entries if e.row == row and e.job == job), None)

    def group_of(self, name: str) -> tuple[str, int | None]:
        """(the table row, the seed) of a run: a seeded run belongs to its grid entry's row."""
        planned = next((r for r in self.plan.rows if r.name == name), None) if self.plan else None
        return (planned.group, planned.seed) if planned and planned.group else (name, None)

    def table_rows(self) -> list[tuple[str, str]]:
        """(row, label) of the comparison table, in order: one per grid entry, its seeds merged."""
        return list(dict.fromkeys((self.group_of(name)[0], label) for name, label in self.rows))


def read_json(path: Path, problems: list[str]) -> Any:
    """The parsed JSON, or None with the file named in `problems` (never an exception, never a guess)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.append(f"{path}: unreadable JSON ({type(err).__name__}: {str(err).splitlines()[0][:80]}), skipped")
        return None


def _record_shape_error(obj: Any) -> str | None:
    """What makes `obj` no eval record the report can read (None: it is one)."""
    if not isinstance(obj, dict) or not all(k in obj for k in RECORD_FIELDS):
        return f"needs {', '.join(RECORD_FIELDS)}"
    if obj["kind"] not in EVAL_KINDS:
        return f"unknown kind {obj['kind']!r}"
    for name in ("metrics", "config", "model", "attention"):
        if obj.get(name) is not None and not isinstance(obj[name], dict):
            return f"field {name!r} is {type(obj[name]).__name__}, not a mapping"
    kind = EVAL_KINDS[obj["kind"]]
    values = obj["metrics"].get(kind.metrics, {})
    if not isinstance(values, dict):
        return f"metrics.{kind.metrics} is {type(values).__name__}, not a mapping"
    if kind.numeric and any(not isinstance(v, (int, float)) or isinstance(v, bool)
                            for v in values.values() if v is not None):
        return f"metrics.{kind.metrics} holds values that are not numbers"
    if not kind.numeric and any(not isinstance(v, dict) for v in values.values()):
        return f"metrics.{kind.metrics} holds entries that are not mappings"
    return None


def _valid_record(obj: Any, path: Path, problems: list[str]) -> bool:
    error = _record_shape_error(obj)
    if error is None:
        return True
    problems.append(f"{path}: not an eval record ({error}), skipped")
    return False


def _bench_rows(obj: Any) -> list[dict[str, Any]] | None:
    """Rows of `expspan bench attention --json` (a list) or of a reproduction's bench stage ({"rows": [...]})."""
    rows = obj.get("rows") if isinstance(obj, dict) else obj
    if isinstance(rows, list) and rows and all(isinstance(r, dict) and {"variant", "length", "fwd_bwd_s"} <= set(r)
                                               for r in rows):
        return rows
    return None


def _collect_run(run: Path, col: Collection) -> None:
    assert col.plan is not None
    for stage in col.plan.stages:
        if stage["skipped"]:
            continue
        path = run / stage["path"]
        manifest = read_manifest(path)
        if manifest is None:
            (col.partial if is_partial(path) else col.missing).append(stage["id"])
            continue
        if stage["id"] in col.stages:
            continue  # the same stage in two shards' directories: the first one counts
        col.stages[stage["id"]] = manifest
        row = stage["row"] or ""
        if stage["kind"] == "finetune":
            col.training[row] = manifest
        elif stage["kind"] == "bench":
            obj = read_json(path / manifest.get("record", "attention.json"), col.problems)
            col.bench += _bench_rows(obj) or []
        elif stage["kind"] == "eval":
            record_path = path / str(manifest.get("record"))
            record = read_json(record_path, col.problems)
            if record is not None and _valid_record(record, record_path, col.problems):
                label = dict(col.rows).get(row, row)
                col.entries.append(Entry(row, label, stage["job"], record["kind"], record, record_path))


def _adhoc_job(kind: str) -> PlannedJob:
    return PlannedJob(kind, kind, "full", None)


def _collect_loose(directory: Path, col: Collection) -> None:
    """Eval records written by `expspan eval` (no recipe): one row per model spec and attention."""
    for path in sorted(directory.rglob("*.json")):
        obj = read_json(path, col.problems)
        if obj is None:
            continue
        rows = _bench_rows(obj)
        if rows is not None:
            col.bench += rows
            continue
        if isinstance(obj, dict) and "metrics" not in obj and "kind" not in obj:
            continue  # a manifest or config, not a record
        if not _valid_record(obj, path, col.problems):
            continue
        spec = str((obj.get("model") or {}).get("spec", path.parent.name))
        attn = (obj.get("attention") or {}).get("variant", "full")
        row = Path(spec).name + ("" if attn == "full" else f" ({attn})")
        if row not in dict(col.rows):
            col.rows.append((row, row))
        if obj["kind"] not in [j.name for j in col.jobs]:
            col.jobs.append(_adhoc_job(obj["kind"]))
        if col.get(row, obj["kind"]) is None:
            col.entries.append(Entry(row, row, obj["kind"], obj["kind"], obj, path))


def _mark_random_bases(col: Collection) -> None:
    """Every row fine-tuned from random-init weights says so in its label, wherever the row is shown."""
    marked = {row for row, manifest in col.training.items() if manifest.get("random_base")}
    col.rows = [(name, f"{label} (random base)" if name in marked else label) for name, label in col.rows]
    labels = dict(col.rows)
    for entry in col.entries:
        entry.label = labels.get(entry.row, entry.label)


def collect(paths: list[str | Path]) -> Collection:
    """Everything the report shows, from reproduction run directories, folders of loose eval records, or bench JSON
    files; several run directories of one recipe (shards from several machines) are merged."""
    require(bool(paths), "no run directory given", hint="expspan report runs/tiny")
    problems: list[str] = []
    recipes = []
    for p in map(Path, paths):
        require(p.exists(), f"{p} does not exist")
        saved = p / PLAN_FILE
        require(not (p / "recipe.json").is_file() or saved.is_file() or (p / MANIFEST).is_file(),
                f"{p} is a reproduction run without its {PLAN_FILE}", hint=f"rerun `expspan reproduce RECIPE --out {p}`"
                ": stages already done are not rerun, and the plan is written first")
        if p.is_dir() and saved.exists():
            obj = read_json(saved, problems)
            if obj is not None:
                try:
                    recipes.append((p, Plan.from_json(obj)))
                except (KeyError, TypeError, AttributeError):
                    raise ExpspanError(f"{saved} is not a reproduction plan") from None
    names = {r.name for _, r in recipes}
    if len(names) > 1:
        raise ExpspanError(f"run directories of different recipes given ({', '.join(sorted(names))})",
                           hint="report one recipe at a time")
    recipe = recipes[0][1] if recipes else None
    col = Collection(recipe, [(r.name, r.label) for r in recipe.rows] if recipe else [],
                     list(recipe.evals) if recipe else [], problems=problems)
    for p in map(Path, paths):
        if any(p == run for run, _ in recipes):
            _collect_run(p, col)
        elif p.is_dir():
            _collect_loose(p, col)
        else:
            obj = read_json(p, col.problems)
            rows = _bench_rows(obj) if obj is not None else None
            if rows is None and obj is not None:
                col.problems.append(f"{p}: neither a run directory nor benchmark rows, skipped")
            col.bench += rows or []
    _mark_random_bases(col)
    # A stage complete in any shard's directory is neither missing nor partial.
    col.missing = sorted(set(col.missing) - set(col.stages), key=col.missing.index)
    col.partial = sorted(set(col.partial) - set(col.stages), key=col.partial.index)
    return col
