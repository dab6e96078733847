"""On-disk cache of generated RULER samples, keyed by (task, length, tokenizer, seed, count) plus the haystack and
generator version, so a rerun reads them back instead of generating them again."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from expspan_cli.runs import atomic_write_text

GENERATOR_VERSION = 2  # bump when a change to the generators would change the samples


def default_cache_dir() -> Path:
    return Path(os.environ.get("EXPSPAN_CACHE", Path.home() / ".cache" / "expspan")) / "ruler"


def cache_path(cache_dir: str | Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps({**key, "version": GENERATOR_VERSION}, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / f"{key['task']}-{key['length']}-{digest[:16]}.jsonl"


def cached(cache_dir: str | Path | None, key: dict[str, Any], make: Callable[[], list[dict]]) -> list[dict]:
    """The samples stored under key, or make() them and store them (one JSON line each, written atomically)."""
    if cache_dir is None:
        return make()
    path = cache_path(cache_dir, key)
    if path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    samples = make()
    atomic_write_text(path, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    return samples
