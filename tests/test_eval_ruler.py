"""RULER generators, fitting, oracle, scorers and cache on a tiny byte-level BPE trained on generated text."""

import itertools
import json
import random
import re

import pytest

from expspan_cli.data.tokenizer import train_bpe
from expspan_cli.errors import ExpspanError
from expspan_cli.eval.ruler import TASKS, resolve_tasks
from expspan_cli.eval.ruler import generate as gen_mod
from expspan_cli.eval.ruler.generate import Generator
from expspan_cli.eval.ruler.haystack import NOISE, Filler, draw_depths, insert_needles
from expspan_cli.eval.ruler.oracle import oracle_answer
from expspan_cli.eval.ruler.qa import read_hotpotqa, read_squad
from expspan_cli.eval.ruler.run import generate_samples, oracle_predictor, run_ruler
from expspan_cli.eval.ruler.scoring import match_all, match_part, score
from expspan_cli.eval.ruler.wordlist import ADJECTIVES, NOUNS, VERBS

WORDS = (ADJECTIVES + NOUNS + VERBS).split()
# tasks whose haystack is made of whole units: noise sentences (niah_single_1, vt) or decoy needle lines
UNIT_TASKS = [n for n, t in TASKS.items() if t.kind in ("niah", "vt") and t.args.get("haystack", "noise") != "essay"]
_VALUE = r"(\d{7}|[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})"
DECOY = re.compile(rf"One of the special magic (numbers|uuids) for ([a-z]+-[a-z]+|{_VALUE}) is: {_VALUE}\.")


def context(name: str, prompt: str) -> str:
    """The haystack with its needles: what the (last) template puts between its head and its tail."""
    head, tail = ("afterwards.\n", "\nWhat ") if name.startswith("niah") else ("following text.\n\n", "\nQuestion: ")
    return prompt.rsplit(head, 1)[1].rsplit(tail, 1)[0]


def essay_text(n_sentences: int = 400, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))).capitalize() + "."
                    for _ in range(n_sentences))


@pytest.fixture(scope="module")
def tok():
    numbered = " ".join(f"{i + 1}. {w}" for i, w in enumerate(WORDS * 3))
    texts = [NOISE] * 50 + [essay_text(200, s) for s in range(3)] + [" ".join(WORDS)] * 3 + [numbered]
    return train_bpe(2000, iter(texts))


@pytest.fixture(scope="module")
def samples(tok):
    specs = resolve_tasks(None)
    return generate_samples(specs, [2048, 4096], tok, 3, essay=essay_text(), quiet=True)


def test_paper_tasks_are_the_eleven():
    assert [t.name for t in resolve_tasks("paper")] == [
        "niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
        "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe"]
    with pytest.raises(ExpspanError, match="unknown RULER task 'niah_single_9'"):
        resolve_tasks("niah_single_1,niah_single_9")


@pytest.mark.parametrize("length", [2048, 4096])
def test_prompts_fill_the_length_exactly(tok, samples, length):
    for name in TASKS:
        if name.startswith("qa_"):
            continue
        spec = TASKS[name]
        for s in samples[name, length]:
            tokens = len(tok(s["input"] + s["answer_prefix"])["input_ids"])
            assert s["length"] == tokens + spec.tokens_to_generate <= length
            # a prose word is the unit of fill; list entries, coded words and uuid pieces are coarser
            slack = {"cwe": 16, "fwe": 16, "niah_multikey_3": 12}.get(name, 8)
            if name in UNIT_TASKS:  # a whole noise sentence or decoy line at a time
                slack = max(len(tok(line)["input_ids"]) for line in context(name, s["input"]).split("\n")) + 1
            assert length - s["length"] <= slack, (name, length, s["length"])


def test_needles_sit_where_recorded_and_follow_depth(samples):
    for (name, length), batch in samples.items():
        for s in batch:
            for needle in s["needles"]:
                assert s["input"][needle["offset"]:].startswith(needle["text"])
            ordered = sorted(s["needles"], key=lambda n: (n["depth"], n["offset"]))
            assert [n["offset"] for n in ordered] == sorted(n["offset"] for n in s["needles"])
            if name.startswith("niah"):
                assert all(n["text"].endswith(".") for n in s["needles"])
                assert all(any(o in n["text"] for n in s["needles"]) for o in s["outputs"])


