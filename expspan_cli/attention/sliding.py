"""Causal sliding-window attention: each query sees itself and the window - 1 keys before it.

Training path: queries in chunks of W attend to [previous chunk ; own chunk] under one fixed [W, 2W] band mask,
so compute and memory are O(L * W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from expspan_cli.attention.common import expand_kv, pad_seq, visible_keys
from expspan_cli.attention.params import SWParams


def band_mask(q_len: int, k_len: int, window: int, device=None) -> torch.Tensor:
    qi = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    kj = torch.arange(k_len, device=device)[None, :]
    return (kj <= qi) & (kj > qi - window)


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
