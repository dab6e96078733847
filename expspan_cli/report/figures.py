"""Figures as PNG, drawn from the report's tables: RULER average vs length per row (Fig. 2), perplexity vs length,
RULER per task group (Fig. 8), and runtime / peak memory vs length per attention variant (Fig. 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from expspan_cli.report.frame import fields
from expspan_cli.report.stats import pooled


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def series(frame: pd.DataFrame, metric: str) -> tuple[list[int], pd.DataFrame]:
    """The comparison table's `metric` by length (of the first job of its kind): the lengths, and a frame of rows
    by length."""
    spec = fields(frame)
    spec = spec[(spec["metric"] == metric) & spec["plain"] & spec["x"].map(lambda x: isinstance(x, int))]
    spec = spec.sort_values("x", key=lambda xs: xs.astype(int))
    lengths = [int(x) for x in spec["x"]]
    return lengths, frame[list(spec["column"])].set_axis(lengths, axis=1)


def _save(plt: Any, fig: Any, ax: Any, path: Path) -> Path:
    """A one-panel figure's grid and legend, written as PNG."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _shows_nothing(values: pd.DataFrame | pd.Series) -> bool:
    """All missing, or all zero: a figure of it would be flat lines that say less than one sentence."""
    numbers = pd.to_numeric(pd.Series(values.to_numpy().ravel()), errors="coerce").dropna()
    return numbers.empty or bool((numbers == 0).all())


def _line_plot(path: Path, lengths: list[int], values: pd.DataFrame, ylabel: str, title: str, log_y: bool = False,
               marks: dict[str, int] | None = None) -> Path | None:
    if not lengths or _shows_nothing(values):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, row in values.iterrows():
        if not row.isna().all():
            ax.plot(lengths, row.values, marker="o", label=str(label))
    for name, x in (marks or {}).items():
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.annotate(name, (x, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right", fontsize=7,
                    color="grey")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    if log_y and values.max().max() > 3 * values.min().min():  # log only where the range calls for it
        ax.set_yscale("log")
    ax.set(xlabel="sequence length (tokens)", ylabel=ylabel, title=title)
    return _save(plt, fig, ax, path)


def ruler_average_figure(frame: pd.DataFrame, path: Path, marks: dict[str, int] | None = None) -> Path | None:
    lengths, values = series(frame, "RULER")
    return _line_plot(path, lengths, values, "RULER average accuracy (%)", "RULER average by length (cf. Fig. 2)",
                      marks=marks)


def ppl_figure(frame: pd.DataFrame, path: Path, marks: dict[str, int] | None = None,
               corpus: str | None = None) -> Path | None:
    lengths, values = series(frame, "PPL")
    return _line_plot(path, lengths, values, "perplexity", "PPL by evaluation length" + (f" ({corpus})" if corpus else ""),
                      log_y=True, marks=marks)


def ruler_groups_figure(groups: pd.DataFrame, path: Path) -> Path | None:
    if groups.empty or _shows_nothing(groups["accuracy"]):
        return None
    plt = _pyplot()
    names = list(dict.fromkeys(groups["group"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        part = groups[groups["group"] == name]
        for row in dict.fromkeys(part["row"]):
            line = part[part["row"] == row].sort_values("length")
            ax.plot(line["length"], line["accuracy"], marker="o", label=row)
        ax.set_xscale("log", base=2)
        ax.set_title(name)
        ax.set_xlabel("length")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("RULER by task group (cf. Fig. 8)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def recall_figure(frame: pd.DataFrame, path: Path) -> Path | None:
    """Recall by fact-to-question distance, one line per row, with 95 % Wilson intervals where facts are counted:
    the embedded default's headline (the first recall job's buckets)."""
    spec = fields(frame)
    spec = spec[(spec["metric"] == "Recall") & spec["plain"] & (spec["x"] != "all")]
    if spec.empty or _shows_nothing(frame[list(spec["column"])]):
        return None
    results = frame.attrs.get("results")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    buckets = list(spec["x"])
    for label in frame.index:
        values = frame.loc[label, list(spec["column"])].astype(float)
        if values.isna().all():
            continue
        low, high = [], []
        for bucket, value in zip(buckets, values):
            counted = None if results is None else pooled(results, label, spec["job"].iloc[0], [bucket])
            low.append(max(0.0, value - counted[1]) if counted else 0.0)
            high.append(max(0.0, counted[2] - value) if counted else 0.0)
        ax.errorbar(range(len(buckets)), values.to_numpy(), yerr=[low, high], marker="o", capsize=3, label=str(label))
    ax.set_xticks(range(len(buckets)), [f"{b} tokens" for b in buckets])
    ax.set(xlabel="distance from the fact to its question", ylabel="facts recalled (%)", ylim=(0, 100),
           title="Recall by distance (95 % Wilson intervals)")
    return _save(plt, fig, ax, path)


def bench_figure(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Runtime of one forward+backward and peak memory vs length, per variant (cf. Fig. 4)."""
    if not rows:
        return None
    plt = _pyplot()
    frame = pd.DataFrame(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for variant, part in frame.groupby("variant", sort=False):
        part = part.sort_values("length")
        left.plot(part["length"], part["fwd_bwd_s"] * 1e3, marker="o", label=variant)
        if "peak_mem_bytes" in part:
            right.plot(part["length"], part["peak_mem_bytes"] / 2**20, marker="o", label=variant)
    device = frame["device"].iloc[0] if "device" in frame else "unknown device"
    for ax, ylabel in ((left, "fwd+bwd time (ms)"), (right, "peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set(xlabel="sequence length", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"attention fwd+bwd, {device} (cf. Fig. 4)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
