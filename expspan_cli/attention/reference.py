"""Plain, obvious implementations of every variant: dense masks and loops, slow on purpose. Tests hold each fast
path to these. Shapes: q [B, Hq, Lq, D], k/v [B, Hkv, Lk, D]; queries are the last Lq of the Lk positions."""

from __future__ import annotations

import math

import torch

from expspan_cli.attention.common import draw_chunk_size, expand_kv, visible_keys
from expspan_cli.attention.params import S2Params, SEParams, SWParams


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                     scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + log mask) v, with mask broadcastable to [B, H, Lq, Lk] (True = attend)."""
    k, v = expand_kv(k, q.shape[1]), expand_kv(v, q.shape[1])
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    logits = (q.float() @ k.float().transpose(-1, -2)) * scale
    logits = logits.masked_fill(~mask, float("-inf"))
    return (logits.softmax(-1) @ v.float()).to(q.dtype)


def causal_mask(q_len: int, k_len: int, device=None) -> torch.Tensor:
    qi = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    return torch.arange(k_len, device=device)[None, :] <= qi


def full_reference(q, k, v, key_padding=None, scale=None):
    mask = causal_mask(q.shape[2], k.shape[2], q.device)
    pad = visible_keys(key_padding, q.shape[2], k.shape[2])
    return masked_attention(q, k, v, mask if pad is None else mask & pad, scale)


def swa_reference(q, k, v, params: SWParams, key_padding=None, scale=None):
    q_len, k_len = q.shape[2], k.shape[2]
    qi = torch.arange(k_len - q_len, k_len, device=q.device)[:, None]
    kj = torch.arange(k_len, device=q.device)[None, :]
    mask = (kj <= qi) & (kj > qi - params.window)
    pad = visible_keys(key_padding, q_len, k_len)
    return masked_attention(q, k, v, mask if pad is None else mask & pad, scale)


def s2_group_ids(length: int, group: int, shifted: bool) -> torch.Tensor:
    """Group index of each position: groups of `group` tokens, or (shifted) a half group first, then full groups."""
    pos = torch.arange(length)
    return (pos + group // 2) // group if shifted else pos // group


def s2_reference(q, k, v, params: S2Params, key_padding=None, scale=None):
    """Dense mask of LongLoRA's no-wrap S2-Attn: causal inside groups; heads H/2.. use groups shifted by G/2."""
    length, heads = q.shape[2], q.shape[1]
    group = max(1, int(length * params.group_size_ratio))
    masks = []
    for h in range(heads):
        ids = s2_group_ids(length, group, shifted=h >= heads // 2)
        masks.append((ids[:, None] == ids[None, :]) & causal_mask(length, length))
    mask = torch.stack(masks)[None].to(q.device)
    pad = visible_keys(key_padding, length, length)
    return masked_attention(q, k, v, mask if pad is None else mask & pad, scale)


def block_summaries_reference(q, k, v, block_size: int, key_padding=None, scale=None) -> torch.Tensor:
    """c_j: mean over block j's (real) rows of non-causal attention inside block j. Returns [B, H, U, D] (fp32)."""
    batch, heads, length, dim = q.shape
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    scale = scale if scale is not None else 1.0 / math.sqrt(dim)
    blocks = length // block_size
    out = torch.zeros(batch, heads, blocks, dim)
    for b in range(batch):
        for h in range(heads):
            for j in range(blocks):
                sl = slice(j * block_size, (j + 1) * block_size)
                real = torch.ones(block_size, dtype=torch.bool) if key_padding is None else key_padding[b, sl].bool()
                if not real.any():
                    continue
                logits = (q[b, h, sl].float() @ k[b, h, sl].float().T) * scale
                att = logits.masked_fill(~real[None, :], float("-inf")).softmax(-1) @ v[b, h, sl].float()
                out[b, h, j] = att[real].mean(0)
    return out


def se_reference(q, k, v, params: SEParams, key_padding=None, scale=None, chunk_size: int | None = None):
    """SE-Attn by the book (training/prefill: Lq == Lk), one (batch, head, chunk or token) at a time.

    Paper mode scores each eligible block once per chunk with the sum of all the chunk's queries; causal mode scores
    for each query with the sum of its chunk's queries up to and including itself.
    """
    batch, heads, length, dim = q.shape
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    m = chunk_size or draw_chunk_size(params.chunk_sizes)
    s = params.block_size
    c = block_summaries_reference(q, k, v, s, key_padding, scale)
    n_blocks = length // s
    real_q = torch.ones(batch, length, dtype=torch.bool) if key_padding is None else key_padding.bool()
    has_real = torch.zeros(batch, n_blocks, dtype=torch.bool)
    for j in range(n_blocks):
        has_real[:, j] = real_q[:, j * s:(j + 1) * s].any(-1)
    random_scores = (torch.rand(batch, heads if params.retrieval == "per_head" else 1, (length + m - 1) // m,
                                max(n_blocks, 1)) if params.memory == "random" else None)

    def choose(b: int, h: int, chunk: int, qsum_by_head: torch.Tensor) -> list[int]:
        eligible = [j for j in range(n_blocks) if (j + 1) * s <= chunk * m and has_real[b, j]]
        if params.memory == "none" or not eligible or params.top_k == 0:
            return []
        if params.memory == "random":
            score = {j: random_scores[b, h if params.retrieval == "per_head" else 0, chunk, j].item() for j in eligible}
        elif params.retrieval == "per_head":
            score = {j: (qsum_by_head[h] @ c[b, h, j]).item() for j in eligible}
        else:
            score = {j: sum((qsum_by_head[g] @ c[b, g, j]).item() for g in range(heads)) for j in eligible}
        return sorted(eligible, key=lambda j: -score[j])[: params.top_k]

    mask = torch.zeros(batch, heads, length, length, dtype=torch.bool)
    for b in range(batch):
        for t in range(length):
            chunk = t // m
            start = chunk * m
            rows = [r for r in range(start, (t + 1) if params.causal_retrieval else min(start + m, length))
                    if real_q[b, r]]
            qsum = q[b, :, rows].float().sum(1) if rows else torch.zeros(heads, dim)
            for h in range(heads):
                for j in choose(b, h, chunk, qsum):
                    mask[b, h, t, j * s:(j + 1) * s] = True
                mask[b, h, t, start:t + 1] = True
    pad = visible_keys(key_padding, length, length)
    return masked_attention(q, k, v, mask if pad is None else mask & pad, scale)
