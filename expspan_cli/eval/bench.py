"""RULER sample generation speed: the paper's 11 tasks at a length, timed per task with a fast tokenizer
(lm-eval users report ~15 minutes for RULER sample generation; target here: 100 x 11 at 16K in under 60 s)."""

from __future__ import annotations

import random
import time
from typing import Any

from expspan_cli.eval.ruler import resolve_tasks
from expspan_cli.eval.ruler.generate import Generator
from expspan_cli.eval.ruler.haystack import NOISE, read_essay_dir
from expspan_cli.eval.ruler.wordlist import ADJECTIVES, NOUNS, VERBS


def _generated_essay(sentences: int = 3000, seed: int = 0) -> str:
    rng, words = random.Random(seed), (ADJECTIVES + NOUNS + VERBS).split()
    return " ".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 18))).capitalize() + "."
                    for _ in range(sentences))


def bench_ruler(lengths: list[int], samples: int = 100, tokenizer: str | None = None, essay: str | None = None,
                tasks: str | None = None, seed: int = 42) -> list[dict[str, Any]]:
    """One row per (task, length) with seconds and samples/s, plus a row per length for all tasks together.
    Default tokenizer: a byte-level BPE of 32000 tokens trained here on the essay text (no download)."""
    from expspan_cli.data.tokenizer import load_tokenizer, train_bpe

    text = read_essay_dir(essay) if essay else _generated_essay()
    tok = load_tokenizer(tokenizer) if tokenizer else train_bpe(32000, iter([text, NOISE * 20]))
    name = tokenizer or "bpe:32000 (trained on the essay text)"
    rows = []
    for length in lengths:
        total = 0.0
        for spec in resolve_tasks(tasks):
            t0 = time.perf_counter()
            gen = Generator(spec, tok, length, seed, essay=text)
            made = [gen.sample(i) for i in range(samples)]
            seconds = time.perf_counter() - t0
            total += seconds
            rows.append({"task": spec.name, "length": length, "samples": samples, "seconds": round(seconds, 3),
                         "samples_per_s": round(samples / seconds, 1), "tokenizer": name,
                         "max_slack_tokens": max(length - s["length"] for s in made)})
        rows.append({"task": "all", "length": length, "samples": samples * len(resolve_tasks(tasks)),
                     "seconds": round(total, 3), "target_seconds": 60, "tokenizer": name})
    return rows
