"""RULER's qa_1 / qa_2 from local SQuAD v2 dev and HotpotQA dev-distractor JSON files (never downloaded): a question's
gold documents are mixed with distractors (same-article paragraphs first for SQuAD) up to the length budget."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expspan_cli.errors import ExpspanError


@dataclass
class QAData:
    questions: list[dict[str, Any]]  # {"query", "outputs": [answers], "context": [doc ids], "more": [doc ids]}
    docs: list[str]

    def documents_for(self, item: dict[str, Any], count: int, rng: random.Random) -> list[str]:
        gold, more = list(item["context"]), [i for i in item.get("more", []) if i not in item["context"]]
        others = [i for i in range(len(self.docs)) if i not in set(gold) | set(more)]
        rng.shuffle(more)
        rng.shuffle(others)
        chosen = (gold + more + others)[:max(count, len(gold))]
        while len(chosen) < count:  # more documents than the file holds: repeat them, as RULER does
            chosen += chosen[:count - len(chosen)]
        picked = [self.docs[i] for i in chosen]
        random.Random(rng.random()).shuffle(picked)
        return picked


def _load(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExpspanError(f"QA file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ExpspanError(f"QA file {path} is not JSON: {err}") from None


def read_squad(path: str | Path) -> QAData:
    """SQuAD v2 dev JSON; unanswerable questions are skipped (RULER does the same)."""
    data = _load(path)
    try:
        docs = sorted({p["context"] for d in data["data"] for p in d["paragraphs"]})
        ids = {c: i for i, c in enumerate(docs)}
        questions = []
        for article in data["data"]:
            siblings = [ids[p["context"]] for p in article["paragraphs"]]
            for para in article["paragraphs"]:
                for q in para["qas"]:
                    if not q.get("is_impossible", False) and q["answers"]:
                        questions.append({"query": q["question"], "outputs": [a["text"] for a in q["answers"]],
                                          "context": [ids[para["context"]]], "more": siblings})
    except (KeyError, TypeError) as err:
        raise ExpspanError(f"{path} is not a SQuAD v2 JSON file (missing {err})") from None
    return _checked(QAData(questions, docs), path)


def read_hotpotqa(path: str | Path) -> QAData:
    """HotpotQA dev-distractor JSON: every paragraph of a question's context is one of its gold documents."""
    data = _load(path)
    try:
        def doc(title: str, sents: list[str]) -> str:
            return f"{title}\n{''.join(sents)}"
        docs = sorted({doc(t, s) for d in data for t, s in d["context"]})
        ids = {c: i for i, c in enumerate(docs)}
        questions = [{"query": d["question"], "outputs": [d["answer"]],
                      "context": [ids[doc(t, s)] for t, s in d["context"]]} for d in data]
    except (KeyError, TypeError, ValueError) as err:
        raise ExpspanError(f"{path} is not a HotpotQA JSON file ({err})") from None
    return _checked(QAData(questions, docs), path)


def _checked(data: QAData, path: str | Path) -> QAData:
    if not data.questions:
        raise ExpspanError(f"{path} holds no answerable questions")
    return data


READERS = {"squad": read_squad, "hotpotqa": read_hotpotqa}
