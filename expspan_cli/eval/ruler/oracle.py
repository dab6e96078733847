"""An oracle that answers RULER prompts by reading them (no access to the stored answers): it proves every
generated prompt holds its answer, and gives the 100-point ceiling a model is measured against."""

from __future__ import annotations

import re
from collections import Counter

from expspan_cli.eval.ruler.tasks import CWE_TEMPLATE, FWE_TEMPLATE, VT_TEMPLATE, TaskSpec
from expspan_cli.errors import ExpspanError

_NEEDLE = re.compile(r"One of the special magic \w+ for (\S+) is: (\S+)\.")
_QUERY = re.compile(r"special magic \w+ for (.+) mentioned in the provided text\?\s*$")
_ASSIGN = re.compile(r"VAR (\w+) = (VAR (\w+)|\d+)")


def _last_section(text: str, template: str) -> str:
    """The real task: few-shot demonstrations come first, so the last copy of the instruction starts it."""
    return text[text.rfind(template[:40]):]


def answer_niah(text: str) -> str:
    keys = re.split(r", and |, ", _QUERY.search(text).group(1))
    found: dict[str, list[str]] = {}
    for key, value in _NEEDLE.findall(text):
        found.setdefault(key, []).append(value)
    return " ".join(v for k in keys for v in found.get(k, []))


def answer_vt(text: str) -> str:
    section = _last_section(text, VT_TEMPLATE)
    value = re.search(r"assigned the value (\d+) in the text above", section).group(1)
    holders: set[str] = set()
    for var, rhs, source in _ASSIGN.findall(section):  # chains are written in order, so one pass follows them
        if rhs == value or source in holders:
            holders.add(var)
    return " ".join(sorted(holders))


def answer_cwe(text: str) -> str:
    section = _last_section(text, CWE_TEMPLATE)
    listed = section.split("\n")[1]
    counts = Counter(re.findall(r"\d+\. (\S+)", listed))
    return " ".join(f"{i + 1}. {w}" for i, (w, _) in enumerate(counts.most_common(10)))


def answer_fwe(text: str) -> str:
    coded = text[len(FWE_TEMPLATE.split("{context}")[0]):text.rfind("\nQuestion:")]
    counts = Counter(w for w in coded.split() if w != "...")
    return " ".join(w for w, _ in counts.most_common(3))


ANSWERS = {"niah": answer_niah, "vt": answer_vt, "cwe": answer_cwe, "fwe": answer_fwe}


def oracle_answer(spec: TaskSpec, prompt_input: str) -> str:
    if spec.kind not in ANSWERS:
        raise ExpspanError(f"the oracle cannot answer {spec.name}: its answers need reading comprehension")
    return ANSWERS[spec.kind](prompt_input)