@pytest.mark.parametrize("length", [2048, 4096])
@pytest.mark.parametrize("name", UNIT_TASKS)
def test_unit_haystacks_hold_whole_units_only(samples, name, length):
    unit = TASKS[name].args.get("haystack", "noise")
    for s in samples[name, length]:
        needles = [n["text"] for n in s["needles"]]
        lines = context(name, s["input"]).split("\n")
        units = [line for line in lines if line not in needles]
        assert len(units) == s["size"] and len(lines) == len(units) + len(needles)
        assert all(u == NOISE if unit == "noise" else DECOY.fullmatch(u) for u in units), (name, length, units[-1])
        assert lines[-1] in units


@pytest.mark.parametrize("name", UNIT_TASKS)
def test_unit_needles_never_follow_the_last_unit_and_keep_their_place_across_sizes(tok, name):
    gen = Generator(TASKS[name], tok, 1024)
    for i in range(200):  # placed at RULER's essay depths, 1 needle in 40 would follow the last unit
        small, big = gen.build(i, 3), gen.build(i, 9)
        for p, size in ((small, 3), (big, 9)):
            lines = context(name, p.input).split("\n")
            assert lines[-1] not in {n["text"] for n in p.needles} and len(lines) == size + len(p.needles)
        assert (small.outputs, [(n["text"], n["depth"]) for n in small.needles]) == \
            (big.outputs, [(n["text"], n["depth"]) for n in big.needles])


def test_the_deepest_unit_draw_stays_before_the_last_unit():
    class Top(random.Random):  # the largest draw there is
        def random(self):
            return 1 - 2 ** -53
    for n in (1, 2, 3, 7, 1000, 99_999):
        text, starts = Filler.from_units(itertools.repeat(NOISE), "\n", n).take(n)
        placed, _ = insert_needles(text, starts, "\n", ["N."], draw_depths(Top(), 1, True))
        assert placed.endswith("N.\n" + NOISE)


def test_essay_haystacks_are_still_cut_by_words(tok):
    essay = essay_text()
    gen = Generator(TASKS["niah_single_2"], tok, 1024, essay=essay)
    cut_mid_sentence = False
    for size in (37, 38, 39, 250):
        p = gen.build(0, size)
        hay = context("niah_single_2", p.input)
        for needle in p.needles:
            hay = hay.replace(needle["text"], "")
        assert hay.split() == essay.split()[:size]
        cut_mid_sentence |= not hay.rstrip().endswith(".")
    assert cut_mid_sentence


def test_niah_matches_table_10(samples):
    s = samples["niah_single_3", 2048][0]
    assert s["input"].startswith("A special magic uuid is hidden within the following text.")
    assert len(s["outputs"]) == 1 and len(s["outputs"][0]) == 36
    multi = samples["niah_multivalue", 2048][0]
    assert len(multi["outputs"]) == 4 and all(len(o) == 7 and o.isdigit() for o in multi["outputs"])
    assert multi["input"].startswith("Some special magic numbers are hidden")
    query = samples["niah_multiquery", 2048][0]
    assert len(query["outputs"]) == 4 and ", and " in query["input"].rsplit("\n", 1)[-1]
    decoys = samples["niah_multikey_2", 2048][0]["input"].count("One of the special magic numbers for")
    assert decoys > 10  # the needle haystack is made of decoys
    assert samples["vt", 2048][0]["input"].count("Memorize and track") == 2  # the 1-shot demonstration
    assert len(samples["vt", 2048][0]["outputs"]) == 5  # 1 chain x 4 hops: 5 variables


def test_oracle_scores_100_everywhere_and_random_answers_score_0(samples):
    specs = resolve_tasks(None)
    metrics = run_ruler(specs, [2048, 4096], samples, oracle_predictor, quiet=True)
    assert metrics["average"] == {"2048": 100.0, "4096": 100.0}
    assert set(metrics["groups"]) == {"NIAH-S", "NIAH-M", "NIAH-M-QV", "VT", "CF-WE"}
    nothing = run_ruler(specs, [2048], {k: v for k, v in samples.items() if k[1] == 2048},
                        lambda spec, s: "I do not know.", quiet=True)
    assert nothing["average"]["2048"] == 0.0


