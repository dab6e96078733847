"""`expspan bench attention`: forward and forward+backward time and peak memory of each variant on random q/k/v.

Times: every variant of one length on the same inputs, in interleaved rounds (`timings`), so that ratios to full
attention measured in the same run do not depend on when each variant happened to run. Peak memory is the most
bytes one forward+backward allocates at once: torch's peak allocated bytes on CUDA, the CPU allocator's own events
on CPU (peak_memory.py), where each (variant, length) is measured in a fresh process and the rise of its resident
memory is recorded beside it (`peak_rss_bytes`; it also counts what the C library's heap keeps of freed blocks).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import resource
import statistics
import time
from typing import Any

import torch

from expspan_cli.attention.common import expand_kv
from expspan_cli.attention.dispatch import attend
from expspan_cli.attention.flops import attention_flops, dense_peak_tflops
from expspan_cli.attention.lse_merge import merged_chunk_attention
from expspan_cli.attention.params import (
    SE_KERNELS,
    VARIANTS,
    S2Params,
    SEParams,
    SWParams,
    make_params,
)
from expspan_cli.attention.peak_memory import peak_allocated_bytes
from expspan_cli.errors import ExpspanError, require

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def variant_params(variant: str, chunk_size: int, block_size: int, top_k: int, window: int,
                   group_size_ratio: float, se_kernel: str = "lse_merge") -> Any:
    values = {"se": dict(chunk_sizes=[chunk_size], block_size=block_size, top_k=top_k, kernel=se_kernel),
              "swa": dict(window=window), "s2": dict(group_size_ratio=group_size_ratio), "full": {}}[variant]
    return make_params(variant, **values)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _inputs(length: int, heads: int, kv_heads: int, head_dim: int, dtype: str, device: str, batch: int = 1,
            seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded q, k, v (leaves that take gradients) and the output gradient of one benchmark shape."""
    torch.manual_seed(seed)
    dt = DTYPES[dtype]
    q = torch.randn(batch, heads, length, head_dim, device=device, dtype=dt, requires_grad=True)
    k = torch.randn(batch, kv_heads, length, head_dim, device=device, dtype=dt, requires_grad=True)
    v = torch.randn(batch, kv_heads, length, head_dim, device=device, dtype=dt, requires_grad=True)
    return q, k, v, torch.randn(batch, heads, length, head_dim, device=device, dtype=dt)


def _step(variant: str, params: Any, tensors: tuple[torch.Tensor, ...], device: str, backward: bool) -> float:
    q, k, v, grad_out = tensors
    _sync(device)
    start = time.perf_counter()
    out = attend(variant, params, q, k, v)
    if backward:
        out.backward(grad_out)
        q.grad = k.grad = v.grad = None
    _sync(device)
    return time.perf_counter() - start


def memory(variant: str, params: Any, length: int, heads: int, kv_heads: int, head_dim: int, dtype: str,
           device: str) -> dict[str, Any]:
    """Peak memory of one forward+backward (on CPU meant to run in its own process, where the rise of resident
    memory is a clean high-water mark)."""
    tensors = _inputs(length, heads, kv_heads, head_dim, dtype, device)
    if device.startswith("cuda"):
        _step(variant, params, tensors, device, True)  # one-time allocations (cuBLAS workspace, caches) first
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(variant, params, tensors, device, True)
        return {"peak_mem_bytes": int(torch.cuda.max_memory_allocated() - base), "peak_rss_bytes": None}
    base = _rss_bytes()
    _step(variant, params, tensors, device, True)  # the resident-memory rise first: the profiler's buffers
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base  # must not count in it
    peak = peak_allocated_bytes(lambda: _step(variant, params, tensors, device, True))
    return {"peak_mem_bytes": int(peak), "peak_rss_bytes": int(rss)}


def timings(cases: list[tuple[str, Any]], length: int, heads: int, kv_heads: int, head_dim: int, dtype: str,
            device: str, repeats: int) -> list[dict[str, Any]]:
    """Forward and forward+backward seconds of every (variant, params) case on the same inputs (each round's, and
    their medians), in rounds that time each case once: a shared machine that slows down for a minute then slows
    every case alike, where timing one variant after another could put full attention's long steps and SE's short
    ones in different minutes. SE rows (lse_merge kernel) add `se_parts`."""
    tensors = _inputs(length, heads, kv_heads, head_dim, dtype, device)
    for variant, params in cases:
        _step(variant, params, tensors, device, True)  # warm-up: kernel caches, thread pools
    fwd: list[list[float]] = [[] for _ in cases]
    both: list[list[float]] = [[] for _ in cases]
    for _ in range(repeats):
        for i, (variant, params) in enumerate(cases):
            fwd[i].append(_step(variant, params, tensors, device, False))
            both[i].append(_step(variant, params, tensors, device, True))
    rows = []
    for (variant, params), f, b in zip(cases, fwd, both):
        row = {"fwd_s": statistics.median(f), "fwd_bwd_s": statistics.median(b), "fwd_rounds_s": f,
               "fwd_bwd_rounds_s": b}
        if variant == "se" and params.kernel == "lse_merge":
            row["se_parts"] = se_parts(*(t.detach() for t in tensors[:3]), params, device, repeats)
        rows.append(row)
    return rows


