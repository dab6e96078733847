"""RULER's scorers, with upstream semantics: predictions are stripped and control characters become newlines;
`string_match_all` credits the fraction of references found in a prediction, `string_match_part` credits a
prediction fully when any reference is found (QA references are paraphrases). Matching is case-insensitive."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess(prediction: str) -> str:
    return _CONTROL.sub("\n", prediction.strip()).strip()


def match_all(prediction: str, references: list[str]) -> float:
    pred = postprocess(prediction).lower()
    return sum(r.lower() in pred for r in references) / len(references)


def match_part(prediction: str, references: list[str]) -> float:
    pred = postprocess(prediction).lower()
    return float(any(r.lower() in pred for r in references))


METRICS = {"string_match_all": match_all, "string_match_part": match_part}


def score(metric: str, predictions: list[str], references: list[list[str]]) -> float:
    """The task score in percent: the mean of per-sample scores times 100."""
    fn = METRICS[metric]
    return 100.0 * sum(fn(p, r) for p, r in zip(predictions, references)) / max(1, len(predictions))
