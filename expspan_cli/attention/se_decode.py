"""SE-Attn in causal mode, for inference and decoding: each query ranks blocks with its chunk's queries up to
itself; `SEState` carries the block summaries, the unfinished block's queries and the chunk's running query sum
between decoding steps (the KV cache's companion)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from expspan_cli.attention.params import SEParams
from expspan_cli.attention.retrieval import block_summaries, eligible_blocks, top_blocks
from expspan_cli.errors import require


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
    Memory is O(n * (P + n)) booleans for the mask: whole sequences go through `se_causal`, a chunk at a time.
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
            eligible = eligible_blocks(chunk_start, blocks, s)[None, None] & state.block_real[:, None, None, :]
            idx, valid = top_blocks(scores, eligible, params.top_k)
            idx, valid = idx.expand(batch, heads, n, -1), valid.expand(batch, heads, n, -1)
        end = pos + 1
        state.chunk_qsum = prefix[:, :, -1] * ((end[-1] % chunk) != 0)
        state.length = total
    if recorder is not None:
        recorder.append({"chunk_size": chunk, "block_size": s, "positions": pos.cpu(),
                         "indices": None if idx is None else idx.masked_fill(~valid, -1).cpu()})
    if n == 1:  # a decoding step: attend to the keys it sees only, not to a mask over the whole cache
        return _step_attention(q, k, v, int(chunk_start[0]), idx, valid, s, real_all, real is not None, scale)
    with torch.no_grad():
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
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _step_attention(q, k, v, chunk_start: int, idx, valid, block_size: int, real_all: torch.Tensor, padded: bool,
                    scale: float) -> torch.Tensor:
    """One query over its own chunk so far plus its retrieved blocks: O(M + kS) keys, whatever the cache holds. The
    own chunk is read in place (a view of the cache), the blocks gathered; one softmax over both sets of scores.
    q [B, H, 1, D]; k/v [B, H, T, D]; idx/valid [B, H, 1, k] or None."""
    batch, heads, total, dim = k.shape
    own_k, own_v = k[:, :, chunk_start:], v[:, :, chunk_start:]
    scores = [q @ own_k.transpose(-1, -2)]  # [B, H, 1, m]
    seen = [real_all[:, None, None, chunk_start:].expand(batch, heads, 1, -1)]
    if idx is not None:
        offsets = torch.arange(block_size, device=k.device)
        at = (idx[:, :, 0].clamp(min=0)[..., None] * block_size + offsets).reshape(batch, heads, -1)  # [B, H, kS]
        rows = torch.arange(batch, device=k.device)[:, None, None]
        cols = torch.arange(heads, device=k.device)[None, :, None]
        block_k, block_v = k[rows, cols, at], v[rows, cols, at]  # whole rows of D, kS of them
        scores.append(q @ block_k.transpose(-1, -2))
        seen.append((valid[:, :, 0].repeat_interleave(block_size, dim=-1) & real_all[rows[..., 0], at])[:, :, None])
    mask = torch.cat(seen, dim=-1)
    if padded:
        mask[..., total - chunk_start - 1] = True  # the query always sees itself (as the full mask path does)
    weights = (torch.cat(scores, dim=-1).float() * scale).masked_fill_(~mask, float("-inf")).softmax(-1).to(q.dtype)
    own = total - chunk_start
    out = weights[..., :own] @ own_v
    return out if idx is None else out + weights[..., own:] @ block_v


def se_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, params: SEParams, chunk: int,
              real: torch.Tensor | None, scale: float, recorder: list | None = None) -> torch.Tensor:
    """Causal SE-Attn over a whole sequence (q, k, v of one length), a chunk of queries at a time: each call's mask
    is M x (the keys so far), so memory grows linearly in L instead of L x L. Equal to one `se_decode` call over
    the whole sequence, which is what a retrieval inspection (`recorder`) still makes: one record per layer call."""
    state = SEState.empty(chunk)
    length = q.shape[2]
    if recorder is not None or length <= chunk:
        return se_decode(q, k, v, params, state, real, scale, recorder)
    outs = []
    for start in range(0, length, chunk):
        end = min(start + chunk, length)
        outs.append(se_decode(q[:, :, start:end], k[:, :, :end], v[:, :, :end], params, state,
                              None if real is None else real[:, :end], scale))
    return torch.cat(outs, dim=2)


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
