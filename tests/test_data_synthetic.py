"""The synthetic long-recall corpus: deterministic, every query answerable only from its fact, distances as asked."""

from __future__ import annotations

import re

import pytest

from expspan_cli.data import load_prepared
from expspan_cli.data.build import prepare
from expspan_cli.data.synthetic import SyntheticSpec, haystack_document, parse_distance, recall_document, \
    synthetic_corpus
from expspan_cli.errors import ExpspanError


def test_documents_are_deterministic_per_seed_and_independent_of_split_size():
    spec = SyntheticSpec(seed=3)
    assert recall_document(spec, "train", 5) == recall_document(spec, "train", 5)
    assert recall_document(spec, "train", 5) != recall_document(SyntheticSpec(seed=4), "train", 5)
    assert recall_document(spec, "train", 5) != recall_document(spec, "test", 5)
    small = list(synthetic_corpus(SyntheticSpec(seed=3, documents={"train": 3})).splits["train"].read())
    large = list(synthetic_corpus(SyntheticSpec(seed=3, documents={"train": 9})).splits["train"].read())
    assert large[:3] == small


def test_each_query_follows_its_fact_at_the_recorded_distance():
    spec = SyntheticSpec(seed=1, doc_words=800, facts=6, distance=(50, 600), distribution="uniform")
    for i in range(20):
        doc = recall_document(spec, "train", i)
        text = doc["text"]
        assert len(doc["recalls"]) >= 5  # a repeated key is dropped, never stated twice
        for r in doc["recalls"]:
            assert text[r["fact_char"]:r["fact_char"] + 4] == r["value"]
            assert text[r["answer_char"]:r["answer_char"] + 4] == r["value"]
            assert text.count(f"The {r['key']} is ") == 1 and text.count(f"what is the {r['key']}?") == 1
            assert r["fact_char"] < r["answer_char"]
            assert len(text[r["fact_char"]:r["answer_char"]].split()) == r["distance_words"]
            # the gap is drawn in [50, 600] words of filler; snapping to sentence boundaries moves it by a sentence,
            # and the other facts and queries that land in between (at most 2 * 6, ~12 words each) add to it
            assert 50 - 30 <= r["distance_words"] <= 600 + 30 + 12 * 12


def test_restated_answers_put_the_value_after_the_words_that_preceded_it_in_the_fact():
    plain, restated = (recall_document(SyntheticSpec(seed=1, answer=a), "train", 0) for a in ("value", "restate"))
    assert [r["value"] for r in plain["recalls"]] == [r["value"] for r in restated["recalls"]]
    for r in restated["recalls"]:
        text = restated["text"]
        lead = f"the {r['key']} is "
        assert text[r["answer_char"] - len(lead):r["answer_char"] + 4] == lead + r["value"]
        assert text[r["fact_char"] - len(lead):r["fact_char"] + 4].lower() == (lead + r["value"]).lower()
        assert f"what is the {r['key']}? Answer: {lead}{r['value']}." in text


def test_loguniform_puts_more_recalls_near_than_uniform():
    def short_share(distribution: str) -> float:
        spec = SyntheticSpec(distribution=distribution, distance=(32, 1400))
        d = [r["distance_words"] for i in range(40) for r in recall_document(spec, "train", i)["recalls"]]
        return sum(x < 200 for x in d) / len(d)

    assert short_share("loguniform") > short_share("uniform") + 0.2


def test_haystack_has_no_facts_to_collide_with_needles():
    text = haystack_document(SyntheticSpec(haystack_words=3000), 0)["text"]
    assert len(text.split()) >= 3000
    assert not re.search(r"\d", text) and "Question" not in text


@pytest.mark.parametrize("kwargs,match", [
    ({"distance": (0, 10)}, "bad recall distance"),
    ({"distance": (10, 5000)}, "does not fit"),
    ({"distribution": "normal"}, "unknown distance distribution"),
    ({"answer": "yes"}, "unknown answer form"),
    ({"documents": {"dev": 3}}, "unknown synthetic split"),
])
def test_bad_spec_is_a_user_error(kwargs, match):
    with pytest.raises(ExpspanError, match=match):
        synthetic_corpus(SyntheticSpec(**kwargs))


