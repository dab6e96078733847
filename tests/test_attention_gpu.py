"""SE-Attn's merged flash kernel with the op pair as a parameter: the shared merge logic on CPU (including the
no-mask form the CUDA flash kernel needs), and on CUDA the same equality and gradient checks (skipped without one)."""

import pytest
import torch

from expspan_cli.attention import S2Params, SEParams, SWParams, attend
from expspan_cli.attention.common import expand_kv, pad_seq
from expspan_cli.attention.flash_cuda import CUDA_OPS, cuda_flash_supported, flash_ops
from expspan_cli.attention.lse_merge import CPU_OPS, FlashOps, mergeable, merged_chunk_attention
from expspan_cli.attention.reference import s2_reference, se_reference, swa_reference
from expspan_cli.attention.retrieval import select_blocks
from expspan_cli.attention.se import se_attention

import support

NO_BIAS_CPU = FlashOps(CPU_OPS.forward, CPU_OPS.backward, supports_bias=False)  # what CUDA_OPS can do, on CPU
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def qkv(batch, heads, length, dim, **kw):
    return support.qkv(length, batch=batch, heads=heads, dim=dim, requires_grad=True, **kw)


def run_merged(q, k, v, params, chunk, ops):
    """merged_chunk_attention on whole-sequence tensors, with the paper-mode retrieval se_attention would pick."""
    batch, heads, length, dim = q.shape
    scale = dim ** -0.5
    with torch.no_grad():
        idx, valid = select_blocks(q, k, v, params, chunk, None, scale)
    assert mergeable(idx, valid, ops)
    t = -(-length // chunk)
    qc, kc, vc = (pad_seq(x, chunk).view(batch, heads, t, chunk, dim) for x in (q, k, v))
    out = merged_chunk_attention(qc, kc, vc, idx, valid, params.block_size, scale, ops)
    return out.reshape(batch, heads, t * chunk, dim)[:, :, :length]


def on_cpu(tensors):
    """fp32 CPU leaf copies: the reference runs there, on the same (rounded) values."""
    return [t.detach().float().cpu().requires_grad_() for t in tensors]


def out_and_grads(fn, tensors):
    out = fn(*tensors)
    (out.float() * torch.linspace(-1, 1, out.numel(), device=out.device).view_as(out)).sum().backward()
    grads = [t.grad.float().clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out.detach().float(), grads


@pytest.mark.parametrize("ops", [CPU_OPS, NO_BIAS_CPU], ids=["bias", "no-bias"])
@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=3, retrieval="shared"), dict(top_k=4, memory="random")])
def test_merged_kernel_equals_reference_outputs_and_gradients(ops, case):
    params = SEParams(chunk_sizes=(16,), block_size=4, **case)
    tensors = qkv(2, 3, 64, 8)
    torch.manual_seed(5)
    out, grads = out_and_grads(lambda q, k, v: run_merged(q, k, v, params, 16, ops), tensors)
    torch.manual_seed(5)
    ref, ref_grads = out_and_grads(lambda q, k, v: se_reference(q, k, v, params, chunk_size=16), tensors)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_unused_slots_need_a_bias_so_the_no_mask_ops_refuse_them():
    params = SEParams(chunk_sizes=(16,), block_size=4, top_k=6)  # chunk 1 sees only 4 blocks: 2 slots unused
    q, k, v = qkv(1, 2, 64, 8)
    idx, valid = select_blocks(q, k, v, params, 16, None, 8 ** -0.5)
    assert not bool(valid[:, :, 1].all()) and bool(valid[:, :, 2:].all())
    assert mergeable(idx, valid, CPU_OPS) and not mergeable(idx, valid, NO_BIAS_CPU)


def test_a_single_chunk_is_not_merged():
    idx = torch.zeros(1, 1, 1, 2, dtype=torch.long)
    assert not mergeable(idx, torch.zeros_like(idx, dtype=torch.bool), CPU_OPS)


def test_op_pair_follows_device_and_dtype():
    q = torch.zeros(1, 1, 4, 64, dtype=torch.bfloat16)
    assert flash_ops(q) is CPU_OPS
    assert not cuda_flash_supported(q)
    assert CUDA_OPS.supports_bias is False


@cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=2, retrieval="shared")])
def test_cuda_merged_kernel_equals_reference(dtype, case):
    params = SEParams(chunk_sizes=(128,), block_size=32, **case)
    tensors = qkv(2, 4, 640, 64, device="cuda", dtype=dtype)
    assert flash_ops(tensors[0]) is CUDA_OPS
    torch.manual_seed(5)
    out, grads = out_and_grads(lambda q, k, v: run_merged(q, k, v, params, 128, CUDA_OPS), tensors)
    ref, ref_grads = out_and_grads(lambda q, k, v: se_reference(q, k, v, params, chunk_size=128), on_cpu(tensors))
    torch.testing.assert_close(out.cpu(), ref, atol=2e-2, rtol=2e-2)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a.cpu(), b, atol=5e-2, rtol=5e-2)


