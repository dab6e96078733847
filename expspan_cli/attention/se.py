"""SE-Attn fast paths.

Paper mode (training): block summaries and chunk-block scores are computed without gradients (the top-k is hard, as
in the paper), the retrieved blocks are gathered with one index_select, and every chunk runs in ONE causal SDPA
call over [retrieved keys ; chunk keys]: putting k*S placeholder queries in front of the chunk's M queries turns
"see every retrieved key + own chunk causally" into a plain square causal mask, so the flash kernel skips the upper
triangle and no mask is stored. Memory is O(L * (M + kS)), never L^2.

Causal mode (inference, decoding) lives in se_decode.py; the retrieval both modes share in retrieval.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from expspan_cli.attention.common import draw_chunk_size, expand_kv, pad_seq
from expspan_cli.attention.flash_cuda import flash_ops
from expspan_cli.attention.flex import flex_chunk_attention
from expspan_cli.attention.lse_merge import mergeable, merged_chunk_attention
from expspan_cli.attention.params import SEParams
from expspan_cli.attention.retrieval import gather_retrieved, select_blocks
from expspan_cli.attention.se_decode import se_causal


def se_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, params: SEParams,
                 key_padding: torch.Tensor | None = None, scale: float | None = None, chunk_size: int | None = None,
                 recorder: list | None = None, path: str = "auto") -> torch.Tensor:
    """SE-Attn over a whole sequence (Lq == Lk). q [B, Hq, L, D], k/v [B, Hkv, L, D] -> [B, Hq, L, D].

    params.kernel "flex" runs one FlexAttention call over a retrieval BlockMask (unpadded input with retrieval; else
    the paths below). Otherwise `path`: "auto" picks by device and input; "merged" (two flash calls merged by
    log-sum-exp, CPU or CUDA), "dense" (one causal call with placeholder queries) and "masked" (explicit mask, handles
    everything) force one path where the input allows it, else the masked one.
    """
    batch, heads, length, dim = q.shape
    scale = scale if scale is not None else 1.0 / math.sqrt(dim)
    chunk = chunk_size or draw_chunk_size(params.chunk_sizes)
    k, v = expand_kv(k, heads), expand_kv(v, heads)
    real = None if key_padding is None or bool(key_padding.all()) else key_padding.bool()
    if params.causal_retrieval:
        return se_causal(q, k, v, params, chunk, real, scale, recorder)
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
    if path == "auto" and picked is not None and real is None:
        path = "merged" if can_merge else "dense" if bool(picked[1][:, :, 1:].all()) else "masked"
    if picked is None:
        out = _chunk_local(qc, kc, vc, real, scale)
    elif path == "merged" and can_merge:
        out = merged_chunk_attention(qc, kc, vc, *picked, params.block_size, scale, ops)
    elif path == "dense" and real is None and bool(picked[1][:, :, 1:].all()):
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
    keys = torch.cat([gather_retrieved(kp, rest, block_size), kc[:, :, 1:]], dim=3)
    values = torch.cat([gather_retrieved(vp, rest, block_size), vc[:, :, 1:]], dim=3)
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
    keys = torch.cat([gather_retrieved(kp, safe, block_size), kc], dim=3)
    values = torch.cat([gather_retrieved(vp, safe, block_size), vc], dim=3)
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
