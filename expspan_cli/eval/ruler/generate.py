"""RULER sample generators (niah, vt, cwe, fwe, qa) following upstream's rules, fitted to an exact token budget.

A sample's random draws come from its own `random.Random`, re-created on every build, so rebuilding it at another
haystack size changes only the amount of filler: keys, values, needle depths and chains stay the same."""

from __future__ import annotations

import functools
import itertools
import math
import random
import string
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from expspan_cli.data.ruler_format import NEEDLE, NIAH_PREFIX, NIAH_TEMPLATE, singular
from expspan_cli.eval.ruler import fit as fitting
from expspan_cli.eval.ruler import tasks as T
from expspan_cli.eval.ruler.haystack import NOISE, Filler, draw_depths, insert_needles
from expspan_cli.eval.ruler.qa import QAData
from expspan_cli.eval.ruler.wordlist import ADJECTIVES, NOUNS, VERBS
from expspan_cli.errors import ExpspanError

_ADJ, _NOUN = ADJECTIVES.split(), NOUNS.split()
_POOL = sorted(set(ADJECTIVES.split() + NOUNS.split() + VERBS.split()))
_ICL_BUDGET = 500  # RULER builds the vt demonstration with a 500-token budget


@dataclass
class Prompt:
    input: str
    answer_prefix: str
    outputs: list[str]
    needles: list[dict[str, Any]] = field(default_factory=list)  # {"offset": char in input, "text", "depth"}


def random_value(rng: random.Random, kind: str) -> str:
    if kind == "numbers":
        return str(rng.randint(10 ** 6, 10 ** 7 - 1))
    if kind == "words":
        return f"{rng.choice(_ADJ)}-{rng.choice(_NOUN)}"
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise ExpspanError(f"unknown needle type {kind!r}", hint="numbers, words or uuids")


def _format(template: str, context: str, **values: Any) -> tuple[str, int]:
    """template with its {context} filled, and the char offset where the context starts."""
    head, tail = template.split("{context}")
    head = head.format(**values)
    return head + context + tail.format(**values), len(head)


def _in_units(args: dict) -> bool:
    """Whether the haystack is made of whole units (noise sentences, decoy lines) rather than essay words."""
    return args.get("haystack", "noise") != "essay"


def niah(args: dict, rng: random.Random, size: int, filler: Filler | None) -> Prompt:
    type_v = args["type_v"]
    keys, values, needles = [], [], []
    for _ in range(args["num_k"]):
        keys.append(random_value(rng, args["type_k"]))
        values.append([random_value(rng, type_v) for _ in range(args["num_v"])])
        needles += [NEEDLE.format(type_v=type_v, key=keys[-1], value=v) for v in values[-1]]
    rng.shuffle(needles)
    depths = draw_depths(rng, len(needles), _in_units(args))
    asked = rng.sample(range(args["num_k"]), args["num_q"])
    queries = [keys[i] for i in asked]
    answers = [v for i in asked for v in values[i]]
    query = queries[0] if len(queries) == 1 else ", ".join(queries[:-1]) + ", and " + queries[-1]
    if filler is None:  # the "needle" haystack: `size` decoy needles for other keys, one per line
        taken = set(keys)
        decoys = (NEEDLE.format(type_v=type_v, key=k, value=random_value(rng, type_v))
                  for k in iter(lambda: random_value(rng, args["type_k"]), None) if k not in taken)
        filler = Filler.from_units(decoys, "\n", size)
    hay, starts = filler.take(size)
    context, offsets = insert_needles(hay, starts, filler.sep, needles, depths)
    template, prefix, shown_v = NIAH_TEMPLATE, NIAH_PREFIX, type_v
    if args["num_q"] * args["num_v"] == 1:
        template, prefix, shown_v = singular(template), singular(prefix), type_v[:-1]
    text, at = _format(template, context, type_needle_v=shown_v, query=query)
    return Prompt(text, prefix.format(type_needle_v=shown_v, query=query), answers,
                  [{"offset": at + o, "text": n, "depth": int(d)} for o, n, d in zip(offsets, needles, depths)])


def _chain(rng: random.Random, hops: int, letters: int, value: str) -> tuple[list[str], list[str]]:
    names: list[str] = []
    while len(names) < hops + 1:
        name = "".join(rng.choices(string.ascii_uppercase, k=letters))
        if name not in names:
            names.append(name)
    lines = [f"VAR {names[0]} = {value}"] + [f"VAR {names[j + 1]} = VAR {names[j]} " for j in range(hops)]
    return names, lines


