"""LongLoRA's S2-Attn, no-wrap form: causal attention inside groups of G = ratio * L tokens; the second half of
the heads uses groups shifted by G/2, so its first and last groups are half-size (nothing wraps around)."""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F

from expspan_cli.attention.common import expand_kv
from expspan_cli.attention.flash_cuda import flash_ops
from expspan_cli.attention.lse_merge import FlashOps
from expspan_cli.attention.params import S2Params
from expspan_cli.errors import require


def group_size(length: int, params: S2Params) -> int:
    group = int(length * params.group_size_ratio)
    require(group >= 1 and length % group == 0,
            f"s2: sequence length {length} is not a multiple of its group size {group} "
            f"(group_size_ratio {params.group_size_ratio})",
            hint="use a training length divisible by 1/group_size_ratio")
    return group


CALL_SHARE = 8  # one call covers at most 1/8 of the groups of all heads (at least one group)


def _calls(batch: int, heads: int, length: int, group: int) -> list[tuple[int, int, int, int, int, int]]:
    """The flash calls S2 runs, as (b, h0, h1, start, end, groups): x[b, h0:h1, start:end] split into `groups` equal
    causal groups. Heads H//2.. (LongLoRA's split, also for odd H) use groups shifted by G/2: [0, G - shift), then
    whole groups, then [L - shift, L); nothing wraps around. A call covers at most 1/CALL_SHARE of all groups, so
    what it returns stays a small share of a tensor, and takes them from as many heads as it can (the CPU flash
    backward runs a call's heads x groups in parallel, so a call of one head's 3 groups would leave a core idle)."""
    shift, plain = group // 2, heads // 2
    units = max(1, heads * (length // group) // CALL_SHARE)
    spans = [(0, plain, 0, length), (plain, heads, 0, group - shift), (plain, heads, group - shift, length - shift),
             (plain, heads, length - shift, length)]
    calls = []
    for b, (h0, h1, lo, hi) in itertools.product(range(batch), spans):
        if h1 <= h0 or hi <= lo:
            continue
        size = min(group, hi - lo)  # the shifted heads' half groups are one smaller group each
        count = (hi - lo) // size
        per_head = min(count, max(1, units // (h1 - h0)))
        per_call = max(1, units // per_head)
        calls += [(b, h, min(h + per_call, h1), lo + g * size, lo + min(g + per_head, count) * size,
                   min(per_head, count - g)) for h in range(h0, h1, per_call) for g in range(0, count, per_head)]
    return calls


def _view(x: torch.Tensor, call: tuple[int, int, int, int, int, int]) -> torch.Tensor:
    """[B, H, L, ...] -> the call's [heads, groups, size, ...] view (heads as the flash batch, groups as its
    heads)."""
    b, h0, h1, lo, hi, groups = call
    return x[b, h0:h1, lo:hi].unflatten(1, (groups, -1))


class GroupedCausalAttention(torch.autograd.Function):
    """S2-Attn as a few flash calls over views of q/k/v (`_calls`): no copy of them; what a call returns is written
    into the output (and the gradients) in place."""

    @staticmethod
    def forward(ctx: Any, q, k, v, group: int, scale: float, ops: FlashOps):
        batch, heads, length, _ = q.shape
        calls = _calls(batch, heads, length, group)
        out = torch.empty_like(q)
        lse = torch.empty(batch, heads, length, dtype=torch.float32, device=q.device)
        aux = []
        for call in calls:
            o, l, a = ops.forward(_view(q, call), _view(k, call), _view(v, call), True, None, scale)
            _view(out, call).copy_(o)
            _view(lse, call).copy_(l)
            aux.append(a)
            del o, l  # else they live on while the next call allocates its own
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.calls, ctx.aux, ctx.scale, ctx.ops = calls, aux, scale, ops
        return out

    @staticmethod
    def backward(ctx: Any, grad):
        q, k, v, out, lse = ctx.saved_tensors
        grads = tuple(torch.empty_like(t) for t in (q, k, v))
        for call, a in zip(ctx.calls, ctx.aux):
            parts = ctx.ops.backward(*(_view(t, call) for t in (grad, q, k, v, out)), _view(lse, call), a, True, None,
                                     ctx.scale)
            for whole, part in zip(grads, parts):
                _view(whole, call).copy_(part)
            del parts, part
        return *grads, None, None, None


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
    ops = flash_ops(q)
    if ops is not None:
        return GroupedCausalAttention.apply(q, k, v, group, scale if scale is not None else dim ** -0.5, ops)
    # Other devices and dtypes: SDPA per span over copies (the shifted spans are not one strided view).
    plain = heads // 2
    qs, ks, vs = q[:, plain:], k[:, plain:], v[:, plain:]
    shift = group // 2
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
