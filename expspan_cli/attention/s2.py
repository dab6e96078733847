"""LongLoRA's S2-Attn, no-wrap form: causal attention inside groups of G = ratio * L tokens; the second half of
the heads uses groups shifted by G/2, so its first and last groups are half-size (nothing wraps around)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from expspan_cli.attention.common import expand_kv
from expspan_cli.attention.params import S2Params
from expspan_cli.errors import require


def group_size(length: int, params: S2Params) -> int:
    group = int(length * params.group_size_ratio)
    require(group >= 1 and length % group == 0,
            f"s2: sequence length {length} is not a multiple of its group size {group} "
            f"(group_size_ratio {params.group_size_ratio})",
            hint="use a training length divisible by 1/group_size_ratio")
    return group


def _grouped_causal(x_q, x_k, x_v, group, scale):
    batch, heads, length, dim = x_q.shape
    n = length // group
    out = F.scaled_dot_product_attention(*(t.reshape(batch, heads * n, group, dim) for t in (x_q, x_k, x_v)),
                                         is_causal=True, scale=scale)
    return out.view(batch, heads, length, dim)


def s2_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, params: S2Params,
                 key_padding: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    batch, heads, length, dim = q.shape
    require(k.shape[2] == length, "s2: S2-Attn is a training-time attention and has no decoding form",
            hint="evaluate and generate with --attn full (as LongLoRA does)")
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    group = group_size(length, params)
    if key_padding is not None and not bool(key_padding.all()):
        from expspan_cli.attention.reference import s2_reference  # padded batches: dense mask, O(L^2)

        return s2_reference(q, k, v, params, key_padding, scale)
    plain = heads // 2  # heads H//2.. are shifted, as LongLoRA's (and the reference's) split for odd H too
    qs, ks, vs = q[:, plain:], k[:, plain:], v[:, plain:]
    shift = group // 2  # shifted groups: [0, G - shift), then whole groups, then [L - shift, L)
    bounds = [(0, group - shift), (group - shift, length - shift), (length - shift, length)]
    parts = []
    for i, (lo, hi) in enumerate(bounds):
        if hi <= lo:
            continue
        sl = slice(lo, hi)
        if i == 1:
            parts.append(_grouped_causal(qs[:, :, sl], ks[:, :, sl], vs[:, :, sl], group, scale))
        else:
            parts.append(F.scaled_dot_product_attention(qs[:, :, sl], ks[:, :, sl], vs[:, :, sl], is_causal=True,
                                                        scale=scale))
    out_shifted = torch.cat(parts, dim=2)
    if plain == 0:
        return out_shifted
    return torch.cat([_grouped_causal(q[:, :plain], k[:, :plain], v[:, :plain], group, scale), out_shifted], dim=1)
