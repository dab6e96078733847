"""SE-Attn fast paths.

Paper mode (training): block summaries and chunk-block scores are computed without gradients (the top-k is hard, as
in the paper), the retrieved blocks are gathered with one index_select, and every chunk runs in ONE causal SDPA
call over [retrieved keys ; chunk keys]: putting k*S placeholder queries in front of the chunk's M queries turns
"see every retrieved key + own chunk causally" into a plain square causal mask, so the flash kernel skips the upper
triangle and no mask is stored. Memory is O(L * (M + kS)), never L^2.

Causal mode and decoding: each query ranks blocks with its chunk's queries up to itself; `SEState` carries the
block summaries, the unfinished block's queries and the chunk's running query sum between decoding steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from expspan_cli.attention.common import draw_chunk_size, expand_kv, pad_seq
from expspan_cli.attention.flex import flex_chunk_attention
from expspan_cli.attention.gpu import flash_ops
from expspan_cli.attention.lse_merge import gather_blocks, mergeable, merged_chunk_attention
from expspan_cli.attention.params import SEParams
from expspan_cli.errors import require


def block_summaries(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int,
                    real: torch.Tensor | None, scale: float) -> torch.Tensor:
    """c_j for each whole block of the given rows: mean over real rows of non-causal attention inside the block.

    q/k/v [B, H, U*S, D] (already expanded to query heads), real [B, U*S] or None. Returns [B, H, U, D] fp32.
    """
    batch, heads, length, dim = q.shape
    blocks = length // block_size
    shape = (batch, heads, blocks, block_size, dim)
    # Attention in the input dtype (no fp32 copies of q/k/v at long lengths); the mean is accumulated in fp32.
    qb, kb, vb = (t[:, :, : blocks * block_size].to(v.dtype).reshape(shape) for t in (q, k, v))
    if real is None:
        return F.scaled_dot_product_attention(qb, kb, vb, scale=scale).mean(-2, dtype=torch.float32)
    rb = real[:, : blocks * block_size].reshape(batch, 1, blocks, block_size)
    att = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=rb[:, :, :, None, :], scale=scale)
    weights = rb[..., None].to(att.dtype)
    return (att.nan_to_num(0.0) * weights).sum(-2, dtype=torch.float32) / weights.sum(-2).float().clamp(min=1.0)


def _eligible(chunk_starts: torch.Tensor, blocks: int, block_size: int) -> torch.Tensor:
    """[..., U] True where block j ends at or before the chunk's first token (paper: strictly past blocks)."""
    ends = (torch.arange(blocks, device=chunk_starts.device) + 1) * block_size
    return ends <= chunk_starts[..., None]


def _block_has_real(real: torch.Tensor | None, blocks: int, block_size: int) -> torch.Tensor | None:
    if real is None:
        return None
    return real[:, : blocks * block_size].reshape(real.shape[0], blocks, block_size).any(-1)


