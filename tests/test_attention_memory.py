"""Memory, measured by what the code allocates, never by time: the bytes live at once (the CPU allocator's own
events), and the size of what each path hands its kernels: causal SE-Attn's masks (a chunk of queries at a time)
and SW-Attn's fast path (flash calls on windows, no mask)."""

import functools

import pytest
import torch


from expspan_cli.attention import attend, se_decode, sliding
from expspan_cli.attention.lse_merge import CPU_OPS, FlashOps
from expspan_cli.attention.params import S2Params, SEParams, SWParams
from expspan_cli.attention.peak_memory import peak_allocated_bytes
from expspan_cli.attention.reference import swa_reference
from expspan_cli.attention.se import se_attention

import support

qkv = functools.partial(support.qkv, batch=1, heads=2, dim=8)
MB = 2 ** 20


def test_peak_allocated_bytes_counts_what_is_live_at_once():
    def fn():
        first = torch.empty(MB // 4)  # 1 MB, freed before the next two
        del first
        kept = [torch.empty(MB // 2), torch.empty(MB // 4 * 3)]  # 2 MB and 3 MB at once
        return kept

    assert peak_allocated_bytes(fn) == 5 * MB
    assert peak_allocated_bytes(lambda: torch.empty(MB // 4).clone()) == 2 * MB  # an operand and its copy


def _fwd_bwd_peak(variant, params, tensors):
    q, k, v = tensors
    grad = torch.randn_like(q)

    def step():
        attend(variant, params, q, k, v).backward(grad)
        q.grad = k.grad = v.grad = None
    return peak_allocated_bytes(step)


@pytest.mark.parametrize("variant,params", [("swa", SWParams(window=1024)), ("s2", S2Params(group_size_ratio=0.25)),
                                            ("se", SEParams(chunk_sizes=(512,), block_size=32, top_k=8))])
def test_fast_paths_allocate_no_more_than_full_attention(variant, params):
    """Forward + backward at 8 heads of 64, 4K tokens (the kernels' fixed workspaces are then small beside the
    tensors, as at the benchmark's lengths): no variant holds more at once than full causal attention."""
    tensors = support.qkv(4096, batch=1, heads=8, dim=64, requires_grad=True)
    assert _fwd_bwd_peak(variant, params, tensors) <= _fwd_bwd_peak("full", None, tensors)


def test_causal_se_allocations_grow_linearly_with_the_length():
    params = SEParams(chunk_sizes=(256,), block_size=16, top_k=4, causal_retrieval=True)
    peaks = {}
    for n in (2048, 4096):
        q, k, v = support.qkv(n, batch=1, heads=2, dim=32)
        peaks[n] = peak_allocated_bytes(lambda: se_attention(q, k, v, params))
    # Twice the tokens, about twice the bytes: an L x L mask or score matrix would make it four times.
    assert 1.5 < peaks[4096] / peaks[2048] < 2.3


def _largest_mask(monkeypatch, fn) -> int:
    """The most mask entries any one attention call of causal SE-Attn was given while `fn` ran."""
    sizes = []
    sdpa = se_decode.F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kw):
        sizes.append(attn_mask.numel() if attn_mask is not None else 0)
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(se_decode.F, "scaled_dot_product_attention", recording)
    fn()
    monkeypatch.undo()
    return max(sizes)


def test_causal_se_masks_grow_linearly_with_the_length(monkeypatch):
    params = SEParams(chunk_sizes=(16,), block_size=4, top_k=2, causal_retrieval=True)
    sizes = {n: _largest_mask(monkeypatch, lambda n=n: se_attention(*qkv(n), params)) for n in (256, 512, 1024)}
    # (equality with the reference: tests/test_attention_core.py's causal cases run this chunk-at-a-time path)
    # A chunk of 16 queries over the keys so far: doubling L doubles the largest mask (L x L would quadruple it).
    assert sizes[512] == 2 * sizes[256] and sizes[1024] == 2 * sizes[512]
    assert sizes[1024] == 2 * 16 * 1024  # batch x heads x chunk x keys


def test_sliding_window_fast_path_hands_its_kernel_windows_only(monkeypatch):
    calls = []

    def forward(q, k, v, causal, bias, scale):
        calls.append((tuple(q.shape), tuple(k.shape), causal, bias))
        return CPU_OPS.forward(q, k, v, causal, bias, scale)

    monkeypatch.setattr(sliding, "flash_ops", lambda q: FlashOps(forward, CPU_OPS.backward, True))
    q, k, v = qkv(80, requires_grad=True)
    out = sliding.swa_attention(q, k, v, SWParams(window=16))
    out.sum().backward()
    torch.testing.assert_close(out, swa_reference(q.detach(), k.detach(), v.detach(), SWParams(window=16)))
    assert calls and all(bias is None and causal for *_, causal, bias in calls)
    assert {shape[-2] for shape, *_ in calls} == {16, 15}  # the window, and the previous chunk less one


@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=3, retrieval="shared"), dict(top_k=8),
                                  dict(top_k=2, memory="none")])
@pytest.mark.parametrize("padded", [False, True])
def test_decoding_steps_gather_what_the_whole_sequence_attends(case, padded):
    """A step attends to its own chunk so far plus its retrieved blocks, gathered from the cache (O(M + kS) keys):
    token by token, it equals causal SE-Attn over the whole sequence."""
    params = SEParams(chunk_sizes=(16,), block_size=4, causal_retrieval=True, **case)
    q, k, v = qkv(70)
    real = None
    if padded:
        real = torch.ones(1, 70, dtype=torch.bool)
        real[:, :5] = False
    whole = se_decode.se_causal(q, k, v, params, 16, real, 0.3)
    state = se_decode.SEState.empty(16)
    steps = [se_decode.se_decode(q[:, :, t:t + 1], k[:, :, :t + 1], v[:, :, :t + 1], params, state,
                                 None if real is None else real[:, :t + 1], 0.3) for t in range(70)]
    torch.testing.assert_close(torch.cat(steps, dim=2), whole)