def _run(fn: Any, *args: Any, fresh_process: bool) -> Any:
    """fn(*args), in a fresh spawned process where asked (CPU: memory high-water marks, no state of earlier runs)."""
    if not fresh_process:
        return fn(*args)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def se_parts(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, params: Any, device: str,
             repeats: int) -> dict[str, float]:
    """Where SE-Attn's paper-mode time goes, each part timed alone (median seconds): the retrieval (block summaries,
    chunk scores and top-k) and the summaries within it; the chunk attention (two flash calls merged), forward and
    forward+backward; of that attention, the flash forward+backward of every chunk's causal self-attention alone (the
    rest is the retrieved keys' part, the gathers, the merge and the block-gradient scatter); and the same chunks
    without the causal mask: its pairs are (M+1)/2M of the square's, so the two times' ratio shows what the
    kernel's diagonal tiles cost."""
    from expspan_cli.attention.common import pad_seq
    from expspan_cli.attention.flash_cuda import flash_ops
    from expspan_cli.attention.retrieval import block_summaries, select_blocks

    batch, heads, length, dim = q.shape
    chunk, scale = params.chunk_sizes[0], dim ** -0.5
    k, v = expand_kv(k, heads), expand_kv(v, heads)

    def timed(fn: Any) -> float:
        def once() -> float:
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            return time.perf_counter() - start
        once()
        return statistics.median(once() for _ in range(repeats))

    with torch.no_grad():
        summaries = timed(lambda: block_summaries(q, k, v, params.block_size, None, scale))
        retrieval = timed(lambda: select_blocks(q, k, v, params, chunk, None, scale))
        idx, valid = select_blocks(q, k, v, params, chunk, None, scale)
    n = -(-length // chunk)
    views = [pad_seq(t, chunk).view(batch, heads, n, chunk, dim).detach().requires_grad_() for t in (q, k, v)]
    ops = flash_ops(q)
    forward = timed(lambda: merged_chunk_attention(*views, idx, valid, params.block_size, scale, ops))

    def fwd_bwd() -> None:
        merged_chunk_attention(*views, idx, valid, params.block_size, scale, ops).sum().backward()
    own = [t.detach().reshape(-1, 1, chunk, dim) for t in views]  # chunks as the flash batch, as the kernel runs them

    def own_part(causal: bool) -> float:
        def run() -> None:
            out, lse, aux = ops.forward(*own, causal, None, scale)
            ops.backward(out, *own, out, lse, aux, causal, None, scale)
        return timed(run)
    return {"retrieval_s": retrieval, "summaries_s": summaries, "attention_fwd_s": forward,
            "attention_fwd_bwd_s": timed(fwd_bwd), "causal_part_fwd_bwd_s": own_part(True),
            "square_part_fwd_bwd_s": own_part(False)}


def full_kernel(device: str) -> str:
    """What full attention runs on: flash-attn's FlashAttention-2 when installed on CUDA, else PyTorch SDPA (on CUDA
    in half precision, its own FlashAttention-2 backend)."""
    import importlib.util

    if device.startswith("cuda"):
        return "flash-attn" if importlib.util.find_spec("flash_attn") else "sdpa (flash backend in fp16/bf16)"
    return "sdpa"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


# What a recipe's `bench:` section may set: bench_attention's arguments (its progress callback is the caller's).
BENCH_OPTIONS = ("variants", "lengths", "heads", "kv_heads", "head_dim", "chunk_size", "block_size", "top_k", "window",
                 "group_size_ratio", "dtype", "device", "repeats", "peak_tflops", "se_kernels")


def bench_attention(variants: list[str], lengths: list[int], heads: int = 8, kv_heads: int | None = None,
                    head_dim: int = 64, chunk_size: int = SEParams.chunk_sizes[0],
                    block_size: int = SEParams.block_size, top_k: int = SEParams.top_k,
                    window: int = SWParams.window, group_size_ratio: float = S2Params.group_size_ratio,
                    dtype: str = "float32",
                    device: str = "cpu", repeats: int = 3, peak_tflops: float | None = None,
                    se_kernels: tuple[str, ...] = ("lse_merge",), progress=None) -> list[dict[str, Any]]:
    """Measure every variant at every length; returns one row per (variant, SE kernel, length) with ratios to full,
    the attention FLOPs the variant performs, the TFLOP/s achieved on them and (where a dense matmul peak is known or
    given) their percentage of that peak."""
    for variant in variants:
        require(variant in VARIANTS, f"unknown attention variant {variant!r}", hint=f"one of {', '.join(VARIANTS)}")
    require(dtype in DTYPES, f"unknown dtype {dtype!r}", hint=f"one of {', '.join(DTYPES)}")
    require(all(n > 0 for n in lengths), "lengths must be positive")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ExpspanError(f"device {device!r} asked for, but CUDA is not available here", hint="use --device cpu")
    kv_heads = kv_heads or heads
    require(heads % kv_heads == 0, f"heads {heads} is not a multiple of kv heads {kv_heads}")
    require(peak_tflops is None or peak_tflops > 0, f"peak TFLOP/s must be positive, got {peak_tflops}")
    for kernel in se_kernels:
        require(kernel in SE_KERNELS, f"unknown SE kernel {kernel!r}", hint=f"one of {', '.join(SE_KERNELS)}")
    require(not ("se" in variants and "flex" in se_kernels and not device.startswith("cuda")),
            "SE kernel 'flex' needs --device cuda: torch's FlexAttention has no CPU backward",
            hint="measure --se-kernels lse_merge on CPU")
    name = device_name(device)
    peak = peak_tflops or dense_peak_tflops(name, dtype)
    # The baseline first, always measured; SE once per kernel.
    order = [(v, k) for v in ["full"] + [v for v in variants if v != "full"] for k in (se_kernels if v == "se"
                                                                                       else (None,))]
    rows = []
    fresh = not device.startswith("cuda")
    for length in lengths:
        cases = [(variant, kernel, variant_params(variant, chunk_size, block_size, top_k, window, group_size_ratio,
                                                  kernel or "lse_merge")) for variant, kernel in order]
        shape = (length, heads, kv_heads, head_dim, dtype, device)
        timed = _run(timings, [(v, p) for v, _, p in cases], *shape, repeats, fresh_process=fresh)
        for (variant, kernel, params), times in zip(cases, timed):
            row = {"variant": variant, "length": length, **times,
                   **_run(memory, variant, params, *shape, fresh_process=fresh)}
            flops = attention_flops(variant, params, length, heads, head_dim)
            achieved = flops["fwd_bwd"] / row["fwd_bwd_s"] / 1e12
            row.update(se_kernel=kernel, device=name, full_kernel=full_kernel(device), dtype=dtype, heads=heads,
                       kv_heads=kv_heads, head_dim=head_dim, batch=1, params=vars(params) if params is not None else {},
                       flops_fwd=flops["fwd"], flops_fwd_bwd=flops["fwd_bwd"], fwd_bwd_tflops=achieved,
                       peak_tflops=peak, pct_of_peak=100 * achieved / peak if peak else None)
            rows.append(row)
            if progress is not None:
                progress(row)
    for row in rows:
        base = next(r for r in rows if r["variant"] == "full" and r["length"] == row["length"])
        # Each round timed full attention and this variant minutes apart at most: the median of the rounds' ratios
        # is what a shared machine's slow spells disturb least.
        for key in ("fwd_bwd", "fwd"):
            ratios = [b / t for b, t in zip(base[f"{key}_rounds_s"], row[f"{key}_rounds_s"])]
            row[f"speedup_{key}_vs_full"] = statistics.median(ratios)
            row[f"speedup_{key}_range"] = [min(ratios), max(ratios)]
        row["mem_ratio_vs_full"] = row["peak_mem_bytes"] / max(base["peak_mem_bytes"], 1)
        # The speedup its admitted FLOPs allow over full attention, and how much of it the measured speedup reaches.
        row["flop_ratio_vs_full"] = base["flops_fwd_bwd"] / row["flops_fwd_bwd"]
        row["fraction_of_flop_ideal"] = row["speedup_fwd_bwd_vs_full"] / row["flop_ratio_vs_full"]
    return [r for r in rows if r["variant"] in variants]


# Issue 7's GPU targets for SE-Attn against full attention measured in the same run.
SPEEDUP_TARGETS = {65536: 5.0, 131072: 10.0}
MAX_MEM_RATIO = 1.05
MIN_PCT_OF_PEAK = 40.0


def target_report(rows: list[dict[str, Any]]) -> list[str]:
    """One line per SE row at a target length: its fwd+bwd speedup, memory ratio and % of peak, each marked met or
    missed (% of peak is not judged where no peak is known)."""
    lines = []
    for r in rows:
        if r["variant"] != "se" or r["length"] not in SPEEDUP_TARGETS:
            continue
        want = SPEEDUP_TARGETS[r["length"]]
        checks = [f"speedup {r['speedup_fwd_bwd_vs_full']:.2f}x (>= {want:g}x: "
                  f"{'met' if r['speedup_fwd_bwd_vs_full'] >= want else 'missed'})",
                  f"memory {r['mem_ratio_vs_full']:.3f} of full (<= {MAX_MEM_RATIO}: "
                  f"{'met' if r['mem_ratio_vs_full'] <= MAX_MEM_RATIO else 'missed'})"]
        if r.get("pct_of_peak") is not None:
            checks.append(f"{r['pct_of_peak']:.1f}% of {r['peak_tflops']:g} TFLOP/s (>= {MIN_PCT_OF_PEAK:g}%: "
                          f"{'met' if r['pct_of_peak'] >= MIN_PCT_OF_PEAK else 'missed'})")
        lines.append(f"se:{r.get('se_kernel') or 'lse_merge'} at {r['length']}: " + "; ".join(checks))
    return lines
