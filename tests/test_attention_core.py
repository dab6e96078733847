"""Every attention fast path against its plain reference, and SE-Attn's defining properties."""

import functools

import pytest
import torch

from expspan_cli.attention import S2Params, SEParams, SWParams, attend, make_params, s2, sliding
from expspan_cli.attention.reference import (
    full_reference,
    masked_attention,
    s2_reference,
    se_reference,
    swa_reference,
)
from expspan_cli.attention.se import se_attention
from expspan_cli.errors import ExpspanError

import support

B, HQ, HKV, D = 2, 4, 2, 8


qkv = functools.partial(support.qkv, batch=B, heads=HQ, kv_heads=HKV, dim=D)


def grads(fn, tensors):
    out = fn(*tensors)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    result = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out.detach(), result


def assert_same_outputs_and_grads(fast_fn, ref_fn, tensors, seed=3):
    torch.manual_seed(seed)
    fast, g_fast = grads(fast_fn, tensors)
    torch.manual_seed(seed)
    ref, g_ref = grads(ref_fn, tensors)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    return fast


SE_CASES = [
    dict(top_k=2),
    dict(top_k=2, retrieval="shared"),
    dict(top_k=3, memory="random"),
    dict(top_k=2, memory="none"),
    dict(top_k=2, causal_retrieval=True),
    dict(top_k=7),  # more slots than early chunks have blocks: the masked path
    dict(top_k=0),
]


