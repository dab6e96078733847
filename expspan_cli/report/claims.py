"""The paper's headline claims, checked on our own table: each check says what it compared, the numbers, and
whether the claim holds, does not hold, or cannot be told from these records."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from expspan_cli.report.figures import series
from expspan_cli.report.frame import columns_where, fields
from expspan_cli.report.records import Plan
from expspan_cli.report.stats import pooled


@dataclass
class Check:
    claim: str
    verdict: str  # "holds" | "does not hold" | "cannot tell"
    evidence: str


def _rows_by_attention(plan: Plan) -> dict[str, str]:
    """attention variant -> row label, for the rows that fine-tune with HyLoRA (the paper's main comparison);
    'base' -> the non-fine-tuned row."""
    out: dict[str, str] = {}
    for row in plan.rows:
        if row.method is None:
            out.setdefault("base", row.label)
        elif row.method == "hylora":
            out.setdefault(row.attn or "se", row.label)
    return out


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}"


def _recall_beyond(frame: pd.DataFrame, bound: int, job: str) -> list[str]:
    """`job`'s recall columns (distance buckets `512-1024`, `>1024`) whose distances all lie beyond `bound` tokens."""
    spec = fields(frame)
    spec = spec[(spec["job"] == job) & (spec["metric"] == "Recall") & (spec["x"] != "all")]
    low = spec["x"].map(lambda b: int(b[1:]) if b.startswith(">") else int(b.split("-")[0]))
    return list(spec.loc[low >= bound, "column"])


def _recall_jobs(plan: Plan, frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(job, evaluation attention) of each recall job with columns that runs on every row: a job on some rows only
    compares nothing."""
    return [(job.name, job.attn) for job in plan.evals if job.kind == "recall" and job.rows is None
            and columns_where(frame, job=job.name, metric="Recall")]


def _pooled(frame: pd.DataFrame, rows: dict[str, str], job: str, xs: list, metric: str = "Recall"
            ) -> dict[str, tuple]:
    """attention -> (percent, low, high, items, seeds) pooled over the items of `xs` (recall: facts in distance
    buckets; RULER: samples at lengths): the seed mean's share, its 95 % Wilson interval over the items, and each
    seed's own share (empty for one seed); only for the rows whose records count their items."""
    if "results" not in frame.attrs:
        return {}
    per_seed = frame.attrs.get("per_seed")
    out = {}
    for a, label in rows.items():
        share = pooled(frame.attrs["results"], label, job, xs, metric)
        if share is None:
            continue
        seeds = [] if per_seed is None else sorted(s for s in per_seed.loc[per_seed["label"] == label, "seed"].unique()
                                                   if s is not None)
        by_seed = [pooled(per_seed[per_seed["seed"] == s], label, job, xs, metric) for s in seeds] \
            if len(seeds) > 1 else []
        out[a] = (*share, [b[0] for b in by_seed if b is not None])
    return out


def _buckets(frame: pd.DataFrame, cols: list[str]) -> list:
    spec = fields(frame).set_index("column")
    return [spec.loc[c, "x"] for c in cols]


def _pooled_verdict(fractions: dict[str, tuple], verdict: str, others: tuple[str, ...] = ("s2", "swa")) -> str:
    """'SE beats the others', read off the counts: it holds only when SE's 95 % interval clears each compared
    row's and, with seeds, every SE seed beats every seed of the compared rows; it does not hold only when some
    compared row's interval lies above SE's; anything between is not resolved by these counts."""
    if "se" not in fractions or verdict not in ("holds", "does not hold"):
        return verdict
    _, se_low, se_high, _, se_seeds = fractions["se"]
    compared = [fractions[a] for a in others if a in fractions]
    if verdict == "does not hold":
        return verdict if any(f[1] > se_high for f in compared) else "not resolved (95 % intervals overlap)"
    if any(f[2] >= se_low for f in compared):
        return "not resolved (95 % intervals overlap)"
    if se_seeds and any(f[4] and max(f[4]) >= min(se_seeds) for f in compared):
        return "not resolved (seed ranges overlap)"
    return verdict


def _tracks(se: float, full: float, fractions: dict[str, tuple]) -> str:
    """'SE tracks Full within 5 points': holds within 5 points; a larger gap does not hold only when the 95 %
    intervals separate (else these counts cannot tell the gap from noise)."""
    if abs(se - full) <= 5:
        return "holds"
    if {"se", "full"} <= set(fractions):
        (_, se_lo, se_hi, _, _), (_, full_lo, full_hi, _, _) = fractions["se"], fractions["full"]
        if se_hi >= full_lo and full_hi >= se_lo:
            return "not resolved (95 % intervals overlap)"
    return "does not hold"


def _pooled_text(rows: dict[str, str], fractions: dict[str, tuple]) -> str:
    def one(a: str, pct: float, lo: float, hi: float, n: int, seeds: list[float]) -> str:
        spread = f" (mean of {len(seeds)} seeds, {min(seeds):.1f}-{max(seeds):.1f} %)" if seeds else ""
        return f"{rows[a]} {pct:.1f} % [{lo:.1f}, {hi:.1f}] of {n}{spread}"

    return ", ".join(one(a, *f) for a, f in fractions.items())


def _shares(frame: pd.DataFrame, rows: dict[str, str], job: str, cols: list[str]
            ) -> tuple[dict[str, float], dict[str, tuple], str]:
    """Recall beyond a bound per attention: the share of the facts in `cols`' buckets (weighted by their counts,
    seed mean) where the records count facts, else the mean of the bucket columns; the counted fractions; the
    evidence text."""
    fractions = _pooled(frame, rows, job, _buckets(frame, cols))
    if fractions and set(fractions) == set(rows):
        return ({a: f[0] for a, f in fractions.items()}, fractions,
                f"share of the facts in {', '.join(cols)} recalled, 95 % Wilson interval, facts: "
                + _pooled_text(rows, fractions))
    means = {a: _mean(frame.loc[label, cols]) for a, label in rows.items()}
    return means, {}, f"recall accuracy (%) over {', '.join(cols)}: " + ", ".join(
        f"{rows[a]} {_fmt(v)}" for a, v in means.items())


def _recall_checks(rows: dict[str, str], frame: pd.DataFrame, pre: int | None, window: int | None,
                   job: str, attn: str = "full") -> list[Check]:
    checks = []
    none = " (no row recalls anything: the models never learned the skill, so no variant can differ)"
    if attn == "same":  # Table 2's setting: each row runs its own fine-tuning attention at inference
        cols = _recall_beyond(frame, window, job) if "se" in rows and window else []
        if not cols:
            return checks
        means, fractions, evidence = _shares(frame, rows, job, cols)
        others = [means[a] for a in ("s2", "swa") if a in means and not math.isnan(means[a])]
        if others and not math.isnan(means["se"]):
            checks.append(Check("Run with its own attention at inference, SE-Attn recalls facts beyond the window "
                                "better than S2-Attn and SW-Attn run with theirs",
                                _pooled_verdict(fractions, "holds" if all(means["se"] > o for o in others)
                                                else "does not hold"), evidence))
        return checks
    if "base" in rows and "full" in rows and pre and _recall_beyond(frame, pre, job):
        cols = _recall_beyond(frame, pre, job)
        pair = {a: rows[a] for a in ("base", "full")}
        means, _, evidence = _shares(frame, pair, job, cols)
        base, full = means["base"], means["full"]
        learned = bool(frame[columns_where(frame, job=job, metric="Recall")].fillna(0).to_numpy().any())
        checks.append(Check("Without fine-tuning, facts beyond the pre-training context are not recalled; "
                            "fine-tuning at the long context recovers them",
                            "cannot tell" if math.isnan(base) or math.isnan(full) or not learned else
                            "holds" if full > base + 5 else "does not hold", evidence + ("" if learned else none)))
    if "se" in rows and window and _recall_beyond(frame, window, job):
        cols = _recall_beyond(frame, window, job)
        means, fractions, evidence = _shares(frame, rows, job, cols)
        others = [means[a] for a in ("s2", "swa") if a in means and not math.isnan(means[a])]
        learned = any(v > 0 for v in means.values() if not math.isnan(v))
        checks.append(Check("SE-Attn fine-tuning recalls facts beyond the window better than S2-Attn and SW-Attn",
                            "cannot tell" if not others or math.isnan(means["se"]) or not learned else
                            _pooled_verdict(fractions, "holds" if all(means["se"] > o for o in others)
                                            else "does not hold"), evidence + ("" if learned else none)))
        if "full" in means and not math.isnan(means["full"]) and learned:
            pair = {a: rows[a] for a in ("se", "full")}
            _, _, pair_evidence = _shares(frame, pair, job, cols)
            checks.append(Check("SE-Attn tracks Full-Attn on recall beyond the window (within 5 points)",
                                _tracks(means["se"], means["full"], fractions), pair_evidence))
    return checks


def check_claims(plan: Plan | None, frame: pd.DataFrame) -> list[Check]:
    """The claims on the plan's contexts: pretrain (the pre-training context), finetune (the fine-tuning length),
    window (SW-Attn's)."""
    if plan is None:
        return []
    contexts = plan.contexts
    rows = _rows_by_attention(plan)
    checks: list[Check] = []
    nan_cells = frame.attrs.get("nan_cells", [])
    if nan_cells:
        checks.append(Check("Every evaluation gave a number", "does not hold", "NaN in " + ", ".join(
            f"{label} · {column}" for label, column in nan_cells) + "; claims that read them cannot tell"))
    ppl_lengths, ppl = series(frame, "PPL")
    pre, ft, window = contexts.get("pretrain"), contexts.get("finetune"), contexts.get("window")
    if "base" in rows and pre and ppl_lengths:
        at = [n for n in ppl_lengths if n <= pre]
        beyond = [n for n in ppl_lengths if n > pre]
        if at and beyond:
            base = ppl.loc[rows["base"]]
            short, long_ = base[at[-1]], base[beyond[-1]]
            ratio = long_ / short if short else math.nan
            verdict = "cannot tell" if math.isnan(ratio) else "holds" if ratio > 1.5 else "does not hold"
            checks.append(Check("The non-fine-tuned model collapses beyond its pre-training context",
                                verdict, f"{rows['base']}: PPL {_fmt(short)} at {at[-1]} (pre-training context) -> "
                                f"{_fmt(long_)} at {beyond[-1]} ({ratio:.1f}x; 'collapses' taken as > 1.5x)"))
    if {"se", "full"} <= set(rows) and ft and ppl_lengths:
        long_lengths = [n for n in ppl_lengths if n >= ft]
        gaps = {a: _mean(ppl.loc[rows[a], long_lengths] - ppl.loc[rows["full"], long_lengths])
                for a in ("se", "s2", "swa") if a in rows}
        if long_lengths and not math.isnan(gaps.get("se", math.nan)):
            others = {a: g for a, g in gaps.items() if a != "se" and not math.isnan(g)}
            tied = all(abs(g) < 0.005 for g in gaps.values())  # equal to the printed precision
            verdict = "cannot tell" if not others or tied else \
                "holds" if all(gaps["se"] <= g for g in others.values()) else "does not hold"
            checks.append(Check("SE-Attn's perplexity is the closest to Full-Attn's at and beyond the fine-tuning "
                                "length", verdict, "mean PPL gap to Full-Attn over " +
                                ", ".join(f"PPL {n}" for n in long_lengths) + ": " +
                                ", ".join(f"{rows[a]} {_fmt(g)}" for a, g in gaps.items())))
    for job, attn in _recall_jobs(plan, frame):
        checks += _recall_checks(rows, frame, pre, window, job, attn)
    ruler_lengths, ruler = series(frame, "RULER")
    if {"se", "full"} <= set(rows) and ruler_lengths and window:
        beyond = [n for n in ruler_lengths if n > window]
        means = {a: _mean(ruler.loc[label, beyond]) for a, label in rows.items() if beyond}
        if beyond and not all(math.isnan(v) for v in means.values()):
            evidence = f"mean RULER accuracy over lengths beyond the {window}-token window (" + \
                ", ".join(f"RULER {n}" for n in beyond) + "): " + \
                ", ".join(f"{rows[a]} {_fmt(v)}" for a, v in means.items())
            if all(v == 0 or math.isnan(v) for v in means.values()):
                checks.append(Check("SE-Attn beats S2-Attn and SW-Attn on RULER beyond the window", "cannot tell",
                                    evidence + " (every row scores 0: the task is out of reach of these models)"))
            else:
                job = fields(frame).query("metric == 'RULER' and plain")["job"].iloc[0]
                fractions = _pooled(frame, rows, job, beyond, "RULER")
                if fractions and set(fractions) == set(rows):  # samples counted: shares with intervals
                    means = {a: f[0] for a, f in fractions.items()}
                    evidence = (f"share of the RULER samples at lengths beyond the {window}-token window ("
                                + ", ".join(f"RULER {n}" for n in beyond) + ") answered, 95 % Wilson interval, "
                                "samples: " + _pooled_text(rows, fractions))
                se = means["se"]
                others = [means[a] for a in ("s2", "swa") if a in means and not math.isnan(means[a])]
                checks.append(Check("SE-Attn beats S2-Attn and SW-Attn on RULER beyond the window",
                                    _pooled_verdict(fractions, "holds" if others and all(se > o for o in others)
                                                    else "does not hold"), evidence))
                full = means["full"]
                checks.append(Check("SE-Attn tracks Full-Attn on RULER beyond the window (within 5 points)",
                                    _tracks(se, full, fractions),
                                    f"{rows['se']} {_fmt(se)} vs {rows['full']} {_fmt(full)}"))
    return checks