@cuda
@pytest.mark.parametrize("variant,params", [("s2", S2Params(group_size_ratio=0.25)), ("swa", SWParams(window=128))])
def test_cuda_baseline_fast_paths_equal_their_references(variant, params):
    """S2's and SW's flash calls over views (the CUDA op pair) against the dense-mask references on CPU."""
    tensors = qkv(2, 4, 512, 64, device="cuda", dtype=torch.bfloat16)
    assert flash_ops(tensors[0]) is CUDA_OPS
    reference = {"s2": s2_reference, "swa": swa_reference}[variant]
    out, grads = out_and_grads(lambda q, k, v: attend(variant, params, q, k, v), tensors)
    ref, ref_grads = out_and_grads(lambda q, k, v: reference(q, k, v, params), on_cpu(tensors))
    torch.testing.assert_close(out.cpu(), ref, atol=2e-2, rtol=2e-2)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a.cpu(), b, atol=5e-2, rtol=5e-2)


@cuda
def test_cuda_se_attention_with_gqa_and_unused_slots_matches_reference():
    params = SEParams(chunk_sizes=(128,), block_size=32, top_k=6)  # chunk 1 has 4 blocks: the masked fallback
    q = torch.randn(1, 4, 512, 64, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(1, 2, 512, 64, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    out = se_attention(q, k, v, params, chunk_size=128)
    ref = se_reference(*on_cpu([q, expand_kv(k, 4), expand_kv(v, 4)]), params, chunk_size=128)
    torch.testing.assert_close(out.float().cpu(), ref.detach(), atol=2e-2, rtol=2e-2)


@cuda
@pytest.mark.parametrize("case", [dict(top_k=2), dict(top_k=10), dict(top_k=3, retrieval="shared")])
def test_cuda_flex_kernel_equals_reference_outputs_and_gradients(case):
    """One compiled FlexAttention call over the retrieval BlockMask (128-wide tiles, 32-token memory blocks, so
    retrieved tiles are partial); top_k=10 leaves chunk 1 with unused slots, which flex takes without a fallback."""
    params = SEParams(chunk_sizes=(256,), block_size=32, kernel="flex", **case)
    tensors = qkv(1, 4, 768, 64, device="cuda", dtype=torch.bfloat16)
    out, grads = out_and_grads(lambda q, k, v: se_attention(q, k, v, params, chunk_size=256), tensors)
    ref, ref_grads = out_and_grads(lambda q, k, v: se_reference(q, k, v, params, chunk_size=256), on_cpu(tensors))
    torch.testing.assert_close(out.cpu(), ref, atol=2e-2, rtol=2e-2)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a.cpu(), b, atol=5e-2, rtol=5e-2)


@cuda
@pytest.mark.parametrize("kernel", ["lse_merge", "flex"])
def test_cuda_merged_peak_memory_is_linear_in_length(kernel):
    """Doubling the length about doubles SE-Attn's peak (an L^2 term would quadruple it)."""
    params = SEParams(chunk_sizes=(2048,), block_size=32, top_k=8, kernel=kernel)
    peaks = []
    for length in (16384, 32768):
        q, k, v = qkv(1, 8, length, 64, device="cuda", dtype=torch.bfloat16)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        se_attention(q, k, v, params).sum().backward()
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
        del q, k, v
    assert peaks[1] < 2.3 * peaks[0]


def test_bench_names_the_full_attention_kernel():
    from expspan_cli.attention.bench import full_kernel

    assert full_kernel("cpu") == "sdpa"
    assert full_kernel("cuda").startswith(("flash-attn", "sdpa (flash backend"))


@cuda
def test_cuda_bench_rows_have_device_kernel_and_ratios():
    from expspan_cli.attention.bench import bench_attention

    rows = bench_attention(["full", "se"], [8192], dtype="bfloat16", device="cuda", repeats=1,
                           se_kernels=("lse_merge", "flex"))
    assert [(r["variant"], r["se_kernel"]) for r in rows] == [("full", None), ("se", "lse_merge"), ("se", "flex")]
    for r in rows:
        assert r["device"] == torch.cuda.get_device_name() and r["peak_mem_bytes"] > 0
        assert r["fwd_bwd_s"] > r["fwd_s"] > 0 and r["full_kernel"]
        assert r["fwd_bwd_tflops"] > 0 and (r["pct_of_peak"] is None or 0 < r["pct_of_peak"] < 100)
