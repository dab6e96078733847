"""Fitting a prompt to a token budget with the model's own tokenizer.

Prompts grow monotonically with an integer size (words of haystack, list entries, documents). A binary search with
exact token counts finds the size once per task and length; each sample then starts from it and moves by the
measured tokens-per-unit rate, so most samples need one or two tokenizer calls instead of a search of their own."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from expspan_cli.errors import ExpspanError

Build = Callable[[int], str]
Count = Callable[[str], int]


@dataclass(frozen=True)
class Calibration:
    size: int  # largest size whose prompt fits the budget for the calibration sample
    rate: float  # tokens per unit of size around that point


def calibrate(build: Build, count: Count, budget: int, lo: int, hi: int) -> Calibration:
    """Binary search for the largest size in [lo, hi] whose prompt has at most `budget` tokens."""
    smallest, base = lo, count(build(lo))
    if base > budget:
        raise ExpspanError(f"even the smallest prompt has {base} tokens, more than the budget of {budget}",
                           hint="choose a longer --lengths value")
    best, best_tokens = lo, base
    while lo <= hi:
        mid = (lo + hi) // 2
        tokens = count(build(mid))
        if tokens <= budget:
            best, best_tokens, lo = mid, tokens, mid + 1
        else:
            hi = mid - 1
    rate = (best_tokens - base) / (best - smallest) if best > smallest else 1.0
    return Calibration(best, max(rate, 1e-3))


def fit(build: Build, count: Count, budget: int, start: int, rate: float, tolerance: int, min_size: int = 1,
        max_calls: int = 8) -> tuple[int, str, int]:
    """(size, prompt, tokens) with tokens <= budget, as close to it as `tolerance` when reachable within max_calls.

    Each step moves the size by the remaining token gap divided by `rate`; sizes known to overflow are never retried.
    """
    fits: tuple[int, str, int] | None = None
    too_big = math.inf
    size = start
    for _ in range(max_calls):
        text = build(size)
        tokens = count(text)
        if tokens <= budget:
            if fits is None or tokens > fits[2]:
                fits = (size, text, tokens)
            if budget - tokens <= tolerance:
                break
            nxt = size + max(1, int((budget - tokens) / rate))
        else:
            too_big = min(too_big, size)
            nxt = size - max(1, math.ceil((tokens - budget) / rate))
        nxt = max(fits[0] + 1 if fits else min_size, min(nxt, too_big - 1))
        if nxt >= too_big or nxt == size:
            break
        size = nxt
    while fits is None and size > min_size:  # past the call budget a fitting prompt is still required: shrink
        size = max(min_size, size - max(1, size // 50))
        text = build(size)
        tokens = count(text)
        if tokens <= budget:
            fits = (size, text, tokens)
    if fits is None:
        raise ExpspanError(f"no prompt fits {budget} tokens", hint="choose a longer --lengths value")
    return fits


class WordCounts:
    """A cheap stand-in for a tokenizer call: the sum of cached token counts of the prompt's whitespace-separated
    words (each counted with a leading space). Off by a few tokens at most joins; `fit_estimated` corrects for it."""

    def __init__(self, tokenizer: Any):
        # The Rust tokenizer directly when there is one: the Python wrapper costs more than the encoding here.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.encode = ((lambda texts: [len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False)])
                       if backend is not None else
                       (lambda texts: [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]))
        self.cache: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        words = text.split()
        missing = [w for w in set(words) if w not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.encode([" " + w for w in missing])))
        cache = self.cache
        return sum(cache[w] for w in words)


def fit_estimated(build: Build, count: Count, estimate: Count, budget: int, start: int, rate: float, tolerance: int,
                  bias: float, min_size: int = 1, max_checks: int = 3) -> tuple[int, str, int, float]:
    """`fit` driven by `estimate + bias`, each result checked with one exact `count`; a miss re-fits with the bias
    measured on it. Returns (size, prompt, exact tokens, bias) and falls back to exact fitting after max_checks."""
    size = start
    for _ in range(max_checks):
        def guess(text: str, b: float = bias) -> int:
            return round(estimate(text) + b)
        size, text, _ = fit(build, guess, budget, size, rate, tolerance, min_size)
        tokens = count(text)
        if tokens <= budget and budget - tokens <= tolerance:
            return size, text, tokens, bias
        bias = tokens - estimate(text)
    size, text, tokens = fit(build, count, budget, size, rate, tolerance, min_size)
    return size, text, tokens, bias
