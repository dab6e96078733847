"""Attention matmul FLOPs each variant performs, and the dense matmul peaks that achieved TFLOP/s are rated against.

A (query, key) pair the variant's mask admits costs 4*D FLOPs forward (q.k and p*v) and 10*D backward (the flash
backward recomputes q.k, then dv, dp, dq, dk: the usual 2.5x), per query head. Pairs are counted exactly
(L(L+1)/2 for causal, not L^2/2), so a kernel that computes masked-out tiles is charged only for the useful ones.
SE-Attn's retrieval (block summaries: each block's S x S scores, then its mean weights times v; block scores: one
matmul) runs without gradients, so it counts once, in the forward.
"""

from __future__ import annotations

from typing import Any

from expspan_cli.attention.params import S2Params, SEParams, SWParams

FWD_PER_PAIR = 4  # x head_dim
BWD_PER_PAIR = 10  # x head_dim

# Dense (no 2:4 sparsity) tensor-core peaks in TFLOP/s for bf16/fp16, from NVIDIA's data sheets; the first name
# fragment found in torch.cuda.get_device_name() wins, so the more specific ones come first.
DENSE_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM5 (reported as "NVIDIA H100 80GB HBM3")
    ("H200 NVL", 835.0),
    ("H200", 989.4),
    ("A100", 312.0),
)
PEAK_DTYPES = ("bfloat16", "float16")


def causal_pairs(n: int) -> int:
    return n * (n + 1) // 2


def swa_pairs(length: int, window: int) -> int:
    """Each query sees itself and up to window - 1 keys before it."""
    if length <= window:
        return causal_pairs(length)
    return causal_pairs(window) + (length - window) * window


def s2_pairs(length: int, heads: int, params: S2Params) -> int:
    """Summed over heads: the first H//2 heads are causal in groups of G, the rest in groups shifted by G/2."""
    group = int(length * params.group_size_ratio)
    plain = (length // group) * causal_pairs(group)
    shift = group // 2
    shifted = causal_pairs(group - shift) + ((length - group) // group) * causal_pairs(group) + causal_pairs(shift)
    return (heads // 2) * plain + (heads - heads // 2) * shifted


def se_pairs(length: int, chunk: int, params: SEParams) -> int:
    """Per head: every chunk causally over itself, plus chunk t's queries over its min(k, eligible) retrieved blocks."""
    pairs = 0
    for start in range(0, length, chunk):
        queries = min(chunk, length - start)
        pairs += causal_pairs(queries)
        if params.memory != "none":
            pairs += queries * min(params.top_k, start // params.block_size) * params.block_size
    return pairs


def se_retrieval_flops(length: int, chunk: int, head_dim: int, params: SEParams) -> int:
    """Per head, forward only: block summaries (per whole block, S x S scores and one S-vector times v) and
    chunk-block scores."""
    n_chunks = -(-length // chunk)
    max_eligible = ((n_chunks - 1) * chunk) // params.block_size
    if params.memory != "relevancy" or params.top_k == 0 or max_eligible == 0:
        return 0
    blocks = length // params.block_size
    summaries = blocks * 2 * head_dim * params.block_size * (params.block_size + 1)
    return summaries + 2 * head_dim * n_chunks * blocks


def attention_flops(variant: str, params: Any, length: int, heads: int, head_dim: int, batch: int = 1) -> dict:
    """{"fwd": ..., "fwd_bwd": ...} matmul FLOPs of one call on [batch, heads, length, head_dim] queries.

    SE-Attn is counted at its first chunk size (the benchmark fixes one)."""
    extra = 0
    if variant == "se":
        assert isinstance(params, SEParams)
        chunk = params.chunk_sizes[0]
        pairs = heads * se_pairs(length, chunk, params)
        extra = heads * se_retrieval_flops(length, chunk, head_dim, params)
    elif variant == "swa":
        assert isinstance(params, SWParams)
        pairs = heads * swa_pairs(length, params.window)
    elif variant == "s2":
        assert isinstance(params, S2Params)
        pairs = s2_pairs(length, heads, params)
    else:
        pairs = heads * causal_pairs(length)
    fwd = batch * (pairs * FWD_PER_PAIR * head_dim + extra)
    return {"fwd": fwd, "fwd_bwd": fwd + batch * pairs * BWD_PER_PAIR * head_dim}


def dense_peak_tflops(device_name: str, dtype: str) -> float | None:
    """The data-sheet dense matmul peak of a known GPU in bf16/fp16, else None (CPU, fp32, unknown GPU)."""
    if dtype not in PEAK_DTYPES:
        return None
    return next((peak for fragment, peak in DENSE_PEAK_TFLOPS if fragment in device_name), None)