def _vt_text(rng: random.Random, hops: int, letters: int, filler: Filler, size: int, units: bool
             ) -> tuple[str, int, list, str]:
    value = str(rng.randint(10000, 99999))
    names, lines = _chain(rng, hops, letters, value)
    depths = sorted(draw_depths(rng, len(lines), units))
    hay, starts = filler.take(size)
    context, offsets = insert_needles(hay, starts, filler.sep, lines, depths)
    text, at = _format(T.VT_TEMPLATE, context, query=value, num_v=hops + 1)
    needles = [{"offset": at + o, "text": t, "depth": int(d)} for o, t, d in zip(offsets, lines, depths)]
    return text, value, needles, names


def vt(args: dict, rng: random.Random, size: int, filler: Filler, icl_size: int) -> Prompt:
    hops = args["num_hops"]
    icl_text, icl_value, _, icl_names = _vt_text(rng, hops, 3, filler, icl_size, _in_units(args))
    demo = icl_text + T.VT_PREFIX.format(query=icl_value, num_v=hops + 1) + " " + " ".join(icl_names) + "\n"
    text, value, needles, names = _vt_text(rng, hops, 5, filler, size, _in_units(args))
    shift = len(demo) + 1
    for needle in needles:
        needle["offset"] += shift
    return Prompt(demo + "\n" + text, T.VT_PREFIX.format(query=value, num_v=hops + 1), names, needles)


def _pseudo_words(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """Made-up words for common-word lists longer than the shipped list (RULER switches lists there too)."""
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def _word_list(rng: random.Random, words: list[str], entries: int, num_cw: int, freq_cw: int, freq_ucw: int
               ) -> tuple[str, list[str]]:
    """A numbered list of `entries` words: num_cw words freq_cw times, the rest at most freq_ucw times."""
    rest = max(0, entries - num_cw * freq_cw)
    full, extra = divmod(rest, freq_ucw)
    common, uncommon = words[:num_cw], words[num_cw:num_cw + full + (1 if extra else 0)]
    listed = common * freq_cw + uncommon[:full] * freq_ucw + uncommon[full:] * extra
    rng.shuffle(listed)
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(listed)), common


def cwe(args: dict, rng: random.Random, size: int, long_form: bool) -> Prompt:
    num_cw = args["num_cw"]
    freq_cw, freq_ucw = (args["freq_cw"], args["freq_ucw"]) if long_form else (6, 1)
    shot = (40, 10, 3) if long_form else (20, 3, 1)
    pool = list(_POOL)
    rng.shuffle(pool)
    need = num_cw + math.ceil(max(0, size - num_cw * freq_cw) / freq_ucw) + 1
    if need > len(pool):
        pool += _pseudo_words(rng, need - len(pool), set(pool))
    demo_words = rng.sample(_POOL, shot[0])
    demo_ctx, demo_answer = _word_list(rng, demo_words, num_cw * shot[1] + (shot[0] - num_cw) * shot[2], num_cw,
                                       shot[1], shot[2])
    demo = (T.CWE_TEMPLATE.format(context=demo_ctx) + T.CWE_PREFIX + " "
            + " ".join(f"{i + 1}. {w}" for i, w in enumerate(demo_answer)))
    context, answer = _word_list(rng, pool, size, num_cw, freq_cw, freq_ucw)
    text, _ = _format(T.CWE_TEMPLATE, context)
    return Prompt(demo + "\n" + text, T.CWE_PREFIX, answer)


@functools.lru_cache(maxsize=None)
def zeta(alpha: float, terms: int = 10_000) -> float:
    """Riemann zeta(alpha) for alpha > 1: a partial sum plus the integral tail."""
    return math.fsum(k ** -alpha for k in range(1, terms)) + terms ** (1 - alpha) / (alpha - 1) + terms ** -alpha / 2


def fwe(args: dict, rng: random.Random, size: int, vocab_size: int) -> Prompt:
    alpha, wordlen = args["alpha"], args["coded_wordlen"]
    vocab: set[str] = set()
    while len(vocab) < vocab_size:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=wordlen)))
    ranked = sorted(vocab)
    rng.shuffle(ranked)
    ranked[0] = "..."  # RULER: the most frequent "word" is noise the question says to ignore
    z = zeta(alpha)
    words = [w for k, w in enumerate(ranked, start=1) for _ in range(int(size * k ** -alpha / z))]
    rng.shuffle(words)
    text, _ = _format(T.FWE_TEMPLATE, " ".join(words))
    return Prompt(text, T.FWE_PREFIX, ranked[1:4])


def qa(rng: random.Random, size: int, data: QAData, index: int) -> Prompt:
    item = data.questions[index % len(data.questions)]
    docs = data.documents_for(item, size, rng)
    context = "\n\n".join(f"Document {i + 1}:\n{d}" for i, d in enumerate(docs))
    text, _ = _format(T.QA_TEMPLATE, context, query=item["query"])
    return Prompt(text, T.QA_PREFIX, list(item["outputs"]))


