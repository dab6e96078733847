"""Haystack text for RULER prompts: the `noise` sentence, an `essay` from local text (never downloaded) and `needle`
decoys. As in RULER, essays are measured and cut in words, while noise and decoy haystacks are whole units (lines);
needles are inserted at sentence / line starts."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from expspan_cli.errors import ExpspanError

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
# RULER samples essay needle depths from 40 evenly spaced percentages.
DEPTHS = tuple(round(100 * i / 39) for i in range(40))
# Cut points: whitespace and hyphens, so a uuid does not have to be taken whole.
_WORD = re.compile(r"[^\s-]+-*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass
class Filler:
    """A long run of haystack text; `take(n)` returns its first n pieces (words of prose, whole units otherwise) and
    the sentence / unit starts inside them."""

    text: str
    sep: str  # what joins a needle to its neighbours: "\n" between lines, " " inside prose
    ends: list[int]  # char offset just past each piece
    unit_starts: list[int]  # char offset of each sentence / line start

    @classmethod
    def from_units(cls, units: Iterable[str], sep: str, count: int) -> "Filler":
        taken = list(itertools.islice(units, count))
        starts = list(itertools.accumulate((len(u) + len(sep) for u in taken[:-1]), initial=0))
        return cls(sep.join(taken), sep, [s + len(u) for s, u in zip(starts, taken)], starts)

    @classmethod
    def from_prose(cls, prose: str, max_words: int) -> "Filler":
        """Prose repeated as needed (as RULER repeats its essays), split into sentences at '. ' + capital."""
        words = prose.split()
        if not words:
            raise ExpspanError("the essay haystack text is empty")
        text = " ".join(itertools.islice(itertools.cycle(words), max_words))
        ends = [m.end() for m in _WORD.finditer(text)]
        starts = [0] + [m.end() for m in _SENTENCE_END.finditer(text)]
        return cls(text, " ", ends, starts)

    def take(self, n: int) -> tuple[str, list[int]]:
        n = max(1, min(n, len(self.ends)))
        cut = self.ends[n - 1]
        return self.text[:cut], self.unit_starts[:bisect.bisect_left(self.unit_starts, cut)]


def draw_depths(rng: random.Random, k: int, units: bool) -> list[float]:
    """k needle depths in percent, drawn as RULER draws them: distinct values of DEPTHS in an essay; in a unit haystack
    a uniform position among the units (below 100: never after the last one), kept as a percentage so that a sample
    rebuilt at another size draws the same numbers."""
    return [100 * rng.random() for _ in range(k)] if units else rng.sample(DEPTHS, k)


def insert_needles(text: str, starts: list[int], sep: str, needles: list[str], depths: list[float]
                   ) -> tuple[str, list[int]]:
    """Insert needles[i] at the sentence / unit start nearest below depths[i] percent (after the last one only at 100);
    returns the text and each needle's char offset. Needles sharing a position keep the order of their depths, then
    their given order (variable chains rely on it)."""
    bounds, n = starts + [len(text)], len(starts)
    # min(): float rounding must not carry a depth below 100 past the last start
    spots = [bounds[n if d >= 100 else min(int(n * d / 100), n - 1)] for d in depths]
    order = sorted(range(len(needles)), key=lambda i: (spots[i], depths[i], i))
    pieces, offsets, prev, pos = [], [0] * len(needles), 0, 0
    for i in order:
        chunk = text[prev:spots[i]]
        pieces.append(chunk)
        pos += len(chunk)
        if spots[i] == len(text) and text:
            pieces.append(sep)
            pos += len(sep)
        offsets[i] = pos
        joined = needles[i] + (sep if spots[i] < len(text) else "")
        pieces.append(joined)
        pos += len(joined)
        prev = spots[i]
    pieces.append(text[prev:])
    return "".join(pieces), offsets


def read_essay_dir(path: str | Path) -> str:
    """All .txt files under path, in name order, as one text (the user's stand-in for RULER's essays)."""
    root = Path(path)
    files = sorted(root.rglob("*.txt")) if root.is_dir() else [root] if root.is_file() else []
    text = "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    if not text.strip():
        raise ExpspanError(f"no essay haystack text in {path}",
                           hint="--haystack takes a directory of .txt files (or one .txt file)")
    return text


def text_id(text: str) -> str:
    """A short digest naming a haystack's content (part of the sample cache key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
