"""The embedded default's corpus: long-recall documents, generated offline and deterministically from a seed.

Each document is essay-like filler with key-value facts ("The pin of Dara Vell is 4821.") stated at some point and
queried later ("Question: what is the pin of Dara Vell? Answer: 4821."). The value after "Answer:" can only be
predicted by recalling the fact, and the gap between the two is drawn from a distribution the caller controls, so
a run can put most recalls beyond the pre-training context and beyond a sliding window. docs/data.md says why.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from expspan_cli.data.ruler_format import NEEDLE, single_number_sample
from expspan_cli.data.sources import Corpus, Split
from expspan_cli.errors import require

GENERATOR_VERSION = 1  # bump when the text a seed produces changes, so old outputs are not taken as current

SPLITS = ("train", "validation", "test", "haystack")
DISTRIBUTIONS = ("loguniform", "uniform")
ANSWERS = ("value", "restate")  # "Answer: 4821." | "Answer: the pin of Dara Vell is 4821."

_ADJ = ("quiet", "narrow", "amber", "distant", "heavy", "patient", "restless", "silver", "crooked", "gentle",
        "hollow", "bright", "careful", "ancient", "humble", "stubborn", "pale", "crowded", "steady", "wild")
_NOUN = ("river", "lantern", "harbor", "orchard", "engine", "letter", "garden", "ladder", "market", "bridge",
         "window", "council", "mill", "wagon", "library", "meadow", "chimney", "ferry", "workshop", "valley")
_VERB = ("crossed", "repaired", "painted", "guarded", "measured", "followed", "carried", "described", "visited",
         "counted", "opened", "watched", "praised", "ignored", "remembered", "built", "sold", "mapped")
_ADV = ("slowly", "often", "rarely", "gladly", "quietly", "early", "again", "carefully", "suddenly", "openly")
_PLACE = ("Eastmoor", "Halden", "Brisk Hollow", "Tarn End", "Wellmouth", "Osterby", "Kell Ridge", "Marrow Bay")
_ROLE = ("the miller", "a clerk", "the old teacher", "two sailors", "the mayor", "a traveller", "the baker's son")
_TEMPLATES = (
    "The {adj} {noun} near {place} was {verb} {adv} by {role}.",
    "{Role} {verb} the {adj} {noun} and then the {noun2}.",
    "In the {adj} season, {role} {verb} every {noun} in {place}.",
    "Nobody in {place} {verb} the {noun} as {adv} as {role} did.",
    "It is said that the {noun} of {place} was once {adj}, though the {noun2} was {adj2}.",
    "When the {noun} grew {adj}, {role} {verb} the {noun2} {adv}.",
    "One {noun} was {adj} and another was {adj2}; {role} {verb} both.",
)
_ATTR = ("code", "pin", "key", "room", "ticket", "locker")
_SYL = ("ka", "ren", "dar", "vel", "mo", "sil", "tor", "ena", "bri", "lo", "quin", "the", "zar", "ni", "gal",
        "ost", "mer", "ula", "fen", "ri")


@dataclass(frozen=True)
class SyntheticSpec:
    """What a synthetic corpus holds; distances are in words (about 1.3 tokens a word with a bpe:2048 tokenizer,
    measured per run in the manifest)."""

    seed: int = 0
    documents: dict[str, int] = field(default_factory=lambda: {"train": 2000, "validation": 64, "test": 64,
                                                               "haystack": 8})
    doc_words: int = 1600
    facts: int = 8
    distance: tuple[int, int] = (32, 1400)
    distribution: str = "loguniform"
    haystack_words: int = 12000
    answer: str = "value"
    # The share of each split's documents written as runs of RULER niah_single samples (a needle in a short filler
    # haystack, RULER's question, answer prefix and answer), so a model pre-trained here learns RULER's format.
    ruler_share: float = 0.0
    ruler_words: tuple[int, int] = (10, 60)  # filler words around each sample's needle

    def validate(self) -> None:
        lo, hi = self.distance
        require(0 < lo <= hi, f"bad recall distance {lo}:{hi}", hint="--distance MIN:MAX with 0 < MIN <= MAX words")
        require(hi < self.doc_words, f"recall distance {hi} does not fit a {self.doc_words}-word document",
                hint="raise --doc-words or lower the --distance maximum")
        require(self.distribution in DISTRIBUTIONS, f"unknown distance distribution {self.distribution!r}",
                hint=f"one of {', '.join(DISTRIBUTIONS)}")
        require(self.answer in ANSWERS, f"unknown answer form {self.answer!r}", hint=f"one of {', '.join(ANSWERS)}")
        require(self.facts >= 1, "--facts must be at least 1")
        require(0 <= self.ruler_share <= 1, f"ruler_share must be in [0, 1], got {self.ruler_share}")
        require(0 < self.ruler_words[0] <= self.ruler_words[1], f"bad ruler_words {self.ruler_words}",
                hint="ruler_words: [MIN, MAX] filler words a sample, 0 < MIN <= MAX")
        for split, n in self.documents.items():
            require(split in SPLITS, f"unknown synthetic split {split!r}", hint=f"one of {', '.join(SPLITS)}")
            require(n >= 0, f"split {split!r} cannot have {n} documents")


def parse_distance(text: str) -> tuple[int, int]:
    """`MIN:MAX` words (validated with the rest of the spec)."""
    lo, sep, hi = text.partition(":")
    require(bool(sep) and lo.strip().isdigit() and hi.strip().isdigit(), f"bad recall distance {text!r}",
            hint="--distance MIN:MAX in words, e.g. 16:1200")
    return int(lo), int(hi)


def _rng(spec: SyntheticSpec, split: str, index: int) -> random.Random:
    # One generator per document: a document's text depends on (seed, split, index) only, so --max-books or a
    # larger split never changes the documents that were already there.
    return random.Random(f"{spec.seed}:{split}:{index}")


def _sentence(rng: random.Random) -> str:
    adj, adj2 = rng.sample(_ADJ, 2)
    noun, noun2 = rng.sample(_NOUN, 2)
    role = rng.choice(_ROLE)
    return rng.choice(_TEMPLATES).format(adj=adj, adj2=adj2, noun=noun, noun2=noun2, verb=rng.choice(_VERB),
                                         adv=rng.choice(_ADV), place=rng.choice(_PLACE), role=role,
                                         Role=role[0].upper() + role[1:])


def _filler(rng: random.Random, words: int) -> list[str]:
    out, count = [], 0
    while count < words:
        s = _sentence(rng)
        out.append(s)
        count += s.count(" ") + 1
    return out


def _name(rng: random.Random) -> str:
    def word() -> str:
        return "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 3))).capitalize()

    return f"{word()} {word()}"


def _distance(rng: random.Random, spec: SyntheticSpec) -> int:
    lo, hi = spec.distance
    if spec.distribution == "uniform":
        return rng.randint(lo, hi)
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def recall_document(spec: SyntheticSpec, split: str, index: int) -> dict[str, Any]:
    """One long-recall document: `text`, `title`, and `recalls` (per fact: key, value, the character offsets of
    the value where it is stated and where it is asked for, and the distance in words between them)."""
    rng = _rng(spec, split, index)
    sentences = _filler(rng, spec.doc_words)
    starts = [0]
    for s in sentences:
        starts.append(starts[-1] + s.count(" ") + 1)  # word offset where each sentence begins
    inserts: list[tuple[int, int, str, str, str]] = []  # (sentence slot, order, kind, key, value)
    keys: set[str] = set()
    for _ in range(spec.facts):
        key = f"{rng.choice(_ATTR)} of {_name(rng)}"
        if key in keys:
            continue
        keys.add(key)
        value = str(rng.randint(1000, 9999))
        gap = _distance(rng, spec)
        first = rng.randint(0, spec.doc_words - gap)
        fact_slot = next(i for i, w in enumerate(starts) if w >= first)
        query_slot = next((i for i, w in enumerate(starts) if w >= first + gap), len(sentences))
        inserts += [(fact_slot, 0, "fact", key, value), (max(query_slot, fact_slot), 1, "query", key, value)]
    by_slot: dict[int, list[tuple[int, str, str, str]]] = {}
    for slot, order, kind, key, value in sorted(inserts):
        by_slot.setdefault(slot, []).append((order, kind, key, value))
    parts: list[str] = []
    pos = 0  # character offset of the next part (parts are joined by single spaces)
    words = 0
    found: dict[str, dict[str, Any]] = {}
    for slot in range(len(sentences) + 1):
        for _, kind, key, value in by_slot.get(slot, []):
            if kind == "fact":
                part = f"The {key} is {value}."
                at = part.index(value)
                found[key] = {"key": key, "value": value, "fact_char": pos + at,
                              "fact_word": words + part[:at].count(" ")}
            else:
                restate = f"the {key} is " if spec.answer == "restate" else ""
                part = f"Question: what is the {key}? Answer: {restate}{value}."
                at = part.rindex(value)
                found[key].update(answer_char=pos + at,
                                  distance_words=words + part[:at].count(" ") - found[key].pop("fact_word"))
            parts.append(part)
            pos += len(part) + 1
            words += part.count(" ") + 1
        if slot < len(sentences):
            parts.append(sentences[slot])
            pos += len(sentences[slot]) + 1
            words += sentences[slot].count(" ") + 1
    return {"title": f"{split} record {index}", "text": " ".join(parts), "recalls": list(found.values())}


def _is_ruler(spec: SyntheticSpec, split: str, index: int) -> bool:
    # Its own generator, so a share of 0 leaves every recall document exactly as it was.
    return spec.ruler_share > 0 and random.Random(f"{spec.seed}:{split}:{index}:ruler").random() < spec.ruler_share


def ruler_document(spec: SyntheticSpec, split: str, index: int) -> dict[str, Any]:
    """About doc_words words of RULER niah_single samples: each states one special magic number (7 digits) for a
    hyphenated key at a random sentence of its filler, then asks for it in RULER's words. The keys come from this
    corpus's word lists, not RULER's, so the evaluation's keys are new to the model."""
    rng = _rng(spec, split, index)
    samples, words = [], 0
    while words < spec.doc_words:
        key = f"{rng.choice(_ADJ)}-{rng.choice(_NOUN)}"
        value = str(rng.randint(10 ** 6, 10 ** 7 - 1))
        sentences = _filler(rng, rng.randint(*spec.ruler_words))
        sentences.insert(rng.randint(0, len(sentences)), NEEDLE.format(type_v="numbers", key=key, value=value))
        samples.append(single_number_sample(key, value, " ".join(sentences)))
        words += samples[-1].count(" ") + 1
    return {"title": f"{split} ruler {index}", "text": "\n\n".join(samples), "recalls": []}


