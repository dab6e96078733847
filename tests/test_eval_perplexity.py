"""Perplexity protocols on tiny random models: window layout, and exp(mean NLL) against a hand computation."""

import math

import pytest
import torch

from expspan_cli.errors import ExpspanError
from expspan_cli.eval.perplexity import perplexity, windows
from expspan_cli.models.tiny import tiny_model


def test_longlora_windows_start_every_256_and_drop_the_last():
    wins = windows(2000, 512, "longlora")
    assert [w.start for w in wins] == [0, 256, 512, 768, 1024]  # range(0, 1488, 256) without its last
    assert all(w.first_target == w.start + 1 for w in wins)


@pytest.mark.parametrize("n,length,stride", [(1000, 128, 127), (1000, 128, 48), (100, 128, 64), (129, 64, 1)])
def test_strided_scores_every_token_once(n, length, stride):
    covered = []
    for w in windows(n, length, "strided", stride):
        end = min(w.start + length, n)
        assert end - w.start <= length and w.first_target > w.start
        covered += range(w.first_target, end)
    assert covered == list(range(1, n))


def test_bad_protocol_and_short_stream_are_user_errors():
    with pytest.raises(ExpspanError, match="unknown perplexity protocol"):
        windows(1000, 128, "sliding")
    with pytest.raises(ExpspanError, match="below the window length"):
        windows(1000, 128, "strided", 128)
    with pytest.raises(ExpspanError, match="too few for windows"):
        windows(300, 256, "longlora")


def _hand_ppl(model, stream, wins, length):
    nll, count = 0.0, 0
    for w in wins:
        ids = stream[w.start:w.start + length]
        logp = torch.log_softmax(model(input_ids=ids[None]).logits[0].double(), -1)
        for pos in range(1, len(ids)):
            if w.start + pos >= w.first_target:
                nll -= float(logp[pos - 1, ids[pos]])
                count += 1
    return math.exp(nll / count), count


@pytest.mark.parametrize("family", ["llama", "bamba"])
@pytest.mark.parametrize("protocol,stride", [("longlora", None), ("strided", 40)])
def test_perplexity_is_exp_mean_token_nll(family, protocol, stride):
    model = tiny_model(family, seed=1).eval()
    stream = torch.randint(0, 128, (900,), generator=torch.Generator().manual_seed(0))
    length = 96 if protocol == "strided" else 300
    with torch.no_grad():
        want, count = _hand_ppl(model, stream, windows(len(stream), length, protocol, stride), length)
        got = perplexity(model, stream, length, protocol, stride, batch_size=2)
    assert got["scored_tokens"] == count
    assert got["ppl"] == pytest.approx(want, rel=1e-4)
    assert 64 < got["ppl"] < 512  # a random model over 128 tokens: near-uniform, not degenerate
