"""SE-Attn's retrieval, shared by the paper mode and the causal/decoding mode: block summaries (each block's key
summary, a query-weighted mean), chunk-to-block relevancy scores, and the top-k of the blocks a chunk may see."""

from __future__ import annotations

import itertools

import torch

from expspan_cli.attention.common import pad_seq
from expspan_cli.attention.lse_merge import gather_blocks
from expspan_cli.attention.params import SEParams


SUMMARY_SLICE = 1 << 20  # score entries per slice of blocks: a slice's S x S scores stay in cache


@torch.no_grad()  # retrieval is hard: nothing flows back through the summaries
def block_summaries(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int,
                    real: torch.Tensor | None, scale: float) -> torch.Tensor:
    """c_j for each whole block of the given rows: mean over real rows of non-causal attention inside the block.

    The mean of the rows' outputs is the mean of their attention weights times v, so each block costs one S x S
    score matrix and one S-vector product instead of an S x S x D attention, in fp32, a slice of blocks at a time.
    q/k/v [B, H, U*S, D] (already expanded to query heads), real [B, U*S] or None. Returns [B, H, U, D] fp32.
    """
    batch, heads, length, dim = q.shape
    blocks = length // block_size
    shape = (batch, heads, blocks, block_size, dim)
    qb, kb, vb = (t[:, :, : blocks * block_size].reshape(shape) for t in (q, k, v))  # views: L is split only
    rb = None if real is None else real[:, : blocks * block_size].reshape(batch, blocks, block_size).bool()
    out = torch.empty(batch, heads, blocks, dim, dtype=torch.float32, device=q.device)
    step = max(1, SUMMARY_SLICE // block_size ** 2)
    for b, h, lo in itertools.product(range(batch), range(heads), range(0, blocks, step)):
        sl = slice(lo, lo + step)  # [u, S, D] views of one row: bmm reads their strides, nothing is copied
        scores = torch.bmm(qb[b, h, sl].float(), kb[b, h, sl].float().transpose(1, 2)).mul_(scale)
        if rb is None:
            weights = scores.softmax(-1).mean(1)
        else:
            keep = rb[b, sl]
            probs = scores.masked_fill_(~keep[:, None, :], float("-inf")).softmax(-1).nan_to_num_(0.0)
            weights = (probs * keep[:, :, None]).sum(1) / keep.sum(-1, keepdim=True).clamp(min=1)
        torch.bmm(weights[:, None, :], vb[b, h, sl].float(), out=out[b, h, sl, None])
    return out


def eligible_blocks(chunk_starts: torch.Tensor, blocks: int, block_size: int) -> torch.Tensor:
    """[..., U] True where block j ends at or before the chunk's first token (paper: strictly past blocks)."""
    ends = (torch.arange(blocks, device=chunk_starts.device) + 1) * block_size
    return ends <= chunk_starts[..., None]


def block_has_real(real: torch.Tensor | None, blocks: int, block_size: int) -> torch.Tensor | None:
    if real is None:
        return None
    return real[:, : blocks * block_size].reshape(real.shape[0], blocks, block_size).any(-1)


def top_blocks(scores: torch.Tensor, eligible: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
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
    eligible = eligible_blocks(chunk_starts, blocks, s)[None, None]  # [1, 1, T, U]
    has_real = block_has_real(real, blocks, s)
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
    idx, valid = top_blocks(scores, eligible, min(params.top_k, max_eligible))
    return idx.expand(batch, heads, *idx.shape[2:]), valid.expand(batch, heads, *valid.shape[2:])


def gather_retrieved(x: torch.Tensor, idx: torch.Tensor, block_size: int) -> torch.Tensor:
    """x [B, H, Lp, D], idx [B, H, T, k'] -> [B, H, T, k' * S, D] (one index_select over all chunks and heads)."""
    batch, heads, length, dim = x.shape
    base = (torch.arange(batch * heads, device=x.device) * (length // block_size)).view(batch, heads, 1, 1)
    flat = (idx + base).reshape(batch * heads, *idx.shape[2:])
    return gather_blocks(x, flat, block_size).view(batch, heads, idx.shape[2], -1, dim)
