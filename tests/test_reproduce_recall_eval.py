"""The recall evaluation the tiny reproduction uses: a model that reads the answer gets every recall right, one that
does not gets none, and each recall lands in the bucket of its fact-to-query distance."""

import json
from types import SimpleNamespace

import pytest
import torch

from expspan_cli.eval.recall import bucket_names, recall_accuracy


@pytest.fixture(scope="module")
def prepared(synthetic_data):
    from expspan_cli.data import load_prepared

    return load_prepared(synthetic_data("bpe:320", 256, validation=4, doc_words=400, distance=(8, 300)))


class _Fixed(torch.nn.Module):
    """Logits that put all mass on a chosen next token: the true one (an oracle) or always token 0."""

    def __init__(self, vocab: int, oracle: bool):
        super().__init__()
        self.vocab, self.oracle = vocab, oracle
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, use_cache=False):
        nxt = torch.roll(input_ids, -1, dims=1) if self.oracle else torch.zeros_like(input_ids)
        return SimpleNamespace(logits=torch.nn.functional.one_hot(nxt, self.vocab).float())


def test_oracle_recalls_everything_and_a_blind_model_nothing(prepared):
    docs = prepared.docs("validation")
    vocab = len(prepared.tokenizer)
    seen = recall_accuracy(_Fixed(vocab, True), prepared.tokenizer, docs, 4096, (64, 128))
    blind = recall_accuracy(_Fixed(vocab, False), prepared.tokenizer, docs, 4096, (64, 128))
    assert seen["accuracy"] == 100.0 and blind["accuracy"] == 0.0
    assert list(seen["counts"]) == bucket_names((64, 128)) == ["0-64", "64-128", ">128"]
    distances = [r["distance_tokens"] for d in docs for r in d["recalls"]]
    assert seen["counts"][">128"] == sum(d > 128 for d in distances)
    assert sum(seen["counts"].values()) == len(distances)


def test_a_short_window_drops_the_recalls_it_cuts_off(prepared):
    docs = prepared.docs("validation")
    full = recall_accuracy(_Fixed(len(prepared.tokenizer), True), prepared.tokenizer, docs, 4096)
    short = recall_accuracy(_Fixed(len(prepared.tokenizer), True), prepared.tokenizer, docs, 320)
    assert 0 < sum(short["counts"].values()) < sum(full["counts"].values())
    json.dumps(short)  # a record must serialize