def test_parse_distance():
    assert parse_distance("16:900") == (16, 900)
    with pytest.raises(ExpspanError):
        parse_distance("900")


def test_prepared_synthetic_recalls_point_at_the_value_tokens(tmp_path):
    spec = SyntheticSpec(seed=2, documents={"train": 30, "test": 4, "haystack": 1}, doc_words=600, distance=(20, 500),
                         haystack_words=2000)
    result = prepare(synthetic_corpus(spec), tokenizer="bpe:600", seq_len=512, out=tmp_path / "syn")
    data = load_prepared(result.path)
    summary = data.manifest["views"]["docs"]["test"]["recall_distance_tokens"]
    assert summary["recalls"] == sum(len(r) for r in data.docs("test")["recalls"])
    assert 0 < summary["p0"] <= summary["p50"] <= summary["p100"]
    tok = data.tokenizer
    for row in data.docs("test"):
        for r in row["recalls"]:
            # the answer token decodes to (the start of) the value, and so does the fact token
            assert r["value"].startswith(tok.decode(row["input_ids"][r["answer_token"]]).strip())
            assert r["value"].startswith(tok.decode(row["input_ids"][r["fact_token"]]).strip())
            assert r["distance_tokens"] == r["answer_token"] - r["fact_token"] > 0
    assert data.docs("haystack").num_rows == 1 and set(data.manifest["views"]["packed"]) == {"train"}


def _recipe_corpus(name):
    import yaml
    from pathlib import Path

    from expspan_cli.data.kinds import synthetic_spec

    recipe = yaml.safe_load((Path(__file__).parents[1] / "recipes" / "tiny.yaml").read_text())
    return synthetic_corpus(synthetic_spec(recipe["data"][name]["options"]))


def test_the_default_test_split_shares_no_document_and_no_fact_with_train_or_validation():
    # The report's numbers come from `test`; fine-tuning reads `train` and the settings were chosen on `validation`.
    splits = _recipe_corpus("synthetic").splits
    docs = {name: list(splits[name].read()) for name in ("train", "validation", "test")}
    assert len(docs["test"]) == 96
    texts = {name: {d["text"] for d in ds} for name, ds in docs.items()}
    keys = {name: {r["key"] for d in ds for r in d["recalls"]} for name, ds in docs.items()}
    facts = {name: {(r["key"], r["value"]) for d in ds for r in d["recalls"]} for name, ds in docs.items()}
    assert len(keys["test"]) > 1000
    pretraining = {(r["key"], r["value"]) for d in _recipe_corpus("facts").splits["train"].read()
                   for r in d["recalls"]}
    for other, seen in (("train", facts["train"]), ("validation", facts["validation"]), ("pre-training", pretraining)):
        assert not texts["test"] & texts.get(other, set())
        # No test fact was seen in training: a name drawn twice by chance (2 of 1,536 in train) has another value,
        # so recalling a test fact needs its own document.
        assert not facts["test"] & seen, other
        assert len(keys["test"] & {k for k, _ in seen}) <= 0.005 * len(keys["test"])


def test_ruler_documents_state_each_needle_before_asking_for_it_in_rulers_words():
    spec = SyntheticSpec(seed=0, documents={"train": 40}, doc_words=400, distance=(16, 300), ruler_share=0.5)
    docs = list(synthetic_corpus(spec).splits["train"].read())
    ruler = [d for d in docs if d["title"].startswith("train ruler")]
    assert 10 < len(ruler) < 30 and all(not d["recalls"] for d in ruler)
    for doc in ruler:
        for sample in doc["text"].split("\n\n"):
            key, value = re.search(r"special magic numbers for (\S+) is: (\d{7})\.", sample).groups()
            assert sample.startswith("A special magic number is hidden within the following text.")
            assert sample.endswith(f"What is the special magic number for {key} mentioned in the provided text? "
                                   f"The special magic number for {key} mentioned in the provided text is {value}.")
    # a share of 0 leaves the recall documents exactly as they were
    plain = list(synthetic_corpus(SyntheticSpec(seed=0, documents={"train": 40}, doc_words=400, distance=(16, 300))).splits["train"].read())
    assert [d for d in docs if not d["title"].startswith("train ruler")] == \
        [d for d, r in zip(plain, docs) if not r["title"].startswith("train ruler")]
