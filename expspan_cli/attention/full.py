"""Full causal attention: flash-attn on CUDA when installed, PyTorch SDPA otherwise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from expspan_cli.attention.common import expand_kv, visible_keys


def _flash_attn_func():
    try:
        from flash_attn import flash_attn_func
    except ImportError:
        return None
    return flash_attn_func


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding: torch.Tensor | None = None,
                   scale: float | None = None, dropout: float = 0.0) -> torch.Tensor:
    """Causal attention of queries at the last Lq of Lk positions. q [B, Hq, Lq, D], k/v [B, Hkv, Lk, D]."""
    q_len, k_len = q.shape[2], k.shape[2]
    pad = visible_keys(key_padding, q_len, k_len)
    flash = _flash_attn_func() if q.is_cuda and pad is None and q.dtype in (torch.float16, torch.bfloat16) else None
    if flash is not None:  # flash-attn aligns causal masks bottom-right, so Lq < Lk (decoding) is handled too
        out = flash(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=dropout,
                    softmax_scale=scale, causal=True)
        return out.transpose(1, 2)
    k, v = expand_kv(k, q.shape[1]), expand_kv(v, q.shape[1])
    if pad is None and q_len == k_len:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, dropout_p=dropout)
    pos = torch.arange(k_len, device=q.device)
    mask = pos[None, :] <= pos[k_len - q_len:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask if pad is None else mask & pad, scale=scale,
                                          dropout_p=dropout)
