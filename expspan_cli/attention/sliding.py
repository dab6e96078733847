"""Causal sliding-window attention: each query sees itself and the window - 1 keys before it.

Fast path (flash ops on CPU or CUDA): queries in chunks of W attend to their own chunk causally (part A) and to the
previous chunk (part B), merged by log-sum-exp as in lse_merge.py. In part B, query row r of a chunk sees the
previous chunk's keys t > r; reversing both, row r' = W-2-r sees t' = W-1-t <= r', a plain causal square of W-1, so
both parts are causal flash calls: the FLOPs are the band's, no mask exists, and part B's reversed copies live one
piece (lse_merge.pieces) at a time. Otherwise (padding, decoding steps, other devices): one [W, 2W] band mask per
chunk."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from typing import Any

from expspan_cli.attention.common import expand_kv, pad_seq, visible_keys
from expspan_cli.attention.flash_cuda import flash_ops
from expspan_cli.attention.lse_merge import FlashOps, merge_into, one_head, pieces
from expspan_cli.attention.params import SWParams


def band_mask(q_len: int, k_len: int, window: int, device=None) -> torch.Tensor:
    qi = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    kj = torch.arange(k_len, device=device)[None, :]
    return (kj <= qi) & (kj > qi - window)


def _previous_chunk(t: torch.Tensor, rows: slice, chunks: slice, queries: bool) -> torch.Tensor:
    """Part B's operand, reversed along the chunk: the query chunks' queries without the last row (it sees no
    earlier chunk), or the chunks before them: their keys/values without the first (no later query sees it)."""
    return (t[rows, chunks, :-1] if queries else t[rows, chunks, 1:]).flip(2)


class ChunkWindowAttention(torch.autograd.Function):
    """q/k/v: contiguous [N, T, W, D] (N = batch * heads, T chunks of the window W) -> [N, T, W, D]."""

    @staticmethod
    def forward(ctx: Any, q, k, v, scale: float, ops: FlashOps):
        out, lse, aux_a = ops.forward(*one_head(q, k, v), True, None, scale)
        out, lse = out.view(q.shape), lse.view(q.shape[:3])
        aux_b = ()
        for rows, before, after in pieces(q.shape[0], q.shape[1] - 1, q.shape[2] * q.shape[3]):
            qb = _previous_chunk(q, rows, after, True)
            kb, vb = (_previous_chunk(t, rows, before, False) for t in (k, v))
            out_b, lse_b, aux_b = ops.forward(*one_head(qb, kb, vb), True, None, scale)
            merge_into(out[rows, after, :-1], lse[rows, after, :-1], out_b.view(qb.shape).flip(2),
                       lse_b.view(qb.shape[:3]).flip(2))
            del out_b, lse_b, qb, kb, vb
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.ops, ctx.aux = scale, ops, (aux_a, aux_b)
        return out

    @staticmethod
    def backward(ctx: Any, grad):
        q, k, v, out, lse = ctx.saved_tensors
        scale, ops, (aux_a, aux_b) = ctx.scale, ctx.ops, ctx.aux
        grad = grad.contiguous()
        grads = ops.backward(*one_head(grad, q, k, v, out), lse.view(-1, 1, lse.shape[-1]), aux_a, True, None, scale)
        dq, dk, dv = (t.view(q.shape) for t in grads)
        # With the merged output and lse, each part's flash backward gives its share of the union's gradient.
        for rows, before, after in pieces(q.shape[0], q.shape[1] - 1, q.shape[2] * q.shape[3]):
            gb, qb, ob = (_previous_chunk(t, rows, after, True) for t in (grad, q, out))
            kb, vb = (_previous_chunk(t, rows, before, False) for t in (k, v))
            lb = lse[rows, after, :-1].flip(2)
            dqb, dkb, dvb = ops.backward(*one_head(gb, qb, kb, vb, ob), lb.reshape(-1, 1, lb.shape[-1]).contiguous(),
                                         aux_b, True, None, scale)
            dq[rows, after, :-1].add_(dqb.view(qb.shape).flip(2))
            dk[rows, before, 1:].add_(dkb.view(kb.shape).flip(2))
            dv[rows, before, 1:].add_(dvb.view(vb.shape).flip(2))
            del dqb, dkb, dvb, gb, qb, ob, kb, vb  # before the next piece allocates its own
        return dq, dk, dv, None, None


def swa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, params: SWParams,
                  key_padding: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    batch, heads, q_len, dim = q.shape
    k_len, w = k.shape[2], params.window
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    if key_padding is not None or q_len != k_len:  # padded batches and decoding steps: one explicit band mask
        mask = band_mask(q_len, k_len, w, q.device)
        pad = visible_keys(key_padding, q_len, k_len)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask if pad is None else mask & pad, scale=scale)
    if q_len <= w:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    n = -(-q_len // w)
    ops = flash_ops(q)
    if ops is not None and w > 1:
        scale = scale if scale is not None else dim ** -0.5
        views = (pad_seq(t, w).contiguous().view(batch * heads, n, w, dim) for t in (q, k, v))
        out = ChunkWindowAttention.apply(*views, scale, ops)
        return out.view(batch, heads, n * w, dim)[:, :, :q_len]
    qc, kc, vc = (pad_seq(t, w).view(batch, heads, n, w, dim) for t in (q, k, v))
    head = F.scaled_dot_product_attention(qc[:, :, 0], kc[:, :, 0], vc[:, :, 0], is_causal=True, scale=scale)
    keys = torch.cat([kc[:, :, :-1], kc[:, :, 1:]], dim=3).reshape(batch, heads * (n - 1), 2 * w, dim)
    values = torch.cat([vc[:, :, :-1], vc[:, :, 1:]], dim=3).reshape(batch, heads * (n - 1), 2 * w, dim)
    col = torch.arange(2 * w, device=q.device)[None, :]
    row = torch.arange(w, device=q.device)[:, None]
    rest = F.scaled_dot_product_attention(qc[:, :, 1:].reshape(batch, heads * (n - 1), w, dim), keys, values,
                                          attn_mask=(col > row) & (col <= row + w), scale=scale)
    out = torch.cat([head[:, :, None], rest.view(batch, heads, n - 1, w, dim)], dim=2)
    return out.reshape(batch, heads, n * w, dim)[:, :, :q_len]