class Generator:
    """Samples of one task at one length, each prompt + tokens_to_generate <= length, within a few tokens of it."""

    def __init__(self, spec: T.TaskSpec, tokenizer: Any, length: int, seed: int = 42, essay: str | None = None,
                 qa_data: QAData | None = None):
        self.spec, self.tokenizer, self.length, self.seed = spec, tokenizer, length, seed
        self.budget = length - spec.tokens_to_generate
        args = spec.args
        if spec.kind == "qa" and qa_data is None:
            raise ExpspanError(f"{spec.name} needs a local {args['dataset']} JSON file",
                               hint="pass --qa-squad / --qa-hotpotqa with a downloaded dev file")
        self.qa_data = qa_data
        self.unit: str | None = None  # a noise / needle haystack's unit, which its sizes count (essays: words)
        if spec.kind in ("niah", "vt"):
            haystack = args.get("haystack", "noise")
            if haystack == "essay":
                if not essay:
                    raise ExpspanError(f"{spec.name} needs an essay haystack and no local text was given",
                                       hint="pass --haystack DIR (.txt files) or --data with a prepared docs split")
                self.filler: Filler | None = Filler.from_prose(essay, self.budget)
            elif haystack == "noise":
                self.unit = NOISE
                self.filler = Filler.from_units(itertools.repeat(NOISE), "\n", self._cap(self.budget))
            else:
                self.unit, self.filler = NEEDLE, None
        self.icl_size = self._icl_size() if spec.kind == "vt" else 0
        # Sample -1 is never emitted: it calibrates the size every sample starts its own fit from.
        self.calibration = fitting.calibrate(self._builder(-1), self.count, self.budget, *self._size_range())
        self.estimate = fitting.WordCounts(tokenizer)
        probe = self._builder(-1)(self.calibration.size)
        self.bias = self.count(probe) - self.estimate(probe)

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}/{self.spec.name}/{self.length}/{index}")

    def count(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    def _cap(self, budget: int) -> int:
        """A haystack size past any prompt of `budget` tokens: `budget` words, in whole units where units are used (a
        word is at least a token)."""
        return math.ceil(budget / len(self.unit.split())) if self.unit else budget

    def _size_range(self) -> tuple[int, int]:
        args = self.spec.args
        if self.spec.kind == "cwe":
            return args["num_cw"] * (args["freq_cw"] if self.length >= 4096 else 6), max(self.budget, 400)
        if self.spec.kind == "qa":
            return 1, max(2, self.budget // 8)
        return 1, self._cap(self.budget)

    def _icl_size(self) -> int:
        hops, filler, units = self.spec.args["num_hops"], self.filler, _in_units(self.spec.args)

        def build(n: int) -> str:
            text, value, _, _ = _vt_text(random.Random(f"{self.seed}/vt-demo"), hops, 3, filler, n, units)
            return text + T.VT_PREFIX.format(query=value, num_v=hops + 1)
        return fitting.calibrate(build, self.count, _ICL_BUDGET, 1, self._cap(_ICL_BUDGET)).size

    def build(self, index: int, size: int) -> Prompt:
        rng, spec, args = self._rng(index), self.spec, self.spec.args
        if spec.kind == "niah":
            return niah(args, rng, size, self.filler)
        if spec.kind == "vt":
            return vt(args, rng, size, self.filler, self.icl_size)
        if spec.kind == "cwe":
            return cwe(args, rng, size, self.length >= 4096)
        if spec.kind == "fwe":
            return fwe(args, rng, size, max(4, self.budget // 50))
        return qa(rng, size, self.qa_data, index)

    def _builder(self, index: int) -> Callable[[int], str]:
        def build(size: int) -> str:
            prompt = self.build(index, size)
            return prompt.input + prompt.answer_prefix
        return build

    def sample(self, index: int) -> dict[str, Any]:
        cal = self.calibration
        # a unit haystack grows a whole unit at a time: one unit short of the budget is as close as it gets
        tolerance = max(2, math.ceil(cal.rate if self.unit else 2 * cal.rate))
        size, _, tokens, self.bias = fitting.fit_estimated(
            self._builder(index), self.count, self.estimate, self.budget, cal.size, cal.rate,
            tolerance=tolerance, bias=self.bias, min_size=self._size_range()[0])
        prompt = self.build(index, size)
        return {"index": index, **asdict(prompt), "tokens": tokens, "length": tokens + self.spec.tokens_to_generate,
                "size": size}