@pytest.mark.parametrize("path", ["auto", "dense", "masked"])
@pytest.mark.parametrize("length", [64, 70])
@pytest.mark.parametrize("case", SE_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_se_fast_equals_reference_outputs_and_gradients(case, length, path):
    params = SEParams(chunk_sizes=(16,), block_size=4, **case)
    assert_same_outputs_and_grads(lambda q, k, v: se_attention(q, k, v, params, path=path),
                                  lambda q, k, v: se_reference(q, k, v, params), qkv(length, requires_grad=True))


@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=2, causal_retrieval=True), dict(top_k=2, memory="none")])
def test_se_with_left_padding_matches_reference_on_real_tokens(case):
    params = SEParams(chunk_sizes=(16,), block_size=4, **case)
    q, k, v = qkv(64)
    real = torch.ones(B, 64, dtype=torch.bool)
    real[1, :9] = False  # left padding that ends inside a block
    fast = se_attention(q, k, v, params, key_padding=real)
    ref = se_reference(q, k, v, params, key_padding=real)
    torch.testing.assert_close(fast[0], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[1, :, 9:], ref[1, :, 9:], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(fast).all()


def test_se_with_enough_slots_is_full_causal_attention_outputs_and_gradients():
    params = SEParams(chunk_sizes=(16,), block_size=4, top_k=12)  # 12 = blocks before the last chunk
    assert_same_outputs_and_grads(lambda q, k, v: se_attention(q, k, v, params), full_reference,
                                  qkv(64, requires_grad=True))


def test_se_without_memory_is_block_diagonal_causal():
    q, k, v = qkv(64)
    pos = torch.arange(64)
    block_diag = (pos[:, None] // 16 == pos[None, :] // 16) & (pos[None, :] <= pos[:, None])
    out = se_attention(q, k, v, SEParams(chunk_sizes=(16,), block_size=4, memory="none"))
    torch.testing.assert_close(out, masked_attention(q, k, v, block_diag), atol=1e-5, rtol=1e-5)


def test_se_retrieves_a_planted_block():
    q, k, v = qkv(64, seed=1)
    q, k, v = q * 0.1, k * 0.1, v * 0.1
    direction = torch.zeros(D)
    direction[0] = 1.0
    planted = 5  # block 5 = tokens 20..23, in the past of the last chunk (48..63)
    q[:, :, 48:] += 3 * direction
    k[:, :, 20:24] += 3 * direction
    v[:, :, 20:24] += 3 * direction  # its summary then points along the chunk's queries
    records = []
    se_attention(q, k, v, SEParams(chunk_sizes=(16,), block_size=4, top_k=1), recorder=records)
    idx = records[0]["indices"]  # [B, H, T, k]
    assert (idx[:, :, 3, 0] == planted).all()


def test_causal_mode_outputs_ignore_later_tokens_and_paper_mode_does_not():
    q, k, v = qkv(64)
    q2, k2, v2 = (t.clone() for t in (q, k, v))
    t = 37  # inside chunk 2 (32..47)
    q2[:, :, t + 1:] = torch.randn_like(q2[:, :, t + 1:]) * 5
    k2[:, :, t + 1:] = torch.randn_like(k2[:, :, t + 1:])
    v2[:, :, t + 1:] = torch.randn_like(v2[:, :, t + 1:])
    causal = SEParams(chunk_sizes=(16,), block_size=4, top_k=1, causal_retrieval=True)
    torch.testing.assert_close(se_attention(q, k, v, causal)[:, :, : t + 1],
                               se_attention(q2, k2, v2, causal)[:, :, : t + 1])
    paper = SEParams(chunk_sizes=(16,), block_size=4, top_k=1)
    diff = (se_attention(q, k, v, paper) - se_attention(q2, k2, v2, paper))[:, :, 32: t + 1].abs().max()
    assert diff > 1e-3, "the paper's chunk-level score should let later queries change earlier outputs"


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="the atomic accumulation it guards against needs threads")
def test_se_gradients_are_the_same_bits_every_run():
    # Long enough that the block-gradient scatter runs on several threads, with many chunks retrieving the same
    # blocks: float atomics would add the duplicates in another order each run.
    q, k, v = support.qkv(2048, batch=1, heads=2, kv_heads=2, dim=64, requires_grad=True)
    params = SEParams(chunk_sizes=(128,), block_size=32, top_k=8, retrieval="shared")
    runs = [grads(lambda q, k, v: se_attention(q, k, v, params), (q, k, v))[1] for _ in range(4)]
    assert all(torch.equal(a, b) for other in runs[1:] for a, b in zip(runs[0], other))


def test_block_gradients_land_where_they_were_gathered_in_any_layout():
    from expspan_cli.attention.lse_merge import _scatter_blocks

    rows, n_chunks, chunk, s, dim = 3, 4, 8, 2, 5
    per_row = n_chunks * chunk // s
    flat = torch.randint(0, per_row, (rows, n_chunks - 1, 3)) + (torch.arange(rows) * per_row).view(rows, 1, 1)
    blocks = torch.randn(rows, n_chunks - 1, 3 * s, dim)
    expected = torch.zeros(rows * per_row, s, dim)
    for i, b in enumerate(flat.reshape(-1).tolist()):  # the obvious loop
        expected[b] += blocks.reshape(-1, s, dim)[i]
    for layout in ("sequence-major", "chunks that do not merge"):
        if layout == "sequence-major":
            grad = torch.zeros(n_chunks * chunk, rows, dim).permute(1, 0, 2).view(rows, n_chunks, chunk, dim)
        else:
            grad = torch.zeros(rows, chunk, n_chunks, dim).transpose(1, 2)
        _scatter_blocks(grad, blocks, flat, s)
        torch.testing.assert_close(grad.reshape(rows * per_row, s, dim), expected)


def test_chunk_size_is_drawn_per_call_from_the_list():
    q, k, v = qkv(64)
    params = SEParams(chunk_sizes=(16, 32), block_size=4, top_k=1)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        records = []
        se_attention(q, k, v, params, recorder=records)
        seen.add(records[0]["chunk_size"])
    assert seen == {16, 32}


@pytest.mark.parametrize("length", [64, 96])
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_s2_fast_equals_reference_and_has_no_wraparound(length, ratio):
    params = S2Params(group_size_ratio=ratio)
    tensors = qkv(length, requires_grad=True)
    fast = assert_same_outputs_and_grads(lambda q, k, v: attend("s2", params, q, k, v),
                                         lambda q, k, v: s2_reference(q, k, v, params), tensors)
    # A shifted head's first token sees only itself: nothing from the sequence's end wraps around to it.
    q, k, v = (t.detach() for t in tensors)
    torch.testing.assert_close(fast[:, HQ // 2:, 0], v.repeat_interleave(HQ // HKV, 1)[:, HQ // 2:, 0])


@pytest.mark.parametrize("heads", [1, 3])
def test_s2_odd_head_counts_shift_heads_from_half_on_like_the_reference(heads):
    params = S2Params(group_size_ratio=0.25)
    g = torch.Generator().manual_seed(1)
    tensors = [torch.randn(1, heads, 64, D, generator=g).requires_grad_() for _ in range(3)]
    assert_same_outputs_and_grads(lambda q, k, v: attend("s2", params, q, k, v),
                                  lambda q, k, v: s2_reference(q, k, v, params), tensors)


@pytest.mark.parametrize("module,variant,params", [(s2, "s2", S2Params(group_size_ratio=0.25)),
                                                   (sliding, "swa", SWParams(window=16))])
def test_paths_without_flash_ops_equal_the_reference_too(monkeypatch, module, variant, params):
    """Devices and dtypes with no flash op pair (CUDA in fp32) take the SDPA form of S2 and SW."""
    monkeypatch.setattr(module, "flash_ops", lambda q: None)
    reference = {"s2": s2_reference, "swa": swa_reference}[variant]
    assert_same_outputs_and_grads(lambda q, k, v: attend(variant, params, q, k, v),
                                  lambda q, k, v: reference(q, k, v, params), qkv(64, requires_grad=True))


@pytest.mark.parametrize("length,window", [(64, 16), (70, 12), (20, 32)])
def test_swa_fast_equals_dense_band(length, window):
    params = SWParams(window=window)
    assert_same_outputs_and_grads(lambda q, k, v: attend("swa", params, q, k, v),
                                  lambda q, k, v: swa_reference(q, k, v, params), qkv(length, requires_grad=True))


def test_full_and_decoding_offsets_match_reference():
    q, k, v = qkv(40)
    torch.testing.assert_close(attend("full", None, q, k, v), full_reference(q, k, v), atol=1e-5, rtol=1e-5)
    last = q[:, :, -3:]  # three decoding queries over the whole cache
    torch.testing.assert_close(attend("full", None, last, k, v), full_reference(q, k, v)[:, :, -3:],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attend("swa", SWParams(window=8), last, k, v),
                               swa_reference(q, k, v, SWParams(window=8))[:, :, -3:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("variant,params", [("se", SEParams(chunk_sizes=(16,), block_size=4, top_k=2)),
                                            ("s2", S2Params()), ("swa", SWParams(window=16)), ("full", None)])
def test_low_precision_runs_and_stays_close_to_fp32(dtype, variant, params):
    q, k, v = qkv(64)
    torch.manual_seed(0)
    ref = attend(variant, params, q, k, v)
    torch.manual_seed(0)
    low = [t.to(dtype).requires_grad_() for t in (q, k, v)]
    out = attend(variant, params, *low)
    out.float().sum().backward()
    assert out.dtype == dtype and all(t.grad is not None and torch.isfinite(t.grad).all() for t in low)
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("variant,values,message", [
    ("se", dict(chunk_sizes=[100], block_size=32), "not a positive multiple of block_size"),
    ("se", dict(top_k=-1), "top_k must be >= 0"),
    ("se", dict(retrieval="both"), "retrieval must be"),
    ("se", dict(memory="lots"), "memory must be"),
    ("se", dict(windw=3), "unknown parameter"),
    ("s2", dict(group_size_ratio=0), "group_size_ratio"),
    ("swa", dict(window=0), "window must be positive"),
    ("flash", dict(), "unknown attention variant"),
])
def test_bad_parameters_raise_user_errors(variant, values, message):
    with pytest.raises(ExpspanError, match=message):
        make_params(variant, **values)


def test_s2_rejects_a_length_its_groups_do_not_tile():
    q, k, v = qkv(70)
    with pytest.raises(ExpspanError, match="not a multiple of its group size"):
        attend("s2", S2Params(), q, k, v)
