"""The README's main table: one line per comparison row with its attended span, recall by distance with 95 %
intervals, perplexity at 1x / 8x / 16x the pre-training context and RULER at the fine-tuning length (both
with 95 % Wilson intervals where their records count what they average); the comparison table keeps every number."""

from __future__ import annotations

import math

import pandas as pd

from expspan_cli.report.frame import fields
from expspan_cli.report.records import Plan
from expspan_cli.report.stats import wilson


def _span(plan: Plan, label: str) -> str:
    planned = next((r for r in plan.rows if r.label == label.removesuffix(" (random base)")), None)
    if planned is None or planned.span is None:
        return "—"
    return f"{planned.span:,}"


def _seeds(results: pd.DataFrame, label: str) -> int:
    part = results[results["label"] == label]
    return int(part["seeds"].max()) if not part.empty else 0


def _counts(results: pd.DataFrame, job: str, x: object) -> dict[str, object]:
    """label -> how many items (facts, samples) the `job` value at `x` averages."""
    part = results[(results["job"] == job) & (results["x"] == x)]
    return dict(zip(part["label"], part["n"]))


def _with_interval(value: object, n: object) -> str:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "—"
    if not isinstance(n, int) or n <= 0:
        return f"{value:.1f}"
    lo, hi = wilson(value / 100 * n, n)
    return f"{value:.1f} [{100 * lo:.0f}, {100 * hi:.0f}]"


def _plain(value: object) -> str:
    return "—" if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:.2f}"


def _times(length: int, pre: int | None) -> str:
    return f" ({length // pre}x)" if pre and length % pre == 0 else ""


def headline_table(frame: pd.DataFrame, plan: Plan | None) -> pd.DataFrame | None:
    """Text cells, at most about ten columns; None without a plan or a recall / PPL column to show."""
    if plan is None or frame.empty:
        return None
    spec = fields(frame)
    results = frame.attrs["results"]
    pre, ft = plan.contexts.get("pretrain"), plan.contexts.get("finetune")
    out = pd.DataFrame(index=frame.index)
    out["Span (keys)"] = [_span(plan, label) for label in frame.index]
    recall = spec[(spec["metric"] == "Recall") & spec["plain"] & (spec["x"] != "all")]
    for column, bucket in zip(recall["column"], recall["x"]):
        n = _counts(results, recall["job"].iloc[0], bucket)
        out[f"Recall {bucket}"] = [_with_interval(frame.loc[label, column], n.get(label)) for label in frame.index]
    ppl = spec[(spec["metric"] == "PPL") & spec["plain"] & spec["x"].map(lambda x: isinstance(x, int))]
    wanted = [x for x in (pre, ft, 2 * ft if ft else None) if x in set(ppl["x"])]
    for x in wanted:
        column = ppl.loc[ppl["x"] == x, "column"].iloc[0]
        out[f"PPL {x}{_times(x, pre)}"] = [_plain(v) for v in frame[column]]
    ruler = spec[(spec["metric"] == "RULER") & spec["plain"] & (spec["x"] == ft)]
    if not ruler.empty:
        n = _counts(results, ruler["job"].iloc[0], ft)
        out[f"RULER {ft}{_times(ft, pre)}"] = [_with_interval(frame.loc[label, ruler["column"].iloc[0]], n.get(label))
                                               for label in frame.index]
    if len(out.columns) == 1:
        return None
    out.index = [label if _seeds(results, label) <= 1 else f"{label} ({_seeds(results, label)} seeds)"
                 for label in frame.index]
    out.index.name = frame.index.name
    return out


def source_of(plan: Plan | None, kind: str) -> str | None:
    """The data and split the table's `kind` columns come from (its first job, as the table shows it)."""
    job = next((j for j in plan.evals if j.kind == kind), None) if plan else None
    return f"{job.data} data, {job.split} split" if job and job.data else None


def sources(plan: Plan | None) -> str:
    """Which data and split each kind of number comes from."""
    said = [(name, source_of(plan, kind)) for kind, name in (("recall", "Recall"), ("pg19", "PPL"), ("ruler", "RULER"))]
    return "; ".join(f"{name}: {where}" for name, where in said if where)


def seed_spread(frame: pd.DataFrame) -> pd.DataFrame | None:
    """lowest-highest over the seeds for the first recall and PPL jobs' columns; None when no row has two seeds."""
    results = frame.attrs["results"]
    if results.empty or results["seeds"].max() < 2:
        return None
    spec = fields(frame)
    spec = spec[spec["plain"] & spec["metric"].isin(["Recall", "PPL"])]
    out = pd.DataFrame(index=frame.index)
    for column, job, metric, x in zip(spec["column"], spec["job"], spec["metric"], spec["x"]):
        part = results[(results["job"] == job) & (results["metric"] == metric) & (results["x"] == x)]
        by_label = {line.label: line for line in part.itertuples(index=False)}
        digits = 1 if metric == "Recall" else 2
        out[column] = [f"{by_label[label].low:.{digits}f}-{by_label[label].high:.{digits}f}"
                       if label in by_label and by_label[label].seeds > 1 else "—" for label in frame.index]
    return out
