"""Decoding cost of one attention layer with its KV cache: tokens/s of SE-Attn's causal decoding step (own chunk so
far + k retrieved blocks, gathered from the cache) against full attention's (the whole cache), at each context
length, measured in the same process."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from expspan_cli.attention.bench import device_name
from expspan_cli.attention.common import expand_kv
from expspan_cli.attention.params import SEParams
from expspan_cli.attention.se_decode import prefill_state, se_decode


def bench_decode(contexts: list[int], steps: int = 32, heads: int = 8, kv_heads: int | None = None,
                 head_dim: int = 64, chunk_size: int = SEParams.chunk_sizes[0], block_size: int = SEParams.block_size,
                 top_k: int = SEParams.top_k, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (variant, context): median seconds per decoded token over `steps` steps after a prefill of
    `context` tokens, tokens/s, and SE's speedup over full attention at that context."""
    params = SEParams(chunk_sizes=(chunk_size,), block_size=block_size, top_k=top_k, causal_retrieval=True)
    kv_heads = kv_heads or heads
    scale = head_dim ** -0.5
    rows = []
    for context in contexts:
        torch.manual_seed(seed)
        total = context + steps
        q = torch.randn(1, heads, total, head_dim)
        k, v = (expand_kv(torch.randn(1, kv_heads, total, head_dim), heads) for _ in range(2))
        state = prefill_state(q[:, :, :context], k[:, :, :context], v[:, :, :context], params, chunk_size, None, scale)
        times: dict[str, list[float]] = {"full": [], "se": []}
        with torch.no_grad():
            for t in range(context, total):
                cache = slice(0, t + 1)
                for variant in ("full", "se"):
                    start = time.perf_counter()
                    if variant == "full":
                        F.scaled_dot_product_attention(q[:, :, t:t + 1], k[:, :, cache], v[:, :, cache], scale=scale)
                    else:
                        se_decode(q[:, :, t:t + 1], k[:, :, cache], v[:, :, cache], params, state, None, scale)
                    times[variant].append(time.perf_counter() - start)
        per_token = {name: statistics.median(values) for name, values in times.items()}
        for variant, seconds in per_token.items():
            rows.append({"variant": variant, "context": context, "steps": steps, "s_per_token": seconds,
                         "tokens_per_s": 1.0 / seconds, "speedup_vs_full": per_token["full"] / seconds,
                         "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "device": device_name("cpu"),
                         "params": {"chunk_size": chunk_size, "block_size": block_size, "top_k": top_k}
                         if variant == "se" else {}})
    return rows
