"""The RULER task table: upstream's templates, answer prefixes and tokens to generate, with the paper's settings
(paper.md §4.4 and Table 10; RULER's synthetic.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from expspan_cli.errors import ExpspanError

VT_TEMPLATE = ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
               "Question: Find all variables that are assigned the value {query} in the text above.")
VT_PREFIX = (" Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
             "assigned the value {query}, they are: ")
CWE_TEMPLATE = ("Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
                "ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above "
                "list?")
CWE_PREFIX = " Answer: The top 10 words that appear most often in the list are:"
FWE_TEMPLATE = ("Read the following coded text and track the frequency of each coded word. Find the three most "
                "frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore "
                "the dots '....'. What are the three most frequently appeared words in the above coded text?")
FWE_PREFIX = " Answer: According to the coded text above, the three most frequently appeared words are:"
QA_TEMPLATE = ("Answer the question based on the given documents. Only give me the answer and do not output any other "
               "words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given "
               "documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}")
QA_PREFIX = " Answer:"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # niah | vt | cwe | fwe | qa
    tokens_to_generate: int
    metric: str  # string_match_all | string_match_part
    args: dict[str, Any] = field(default_factory=dict)


def _niah(name: str, haystack: str, key: str = "words", value: str = "numbers", k: int = 1, v: int = 1,
          q: int = 1) -> TaskSpec:
    return TaskSpec(name, "niah", 128, "string_match_all",
                    dict(haystack=haystack, type_k=key, type_v=value, num_k=max(k, q), num_v=v, num_q=q))


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    _niah("niah_single_1", "noise"),
    _niah("niah_single_2", "essay"),
    _niah("niah_single_3", "essay", value="uuids"),
    _niah("niah_multikey_1", "essay", k=4),
    _niah("niah_multikey_2", "needle"),
    _niah("niah_multikey_3", "needle", key="uuids", value="uuids"),
    _niah("niah_multivalue", "essay", v=4),
    _niah("niah_multiquery", "essay", q=4),
    TaskSpec("vt", "vt", 30, "string_match_all", dict(num_chains=1, num_hops=4)),
    TaskSpec("cwe", "cwe", 120, "string_match_all", dict(freq_cw=30, freq_ucw=3, num_cw=10)),
    TaskSpec("fwe", "fwe", 50, "string_match_all", dict(alpha=2.0, coded_wordlen=6)),
    TaskSpec("qa_1", "qa", 32, "string_match_part", dict(dataset="squad")),
    TaskSpec("qa_2", "qa", 32, "string_match_part", dict(dataset="hotpotqa")),
)}

PAPER_TASKS = tuple(name for name in TASKS if not name.startswith("qa_"))
# The paper's reporting groups (paper.md §4.4); "Average" is the mean over all tasks run.
GROUPS = {
    "NIAH-S": ("niah_single_1", "niah_single_2", "niah_single_3"),
    "NIAH-M": ("niah_multikey_1", "niah_multikey_2", "niah_multikey_3"),
    "NIAH-M-QV": ("niah_multivalue", "niah_multiquery"),
    "VT": ("vt",),
    "CF-WE": ("cwe", "fwe"),
}


def resolve_tasks(names: str | list[str] | None) -> list[TaskSpec]:
    """Task specs from a comma list; None, "paper" or "all" give the paper's 11 tasks."""
    if names is None or names in ("paper", "all"):
        return [TASKS[n] for n in PAPER_TASKS]
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in items if n not in TASKS]
    if unknown:
        raise ExpspanError(f"unknown RULER task {unknown[0]!r}", hint=f"one of {', '.join(TASKS)} (or 'paper')")
    return [TASKS[n] for n in items]
