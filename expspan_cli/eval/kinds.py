"""The registry of evaluation kinds, read by the recipe parser, the plan, the stages and the report: what each kind
takes in a recipe, what data it needs, how to run it, what it costs, and the values its record holds. Adding a kind
is one entry here plus its module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from expspan_cli.errors import require


@dataclass(frozen=True)
class Value:
    """One number of a record, in long form: `metric` at `x` (a length, distance bucket, "avg", or None)."""

    metric: str
    x: int | str | None
    value: Any
    n: int | None = None  # how many items it is the share of (recall: facts), where the record says


@dataclass(frozen=True)
class EvalKind:
    name: str
    options: tuple[str, ...]  # what a recipe entry may set (the rest is filled from the row and the run)
    data: str  # "required" | "optional" (ruler: the essay haystack) | "none"
    lengths: bool  # takes evaluation lengths
    run: Callable[..., Path]  # (model, data, out, attn, attn_params, quiet, **options) -> the record's path
    metrics: str  # the record's metrics key holding {length or task: value}
    numeric: bool  # those values are numbers (else mappings)
    values: Callable[[dict[str, Any]], list[Value]]  # a record's numbers, in table order
    tokens: Callable[[dict[str, Any]], int | None] = lambda options: None  # tokens processed (plan's cost)
    check: Callable[[dict[str, Any], str], None] = lambda options, where: None  # deeper checks of a recipe entry


def _numeric_order(items: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(items.items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0))


def _x(key: str) -> int | str:
    return int(key) if key.isdigit() else key


# --- pg19 (perplexity by length) ---
def _run_pg19(model: str, data: str | None, out: Path, attn: str, attn_params: dict, quiet: bool, **options: Any):
    from expspan_cli.eval.pg19 import evaluate_pg19

    return evaluate_pg19(model, data, out=out, attn=attn, attn_params=attn_params, quiet=quiet, **options)


def _pg19_values(record: dict[str, Any]) -> list[Value]:
    return [Value("PPL", _x(k), v) for k, v in _numeric_order(record["metrics"].get("ppl", {}))]


def _pg19_tokens(options: dict[str, Any]) -> int | None:
    lengths, n_tokens = options.get("lengths") or [], options.get("max_tokens")
    if not n_tokens:
        return None
    if options.get("protocol") == "strided":  # windows of n advancing by the stride (default n / 2)
        return sum(n_tokens * n // (options.get("stride") or n // 2) for n in lengths)
    return sum(max(0, n_tokens - n) // 256 * n for n in lengths)  # longlora: a window every 256 tokens


# --- ruler ---
def _run_ruler(model: str, data: str | None, out: Path, attn: str, attn_params: dict, quiet: bool, **options: Any):
    from expspan_cli.eval.ruler.run import evaluate_ruler

    return evaluate_ruler(model, out=out, data=data, attn=attn, attn_params=attn_params, quiet=quiet, **options)


def _ruler_values(record: dict[str, Any]) -> list[Value]:
    """The average by length, with n = the samples it averages (per task times tasks) where the record says."""
    metrics, config = record["metrics"], record.get("config") or {}
    samples, tasks = config.get("samples"), config.get("tasks")
    n = samples * len(tasks) if isinstance(samples, int) and isinstance(tasks, list) and tasks else None
    out = [Value("RULER", _x(k), v, n) for k, v in _numeric_order(metrics.get("average", {}))]
    if "average_all_lengths" in metrics:
        out.append(Value("RULER", "avg", metrics["average_all_lengths"]))
    return out


def _ruler_tokens(options: dict[str, Any]) -> int:
    from expspan_cli.eval.ruler import resolve_tasks

    return sum(options.get("lengths") or []) * options.get("samples", 500) * len(resolve_tasks(options.get("tasks")))


def _ruler_check(options: dict[str, Any], where: str) -> None:
    from expspan_cli.eval.ruler import resolve_tasks

    resolve_tasks(options.get("tasks"))
    tokens = options.get("answer_tokens")
    require(tokens is None or (isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0),
            f"recipe field {where}.answer_tokens must be a positive number of tokens, got {tokens!r}")


# --- recall (synthetic facts by distance) ---
def _run_recall(model: str, data: str | None, out: Path, attn: str, attn_params: dict, quiet: bool, **options: Any):
    from expspan_cli.eval.recall import evaluate_recall

    return evaluate_recall(model, data, out=out, attn=attn, attn_params=attn_params, quiet=quiet, **options)


def _recall_values(record: dict[str, Any]) -> list[Value]:
    by_length = record["metrics"].get("by_length", {})
    out = []
    for length, result in by_length.items():
        metric = "Recall" if len(by_length) == 1 else f"Recall@{length}"
        counts = result.get("counts") or {}
        out += [Value(metric, bucket, v, counts.get(bucket)) for bucket, v in result.get("by_distance", {}).items()]
        out.append(Value(metric, "all", result.get("accuracy"), sum(counts.values()) if counts else None))
    return out


# --- harness (lm-eval tasks) ---
HARNESS_METRICS = ("acc,none", "contains,none", "f1,none", "exact_match,none", "em,none", "score,none")
SHORT_NAMES = {"arc_easy": "ARC-E", "arc_challenge": "ARC-C", "hellaswag": "Hella.", "lambada_openai": "LAMB.",
               "piqa": "PIQA", "winogrande": "WG", "swde": "SWDE", "scrolls_qasper": "SQA",
               "scrolls_narrativeqa": "SNQA"}


def _run_harness(model: str, data: str | None, out: Path, attn: str, attn_params: dict, quiet: bool, **options: Any):
    from expspan_cli.eval.harness import evaluate_harness

    return evaluate_harness(model, out=out, attn=attn, attn_params=attn_params, **options)


def _harness_value(result: dict[str, Any]) -> float | None:
    """lm-eval's metric of a task as the paper's columns report it (accuracy; exact/F1 for the long tasks), in %."""
    for key in HARNESS_METRICS:
        if key in result:
            return 100.0 * float(result[key])
    other = [v for k, v in result.items() if "stderr" not in k]
    return 100.0 * float(other[0]) if other else None


def _harness_values(record: dict[str, Any]) -> list[Value]:
    out = []
    for task, result in record["metrics"].get("results", {}).items():
        value = _harness_value(result)
        if value is not None:
            out.append(Value(SHORT_NAMES.get(task, task), None, value))
    if len(out) > 1:
        out.append(Value("Avg.", None, sum(v.value for v in out) / len(out)))
    return out


def _harness_check(options: dict[str, Any], where: str) -> None:
    require(isinstance(options.get("tasks"), str), f"recipe field {where}.tasks is required (lm-eval task names or "
            "the presets short / long)")


EVAL_KINDS = {kind.name: kind for kind in (
    EvalKind("pg19", ("lengths", "split", "protocol", "stride", "batch_size", "max_tokens", "allow_extrapolation",
                      "device"), "required", True, _run_pg19, "ppl", True, _pg19_values, _pg19_tokens),
    EvalKind("ruler", ("lengths", "tasks", "samples", "seed", "split", "qa_files", "inspect_retrieval", "oracle",
                       "cache_dir", "allow_extrapolation", "answer_tokens", "device"), "optional", True, _run_ruler, "average", True,
             _ruler_values, _ruler_tokens, _ruler_check),
    EvalKind("recall", ("lengths", "split", "max_docs", "edges", "allow_extrapolation", "device"), "required", True,
             _run_recall, "by_length", False, _recall_values),
    EvalKind("harness", ("tasks", "include_path", "num_fewshot", "limit", "batch_size", "max_length", "seed",
                         "device"), "none", False, _run_harness, "results", False, _harness_values,
             check=_harness_check),
)}