def haystack_document(spec: SyntheticSpec, index: int) -> dict[str, Any]:
    """Filler only, in paragraphs: an essay-like haystack for RULER-style needle tasks (no facts to collide)."""
    rng = _rng(spec, "haystack", index)
    sentences = _filler(rng, spec.haystack_words)
    paragraphs = [" ".join(sentences[i:i + 8]) for i in range(0, len(sentences), 8)]
    return {"title": f"essay {index}", "text": "\n\n".join(paragraphs)}


def locate_recalls(docs: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Add token positions to each recall (`fact_token`, `answer_token`: the token holding the value's first
    character; `distance_tokens` between them) so evaluation can score exactly the recalled tokens. Returns the
    distances. Needs a fast tokenizer (character offsets); others leave the recalls as they are."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return []
    distances = []
    for doc, enc in zip(docs, backend.encode_batch([d["text"] for d in docs], add_special_tokens=False)):
        for r in doc.get("recalls", []):
            r["fact_token"], r["answer_token"] = enc.char_to_token(r["fact_char"]), enc.char_to_token(r["answer_char"])
            r["distance_tokens"] = r["answer_token"] - r["fact_token"]
            distances.append(r["distance_tokens"])
    return distances


def synthetic_corpus(spec: SyntheticSpec, splits: list[str] | None = None) -> Corpus:
    spec.validate()
    splits = splits or [s for s, n in spec.documents.items() if n > 0]
    for s in splits:
        require(s in spec.documents, f"unknown synthetic split {s!r}", hint=f"one of {', '.join(spec.documents)}")

    def split_of(name: str) -> Split:
        def read() -> Iterator[dict[str, Any]]:
            for i in range(spec.documents[name]):
                yield haystack_document(spec, i) if name == "haystack" else \
                    ruler_document(spec, name, i) if _is_ruler(spec, name, i) else recall_document(spec, name, i)

        return Split(name, read, documents=spec.documents[name])

    options = {**asdict(spec), "distance": list(spec.distance), "generator_version": GENERATOR_VERSION}
    if not spec.ruler_share:  # a corpus without RULER samples keeps the fingerprint it had before they existed
        options = {k: v for k, v in options.items() if k not in ("ruler_share", "ruler_words")}
    else:
        options["ruler_words"] = list(spec.ruler_words)
    fingerprint = hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:16]
    return Corpus("synthetic", f"synthetic:seed={spec.seed}", fingerprint, {s: split_of(s) for s in splits}, options,
                  annotate=locate_recalls)
