"""Small pieces every attention variant shares: GQA expansion, chunk-size draws, padding to a multiple."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from expspan_cli.errors import require


def expand_kv(x: torch.Tensor, num_q_heads: int) -> torch.Tensor:
    """[B, Hkv, L, D] -> [B, Hq, L, D]; query head h reads kv head h // (Hq // Hkv), as transformers' repeat_kv."""
    kv_heads = x.shape[1]
    require(num_q_heads % kv_heads == 0, f"{num_q_heads} query heads is not a multiple of {kv_heads} kv heads")
    return x if kv_heads == num_q_heads else x.repeat_interleave(num_q_heads // kv_heads, dim=1)


def draw_chunk_size(chunk_sizes: tuple[int, ...]) -> int:
    """One chunk size per layer call, drawn from torch's RNG so `torch.manual_seed` makes runs repeatable."""
    if len(chunk_sizes) == 1:
        return chunk_sizes[0]
    return chunk_sizes[int(torch.randint(len(chunk_sizes), (1,)).item())]


def pad_seq(x: torch.Tensor, multiple: int, dim: int = 2) -> torch.Tensor:
    """Zero-pad `dim` up to a multiple of `multiple` (padded positions come after every real one)."""
    extra = -x.shape[dim] % multiple
    if extra == 0:
        return x
    pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [0, extra]
    return F.pad(x, pad)


def visible_keys(key_padding: torch.Tensor | None, q_len: int, k_len: int) -> torch.Tensor | None:
    """[B, 1, Lq, Lk] mask of keys a query may see because of padding: real keys, plus each query's own position so
    that a padded query row is never empty (its output is ignored, but must not be NaN)."""
    if key_padding is None:
        return None
    offset = k_len - q_len
    own = torch.zeros(q_len, k_len, dtype=torch.bool, device=key_padding.device)
    own[torch.arange(q_len), torch.arange(q_len) + offset] = True
    return key_padding[:, None, None, :].bool() | own
