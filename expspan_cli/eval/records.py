"""Eval records: one JSON file per evaluation, `<out>/<kind>-<timestamp>.json`, never overwritten."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from expspan_cli.runs import atomic_write_json, provenance

KINDS = ("pg19", "ruler", "harness", "recall")


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
    assert kind in KINDS, kind
    record = {"kind": kind, "metrics": metrics, "config": config, "model": model, "adapter": adapter,
              "attention": attention, "provenance": provenance(), "wall_time_s": round(wall_time_s, 3)}
    return atomic_write_json(record_path(out, kind), record)
