"""Eval records: one JSON file per evaluation, `<out>/<kind>-<timestamp>.json`, never overwritten."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from expspan_cli.runs import atomic_write_json, provenance

def record_path(out: str | Path, kind: str) -> Path:
    """A record name not taken yet: the UTC timestamp, with -2, -3, ... appended when two land in one second."""
    out = Path(out)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path, n = out / f"{kind}-{stamp}.json", 1
    while path.exists():
        n += 1
        path = out / f"{kind}-{stamp}-{n}.json"
    return path


def write_record(out: str | Path, kind: str, metrics: dict[str, Any], config: dict[str, Any], model: dict[str, Any],
                 adapter: str | None, attention: dict[str, Any], wall_time_s: float) -> Path:
    record = {"kind": kind, "metrics": metrics, "config": config, "model": model, "adapter": adapter,
              "attention": attention, "provenance": provenance(), "wall_time_s": round(wall_time_s, 3)}
    return atomic_write_json(record_path(out, kind), record)


# The headline metric of each kind: (metrics key holding {length or task: value}, its name on screen).
HEADLINES = {"pg19": ("ppl", "perplexity"), "recall": ("accuracy", "recall %"), "ruler": ("average", "RULER avg %")}


def score_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's scores as rows {metric, at, value}: the headline metric per length (per task for harness)."""
    metrics = record.get("metrics") or {}
    if record.get("kind") == "harness":
        rows = []
        for task, results in (metrics.get("results") or {}).items():
            for name, value in results.items():
                if "stderr" not in name and isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({"metric": f"{task} {name.split(',')[0]}", "at": "-", "value": value})
        return rows
    key, name = HEADLINES.get(record.get("kind"), (None, None))
    rows = [{"metric": name, "at": at, "value": value} for at, value in _by_length(metrics.get(key))]
    if record.get("kind") == "recall":  # the headline is by distance: a row per bucket, with its count of facts
        for at, result in _by_length(metrics.get("by_length")):
            counts = result.get("counts") or {}
            rows += [{"metric": f"recall % at distance {bucket} ({counts.get(bucket, 0)} facts)", "at": at,
                      "value": value} for bucket, value in (result.get("by_distance") or {}).items()]
    return rows


def _by_length(values: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Items of a {length: value} map in numeric order (records store the keys as sorted text)."""
    return sorted((values or {}).items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0))


def run_scores(run: Path, record_dirs: list[Path]) -> list[dict[str, Any]]:
    """One row per (record, score) among the evaluation records of `run` found under the run and `record_dirs`."""
    target = run.resolve()
    rows = []
    for directory in [run, *record_dirs]:
        for path in sorted(Path(directory).rglob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                spec = Path(str(record["model"]["spec"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not spec.exists() or spec.resolve() != target:
                continue
            attention = (record.get("attention") or {}).get("variant", "full")
            rows += [{"kind": record["kind"], "attention": attention, "metric": f"{r['metric']} at {r['at']}",
                      "value": r["value"]} for r in score_rows(record)]
    return rows
