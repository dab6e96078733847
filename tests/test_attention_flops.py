"""The FLOP formulas against counts derived independently: admitted pairs are the True entries of each reference's
dense mask, and SE-Attn's retrieval cost is what torch's FlopCounterMode sees select_blocks run."""

import functools

import pytest
from torch.utils.flop_counter import FlopCounterMode

from expspan_cli.attention import reference
from expspan_cli.attention.flops import (
    BWD_PER_PAIR,
    FWD_PER_PAIR,
    attention_flops,
    dense_peak_tflops,
    s2_pairs,
    se_pairs,
    se_retrieval_flops,
    swa_pairs,
)
from expspan_cli.attention.params import S2Params, SEParams, SWParams
from expspan_cli.attention.retrieval import select_blocks

import support

H, D = 4, 8


def mask_entries(monkeypatch, run) -> int:
    """True entries of the mask the reference hands to masked_attention, broadcast over [1, H, L, L]."""
    seen = []
    original = reference.masked_attention

    def spy(q, k, v, mask, scale=None):
        seen.append(int(mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2]).sum()))
        return original(q, k, v, mask, scale)

    monkeypatch.setattr(reference, "masked_attention", spy)
    run()
    assert len(seen) == 1
    return seen[0]


qkv = functools.partial(support.qkv, batch=1, heads=H, dim=D)


@pytest.mark.parametrize("length", [16, 37, 64])
def test_causal_pairs_match_the_full_reference_mask(monkeypatch, length):
    entries = mask_entries(monkeypatch, lambda: reference.full_reference(*qkv(length)))
    flops = attention_flops("full", None, length, H, D)
    assert flops["fwd"] == entries * FWD_PER_PAIR * D
    assert flops["fwd_bwd"] == entries * (FWD_PER_PAIR + BWD_PER_PAIR) * D


@pytest.mark.parametrize("length,window", [(64, 16), (30, 64), (50, 7)])
def test_swa_pairs_match_the_band_mask(monkeypatch, length, window):
    params = SWParams(window=window)
    entries = mask_entries(monkeypatch, lambda: reference.swa_reference(*qkv(length), params))
    assert H * swa_pairs(length, window) == entries


@pytest.mark.parametrize("length,ratio", [(64, 0.25), (48, 0.5), (40, 0.2)])
@pytest.mark.parametrize("heads", [4, 3])
def test_s2_pairs_match_the_grouped_masks(monkeypatch, length, ratio, heads):
    params = S2Params(group_size_ratio=ratio)
    q, k, v = (t[:, :heads] for t in qkv(length))
    entries = mask_entries(monkeypatch, lambda: reference.s2_reference(q, k, v, params))
    assert s2_pairs(length, heads, params) == entries


@pytest.mark.parametrize("length", [64, 70, 16])
@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=7), dict(top_k=0), dict(top_k=2, memory="none"),
                                  dict(top_k=3, memory="random")])
def test_se_pairs_match_the_reference_mask(monkeypatch, length, case):
    params = SEParams(chunk_sizes=(16,), block_size=4, **case)
    entries = mask_entries(monkeypatch, lambda: reference.se_reference(*qkv(length), params, chunk_size=16))
    assert H * se_pairs(length, 16, params) == entries


@pytest.mark.parametrize("length", [64, 70, 16])
@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=2, retrieval="shared"), dict(top_k=0),
                                  dict(top_k=3, memory="random"), dict(top_k=2, memory="none")])
def test_se_retrieval_flops_match_what_select_blocks_runs(length, case):
    params = SEParams(chunk_sizes=(16,), block_size=4, **case)
    with FlopCounterMode(display=False) as counter:
        select_blocks(*qkv(length), params, 16, None, D ** -0.5)
    assert H * se_retrieval_flops(length, 16, D, params) == counter.get_total_flops()


def test_se_counts_retrieval_once_and_attention_with_its_backward():
    params = SEParams(chunk_sizes=(16,), block_size=4, top_k=2)
    flops = attention_flops("se", params, 64, H, D, batch=3)
    pairs, retrieval = H * se_pairs(64, 16, params), H * se_retrieval_flops(64, 16, D, params)
    assert retrieval > 0
    assert flops["fwd"] == 3 * (pairs * FWD_PER_PAIR * D + retrieval)
    assert flops["fwd_bwd"] - flops["fwd"] == 3 * pairs * BWD_PER_PAIR * D


def test_dense_peaks_only_for_known_gpus_in_half_precision():
    assert dense_peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
    assert dense_peak_tflops("NVIDIA H100 PCIe", "float16") == 756.0
    assert dense_peak_tflops("NVIDIA H200", "bfloat16") == 989.4
    assert dense_peak_tflops("NVIDIA A100-SXM4-80GB", "bfloat16") == 312.0
    assert dense_peak_tflops("NVIDIA H200", "float32") is None
    assert dense_peak_tflops("cpu (x86_64, 2 cores, 2 threads)", "bfloat16") is None