def _top_blocks(scores: torch.Tensor, eligible: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k eligible blocks: (indices, valid), both [..., k'] with k' = min(top_k, U)."""
    scores = scores.masked_fill(~eligible, float("-inf"))
    kk = min(top_k, scores.shape[-1])
    values, idx = scores.topk(kk, dim=-1)
    return idx, values > float("-inf")


def select_blocks(q, k, v, params: SEParams, chunk: int, real: torch.Tensor | None, scale: float):
    """Paper-mode retrieval. q/k/v [B, H, L, D] (unpadded), returns (idx, valid) of shape [B, H, T, k'] or None."""
    batch, heads, length, dim = q.shape
    s = params.block_size
    n_chunks = -(-length // chunk)
    blocks = length // s
    max_eligible = ((n_chunks - 1) * chunk) // s
    if params.memory == "none" or params.top_k == 0 or max_eligible == 0:
        return None
    chunk_starts = torch.arange(n_chunks, device=q.device) * chunk
    eligible = _eligible(chunk_starts, blocks, s)[None, None]  # [1, 1, T, U]
    has_real = _block_has_real(real, blocks, s)
    if has_real is not None:
        eligible = eligible & has_real[:, None, None, :]
    sel_heads = heads if params.retrieval == "per_head" else 1
    if params.memory == "random":
        scores = torch.rand(batch, sel_heads, n_chunks, max(blocks, 1), device=q.device)[..., :blocks]
    else:
        c = block_summaries(q, k, v, s, real, scale)  # [B, H, U, D]
        qr = q if real is None else q * real[:, None, :, None].to(q.dtype)
        qsum = pad_seq(qr, chunk).reshape(batch, heads, n_chunks, chunk, dim).sum(3, dtype=torch.float32)
        scores = qsum @ c.transpose(-1, -2)  # [B, H, T, U]
        if params.retrieval == "shared":
            scores = scores.sum(1, keepdim=True)
    idx, valid = _top_blocks(scores, eligible, min(params.top_k, max_eligible))
    return idx.expand(batch, heads, *idx.shape[2:]), valid.expand(batch, heads, *valid.shape[2:])


def _gather_blocks(x: torch.Tensor, idx: torch.Tensor, block_size: int) -> torch.Tensor:
    """x [B, H, Lp, D], idx [B, H, T, k'] -> [B, H, T, k' * S, D] (one index_select over all chunks and heads)."""
    batch, heads, length, dim = x.shape
    base = (torch.arange(batch * heads, device=x.device) * (length // block_size)).view(batch, heads, 1, 1)
    flat = (idx + base).reshape(batch * heads, *idx.shape[2:])
    return gather_blocks(x, flat, block_size).view(batch, heads, idx.shape[2], -1, dim)


def se_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, params: SEParams,
                 key_padding: torch.Tensor | None = None, scale: float | None = None, chunk_size: int | None = None,
                 recorder: list | None = None, kernel: str = "auto") -> torch.Tensor:
    """SE-Attn over a whole sequence (Lq == Lk). q [B, Hq, L, D], k/v [B, Hkv, L, D] -> [B, Hq, L, D].

    params.kernel "flex" runs one FlexAttention call over a retrieval BlockMask (unpadded input with retrieval; else
    the paths below). Otherwise `kernel`: "auto" picks by device and input; "merged" (two flash calls merged by
    log-sum-exp, CPU or CUDA), "dense" (one causal call with placeholder queries) and "masked" (explicit mask, handles
    everything) force one path where the input allows it, else the masked one.
    """
    batch, heads, length, dim = q.shape
    scale = scale if scale is not None else 1.0 / math.sqrt(dim)
    chunk = chunk_size or draw_chunk_size(params.chunk_sizes)
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    real = None if key_padding is None or bool(key_padding.all()) else key_padding.bool()
    if params.causal_retrieval:
        return se_decode(q, k, v, params, SEState.empty(chunk), real, scale, recorder)
    with torch.no_grad():
        picked = select_blocks(q, k, v, params, chunk, real, scale)
    if recorder is not None:
        recorder.append(_record(picked, chunk, params.block_size, length))
    if params.kernel == "flex" and picked is not None and real is None:
        out = flex_chunk_attention(*(pad_seq(t, chunk) for t in (q, k, v)), *picked, chunk, params.block_size, scale)
        return out[:, :, :length]
    n_chunks = -(-length // chunk)
    qc, kc, vc = (pad_seq(t, chunk).view(batch, heads, n_chunks, chunk, dim) for t in (q, k, v))
    ops = flash_ops(q)
    can_merge = picked is not None and real is None and ops is not None and mergeable(*picked, ops)
    if kernel == "auto" and picked is not None and real is None:
        kernel = "merged" if can_merge else "dense" if bool(picked[1][:, :, 1:].all()) else "masked"
    if picked is None:
        out = _chunk_local(qc, kc, vc, real, scale)
    elif kernel == "merged" and can_merge:
        out = merged_chunk_attention(qc, kc, vc, *picked, params.block_size, scale, ops)
    elif kernel == "dense" and real is None and bool(picked[1][:, :, 1:].all()):
        out = _retrieval_dense(qc, kc, vc, picked[0], params.block_size, scale)
    else:
        out = _retrieval_masked(qc, kc, vc, picked, params.block_size, real, scale)
    return out.reshape(batch, heads, n_chunks * chunk, dim)[:, :, :length]


def _chunk_local(qc, kc, vc, real, scale):
    """Every chunk attends causally to itself only (SE-Attn-NoMem, or a sequence of one chunk)."""
    batch, heads, n_chunks, chunk, dim = qc.shape
    flat = [t.reshape(batch, heads * n_chunks, chunk, dim) for t in (qc, kc, vc)]
    if real is None:
        out = F.scaled_dot_product_attention(*flat, is_causal=True, scale=scale)
    else:
        own = pad_seq(real, chunk, dim=1).view(batch, 1, n_chunks, 1, chunk)
        mask = own & torch.ones(chunk, chunk, dtype=torch.bool, device=qc.device).tril()
        mask = mask | torch.eye(chunk, dtype=torch.bool, device=qc.device)
        out = F.scaled_dot_product_attention(*flat, attn_mask=mask.expand(batch, heads, -1, -1, -1).reshape(
            batch, heads * n_chunks, chunk, chunk), scale=scale)
    return out.view(batch, heads, n_chunks, chunk, dim)


def _retrieval_dense(qc, kc, vc, idx, block_size, scale):
    """All slots of chunks 1.. are valid and nothing is padded: chunk 0 is plain causal, the rest one causal call."""
    batch, heads, n_chunks, chunk, dim = qc.shape
    head = F.scaled_dot_product_attention(qc[:, :, 0], kc[:, :, 0], vc[:, :, 0], is_causal=True, scale=scale)
    rest = idx[:, :, 1:]
    span = rest.shape[-1] * block_size
    kp, vp = (t.reshape(batch, heads, n_chunks * chunk, dim) for t in (kc, vc))
    keys = torch.cat([_gather_blocks(kp, rest, block_size), kc[:, :, 1:]], dim=3)
    values = torch.cat([_gather_blocks(vp, rest, block_size), vc[:, :, 1:]], dim=3)
    placeholders = qc.new_zeros(batch, heads, n_chunks - 1, span, dim)
    queries = torch.cat([placeholders, qc[:, :, 1:]], dim=3)
    width = span + chunk
    out = F.scaled_dot_product_attention(*(t.reshape(batch, heads * (n_chunks - 1), width, dim)
                                           for t in (queries, keys, values)), is_causal=True, scale=scale)
    out = out.view(batch, heads, n_chunks - 1, width, dim)[:, :, :, span:]
    return torch.cat([head[:, :, None], out], dim=2)


def _retrieval_masked(qc, kc, vc, picked, block_size, real, scale):
    """General case (padding, or chunks with fewer than k eligible blocks): an explicit [M, kS + M] mask per chunk."""
    idx, valid = picked
    batch, heads, n_chunks, chunk, dim = qc.shape
    span = idx.shape[-1] * block_size
    kp, vp = (t.reshape(batch, heads, n_chunks * chunk, dim) for t in (kc, vc))
    safe = idx.clamp(min=0)
    keys = torch.cat([_gather_blocks(kp, safe, block_size), kc], dim=3)
    values = torch.cat([_gather_blocks(vp, safe, block_size), vc], dim=3)
    slot_ok = valid.repeat_interleave(block_size, dim=-1)  # [B, H, T, kS]
    own_ok = torch.ones(batch, 1, n_chunks, chunk, dtype=torch.bool, device=qc.device)
    if real is not None:
        real_p = pad_seq(real, chunk, dim=1)
        blocks = real_p.view(batch, -1, block_size)
        gathered = blocks[torch.arange(batch, device=qc.device)[:, None, None, None], safe]  # [B, H, T, k', S]
        slot_ok = slot_ok & gathered.reshape(batch, heads, n_chunks, span)
        own_ok = real_p.view(batch, 1, n_chunks, chunk)
    tril = torch.ones(chunk, chunk, dtype=torch.bool, device=qc.device).tril()
    own = (own_ok[:, :, :, None, :] & tril) | torch.eye(chunk, dtype=torch.bool, device=qc.device)
    mask = torch.cat([slot_ok[:, :, :, None, :].expand(-1, -1, -1, chunk, -1),
                      own.expand(batch, heads, -1, -1, -1)], dim=-1)
    width = span + chunk
    out = F.scaled_dot_product_attention(
        qc.reshape(batch, heads * n_chunks, chunk, dim), keys.reshape(batch, heads * n_chunks, width, dim),
        values.reshape(batch, heads * n_chunks, width, dim),
        attn_mask=mask.reshape(batch, heads * n_chunks, chunk, width), scale=scale)
    return out.view(batch, heads, n_chunks, chunk, dim)


def _record(picked, chunk: int, block_size: int, length: int) -> dict:
    n_chunks = -(-length // chunk)
    if picked is None:
        idx = torch.empty(0, dtype=torch.long)
    else:
        idx = picked[0].masked_fill(~picked[1], -1).cpu()
    return {"chunk_size": chunk, "block_size": block_size, "chunk_starts": torch.arange(n_chunks) * chunk,
            "indices": idx}


@dataclass
class SEState:
    """What SE-Attn needs from earlier steps to decode: everything else is in the KV cache."""

    chunk: int
    length: int = 0  # tokens seen so far
    summaries: torch.Tensor | None = None  # [B, H, U, D] fp32, one per finished block
    block_real: torch.Tensor | None = None  # [B, U] whether each finished block holds a real token
    pending_q: torch.Tensor | None = None  # [B, H, r, D] fp32 queries of the unfinished block (real-masked)
    pending_real: torch.Tensor | None = None  # [B, r]
    chunk_qsum: torch.Tensor | None = None  # [B, H, D] fp32 sum of this chunk's queries so far

    @classmethod
    def empty(cls, chunk: int) -> "SEState":
        return cls(chunk=chunk)


def se_decode(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, params: SEParams, state: SEState,
              real: torch.Tensor | None, scale: float, recorder: list | None = None) -> torch.Tensor:
    """Causal SE-Attn for queries at positions [P, P + n) over keys [0, P + n), P = state.length.

    Each query ranks eligible blocks with the sum of its chunk's queries up to itself; the state is advanced in
    place. q [B, H, n, D], k/v [B, H, P + n, D] expanded to query heads; real [B, P + n] or None.
    Memory is O(n * (P + n)) booleans for the mask: meant for inference and evaluation, not long training.
    """
    require(params.memory != "random", "se: memory='random' has no causal/decoding form",
            hint="SE-Attn-Random is a fine-tuning ablation; use memory='relevancy' or 'none' here")
    batch, heads, n, dim = q.shape
    start, total = state.length, k.shape[2]
    require(total == start + n, f"se: KV cache holds {total} tokens but SE-Attn state expects {start + n}",
            hint="prefill and decode must both run with SE-Attn, with a cache that is not cropped or reordered")
    s, chunk = params.block_size, state.chunk
    dev = q.device
    real_all = torch.ones(batch, total, dtype=torch.bool, device=dev) if real is None else real.bool()
    new_real = real_all[:, start:]
    qf = q.detach().float() * new_real[:, None, :, None]
    with torch.no_grad():
        _advance_summaries(state, qf, k.detach(), v.detach(), new_real, s, scale)
        pos = torch.arange(start, total, device=dev)
        chunk_start = pos - pos % chunk
        # Running query sum inside each query's chunk, carrying what earlier steps saw of the current chunk.
        csum = qf.cumsum(2)
        first = (chunk_start - start).clamp(min=0)
        before = csum[:, :, (first - 1).clamp(min=0)] * (first > 0).to(qf.dtype)[:, None]
        prefix = csum - before
        if state.chunk_qsum is not None:
            carried = (chunk_start < start).to(qf.dtype)[None, None, :, None]
            prefix = prefix + carried * state.chunk_qsum[:, :, None, :]
        blocks = state.summaries.shape[2] if state.summaries is not None else 0
        idx = valid = None
        if params.memory == "relevancy" and params.top_k > 0 and blocks > 0:
            scores = prefix @ state.summaries.transpose(-1, -2)  # [B, H, n, U]
            if params.retrieval == "shared":
                scores = scores.sum(1, keepdim=True)
            eligible = _eligible(chunk_start, blocks, s)[None, None] & state.block_real[:, None, None, :]
            idx, valid = _top_blocks(scores, eligible, params.top_k)
            idx, valid = idx.expand(batch, heads, n, -1), valid.expand(batch, heads, n, -1)
        end = pos + 1
        state.chunk_qsum = prefix[:, :, -1] * ((end[-1] % chunk) != 0)
        state.length = total
        keys = torch.arange(total, device=dev)
        mask = (keys[None, :] >= chunk_start[:, None]) & (keys[None, :] <= pos[:, None])  # own chunk, causal
        mask = mask[None, None].expand(batch, heads, n, total).clone()
        if idx is not None:
            hit = torch.zeros(batch, heads, n, blocks + 1, dtype=torch.bool, device=dev)
            hit.scatter_(3, torch.where(valid, idx, blocks), True)
            block_keys = hit[..., :blocks].repeat_interleave(s, dim=-1)
            mask[..., : blocks * s] |= block_keys
        if real is not None:
            mask &= real_all[:, None, None, :]
            mask[..., start:] |= torch.eye(n, dtype=torch.bool, device=dev)
    if recorder is not None:
        recorder.append({"chunk_size": chunk, "block_size": s, "positions": pos.cpu(),
                         "indices": None if idx is None else idx.masked_fill(~valid, -1).cpu()})
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def prefill_state(q, k, v, params: SEParams, chunk: int, real: torch.Tensor | None, scale: float) -> SEState:
    """The decoding state after a whole-sequence call, so generation can continue from a paper-mode prefill."""
    batch, heads, length, _ = q.shape
    state = SEState.empty(chunk)
    new_real = torch.ones(batch, length, dtype=torch.bool, device=q.device) if real is None else real
    qf = q.detach().float() * new_real[:, None, :, None]
    with torch.no_grad():
        _advance_summaries(state, qf, k.detach(), v.detach(), new_real, params.block_size, scale)
    tail = length % chunk
    state.chunk_qsum = qf[:, :, length - tail:].sum(2) if tail else torch.zeros_like(qf[:, :, 0])
    state.length = length
    return state


def _advance_summaries(state: SEState, qf, k, v, new_real, block_size: int, scale: float) -> None:
    """Fold the new queries into the pending block and summarise every block they complete."""
    pend_q = qf if state.pending_q is None else torch.cat([state.pending_q, qf], dim=2)
    pend_r = new_real if state.pending_real is None else torch.cat([state.pending_real, new_real], dim=1)
    done = pend_q.shape[2] // block_size
    if done:
        first = state.length - (0 if state.pending_q is None else state.pending_q.shape[2])
        rows = slice(first, first + done * block_size)
        real = pend_r[:, : done * block_size]
        c = block_summaries(pend_q[:, :, : done * block_size], k[:, :, rows], v[:, :, rows], block_size,
                            None if bool(real.all()) else real, scale)
        has = real.view(real.shape[0], done, block_size).any(-1)
        state.summaries = c if state.summaries is None else torch.cat([state.summaries, c], dim=2)
        state.block_real = has if state.block_real is None else torch.cat([state.block_real, has], dim=1)
    state.pending_q = pend_q[:, :, done * block_size:]
    state.pending_real = pend_r[:, done * block_size:]