def test_oracle_reads_the_prompt_not_the_answers(samples):
    s = dict(samples["niah_single_2", 2048][0])
    needle = s["needles"][0]
    broken = s["input"].replace(needle["text"], "")
    assert oracle_answer(TASKS["niah_single_2"], broken) == ""


def test_scorers_follow_upstream_semantics():
    assert match_all("The numbers are 123 and 456.", ["123", "456"]) == 1.0
    assert match_all(" 123 \x01", ["123", "456"]) == 0.5
    assert match_all("ABC-def", ["abc-DEF"]) == 1.0
    # qa: full credit when any reference is found (upstream RULER, not lm-eval's partial credit)
    assert match_part("It was in Paris, France", ["Paris", "London", "Rome"]) == 1.0
    assert match_part("Berlin", ["Paris", "London"]) == 0.0
    assert score("string_match_part", ["Paris", "x"], [["Paris", "the city of Paris"], ["y"]]) == 50.0
    assert score("string_match_all", ["a b", "a"], [["a", "b"], ["a", "b"]]) == 75.0


def test_cache_returns_stored_samples_without_regenerating(tok, tmp_path, monkeypatch):
    specs = resolve_tasks("niah_single_1")
    first = generate_samples(specs, [512], tok, 2, cache_dir=tmp_path, quiet=True)
    assert len(list(tmp_path.glob("niah_single_1-512-*.jsonl"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("regenerated")
    monkeypatch.setattr("expspan_cli.eval.ruler.run.Generator", refuse)
    assert generate_samples(specs, [512], tok, 2, cache_dir=tmp_path, quiet=True) == first
    with pytest.raises(AssertionError, match="regenerated"):  # another seed is another key
        generate_samples(specs, [512], tok, 2, seed=7, cache_dir=tmp_path, quiet=True)


def test_same_seed_same_samples_other_seed_differs(tok):
    spec = TASKS["niah_multikey_1"]
    a = Generator(spec, tok, 1024, seed=1, essay=essay_text()).sample(0)
    b = Generator(spec, tok, 1024, seed=1, essay=essay_text()).sample(0)
    c = Generator(spec, tok, 1024, seed=2, essay=essay_text()).sample(0)
    assert a == b and a["outputs"] != c["outputs"]


def test_essay_without_text_is_a_user_error(tok):
    with pytest.raises(ExpspanError, match="needs an essay haystack"):
        Generator(TASKS["niah_single_2"], tok, 1024)


def _squad(path):
    paras = [{"context": f"Paragraph {i} says the capital of land {i} is City{i}.",
              "qas": [{"question": f"What is the capital of land {i}?", "is_impossible": False,
                       "answers": [{"text": f"City{i}"}, {"text": f"the city City{i}"}]},
                      {"question": "Unanswerable?", "is_impossible": True, "answers": []}]} for i in range(30)]
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paras}]}))
    return path


def test_qa_from_local_squad_and_hotpotqa(tok, tmp_path):
    data = read_squad(_squad(tmp_path / "squad.json"))
    assert len(data.questions) == 30 and data.questions[0]["outputs"] == ["City0", "the city City0"]
    sample = Generator(TASKS["qa_1"], tok, 1024, qa_data=data).sample(3)
    gold = data.docs[data.questions[3]["context"][0]]
    assert gold in sample["input"] and "Document 1:\n" in sample["input"]
    assert sample["length"] <= 1024 and sample["input"].rstrip().endswith(data.questions[3]["query"])
    hot = [{"question": f"Q{i}?", "answer": f"A{i}", "context": [[f"T{i}", [f"A{i} is here. ", "More."]],
                                                                 [f"U{i}", ["Other."]]]} for i in range(5)]
    (tmp_path / "hotpot.json").write_text(json.dumps(hot))
    hdata = read_hotpotqa(tmp_path / "hotpot.json")
    assert hdata.questions[1]["outputs"] == ["A1"] and len(hdata.questions[1]["context"]) == 2
    with pytest.raises(ExpspanError, match="needs a local squad JSON"):
        Generator(TASKS["qa_1"], tok, 1024)


def test_word_lists_outgrow_the_shipped_words(tok):
    # 4k+ cwe at a long length needs more distinct words than the package ships: made-up words fill in
    rng = random.Random(0)
    words = gen_mod._pseudo_words(rng, 50, set(WORDS))
    assert len(set(words)) == 50 and not set(words) & set(WORDS)
