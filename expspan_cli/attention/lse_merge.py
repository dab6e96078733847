"""SE-Attn's chunk attention as two flash calls merged by log-sum-exp, with no copy of q, k or v.

Part A is every chunk's causal self-attention (views of q/k/v); part B is the queries of chunks 1.. over their k
gathered blocks (non-causal; chunk 0 never retrieves). Forward merges the two by their log-sum-exps. Backward calls
the flash backward of each part with the *merged* output and log-sum-exp, which yields exactly the gradient of
attention over the union of keys (the flash backward recomputes probabilities from the lse it is given), and
scatters the blocks' key/value gradients straight into dk/dv. Saved for backward: q, k, v (alive anyway), the merged
output and lse, and the block indices, so peak memory stays near full attention's.

The flash forward/backward pair is a parameter (`FlashOps`): `CPU_OPS` here, the CUDA twin in attention/flash_cuda.py.
Layout: (batch * heads) is the flash batch and chunks are its heads, so chunks 1.. are a strided view, not a copy.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class FlashOps:
    """forward(q, k, v, causal, bias, scale) -> (out, lse, aux); backward(grad, q, k, v, out, lse, aux, causal, bias,
    scale) -> (dq, dk, dv). `aux` is whatever else the backward needs from its forward (empty on CPU).
    Tensors are [N, H, L, D]; lse is [N, H, Lq] fp32. `bias` (additive [N, H, 1, Lk]) only where supports_bias."""

    forward: Callable[..., tuple[torch.Tensor, torch.Tensor, tuple]]
    backward: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    supports_bias: bool


def _cpu_forward(q, k, v, causal, bias, scale):
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, attn_mask=bias,
                                                                          scale=scale)
    return out, lse, ()


def _cpu_backward(grad, q, k, v, out, lse, aux, causal, bias, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(grad, q, k, v, out, lse, 0.0, causal,
                                                                               attn_mask=bias, scale=scale)


CPU_OPS = FlashOps(_cpu_forward, _cpu_backward, supports_bias=True)


def gather_blocks(x: torch.Tensor, flat_index: torch.Tensor, block_size: int) -> torch.Tensor:
    """x [N, ..., D] contiguous -> blocks [N, T', k*S, D] picked by flat indices [N, T', k] into x.view(-1, S, D)."""
    rows, chunks = flat_index.shape[:2]
    picked = x.reshape(-1, block_size, x.shape[-1]).index_select(0, flat_index.reshape(-1))
    return picked.view(rows, chunks, -1, x.shape[-1])


def _scatter_blocks(grad: torch.Tensor, grad_blocks: torch.Tensor, flat_index: torch.Tensor, block_size: int) -> None:
    """Add the gathered blocks' gradients back into grad [N, T, M, D] in place, whatever its strides (the flash
    backward returns a sequence-major layout, and a contiguous copy would cost a whole extra tensor).

    Deterministic: one index_add_ per row (into that row's sequence, viewed as blocks), which adds duplicates in
    index order; index_put_(accumulate=True) adds float duplicates with atomics on several CPU threads, so the same
    run would give other weights in the last digits each time."""
    _, n_chunks, chunk, dim = grad.shape
    per_chunk = chunk // block_size
    per_row = n_chunks * per_chunk
    flat = flat_index.reshape(flat_index.shape[0], -1)  # a row's blocks are all in that row of grad
    owners = (flat[:, 0] // per_row).tolist()
    local = flat % per_row
    blocks = grad_blocks.reshape(flat.shape[0], -1, block_size, dim)
    for i, row in enumerate(owners):
        try:
            grad[row].view(per_row, block_size, dim).index_add_(0, local[i], blocks[i])
        except RuntimeError:  # a row whose chunks do not merge into one strided sequence: sorted accumulation
            offsets = torch.arange(block_size, device=grad.device)
            with _deterministic():
                grad[row].index_put_(((local[i] // per_chunk)[:, None], (local[i] % per_chunk)[:, None] * block_size
                                      + offsets), blocks[i], accumulate=True)


@contextlib.contextmanager
def _deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def merge_into(out: torch.Tensor, lse: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor) -> None:
    """Attention over keys A and B from the two parts: `out`/`lse` (part A, views into the result) become the
    merged output and log-sum-exp in place; `out_b` is overwritten."""
    merged = torch.logaddexp(lse, lse_b)
    out.mul_((lse - merged).exp_()[..., None].to(out.dtype))
    out.add_(out_b.mul_((lse_b - merged).exp_()[..., None].to(out_b.dtype)))
    lse.copy_(merged)


def one_head(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """[N, T, M, D] -> [N*T, 1, M, D]: with chunks as the flash batch and one head, the kernels' outputs and grads
    come back contiguous in our layout, so no autograd view needs a copy."""
    return tuple(t.view(-1, 1, *t.shape[2:]) for t in tensors)


PIECES = 32  # the second part in up to 32 pieces: what one holds is then about 1/32 of a whole [N, T, M, D] tensor,
PIECE_FLOOR = 1 << 16  # but no piece of fewer elements per operand: below that a call's fixed cost outweighs memory


def pieces(rows: int, chunks: int, per_chunk: int):
    """(rows, keys, queries) slices tiling the second part's rows x chunks, rows first: `queries` are the chunks
    whose queries attend, `keys` the ones just before them (whose keys they read, for SW) or their own index into
    per-chunk tables that start at chunk 1 (SE's flat_index). `per_chunk` is one chunk's elements per operand.
    The flash aux values are per call, not per row (dense flash: no cu_seqlens), so pieces can share them."""
    parts = max(1, min(PIECES, rows * chunks * per_chunk // PIECE_FLOOR))
    row_parts = min(rows, parts)
    chunk_parts = min(chunks, -(-parts // row_parts))
    for r in torch.arange(rows).tensor_split(row_parts):
        for c in torch.arange(chunks).tensor_split(chunk_parts):
            lo, hi = int(c[0]), int(c[-1]) + 1
            yield slice(int(r[0]), int(r[-1]) + 1), slice(lo, hi), slice(lo + 1, hi + 1)


class ChunkRetrievalAttention(torch.autograd.Function):
    """q/k/v: contiguous [N, T, M, D]; flat_index [N, T-1, k] block ids (of chunks 1..) into k.view(-1, S, D);
    slot_bias: additive [N, T-1, 1, kS] (-inf on unused slots) or None."""

    @staticmethod
    def forward(ctx: Any, q, k, v, flat_index, slot_bias, block_size: int, scale: float, ops: FlashOps):
        out, lse, aux_a = ops.forward(*one_head(q, k, v), True, None, scale)
        out, lse = out.view(q.shape), lse.view(q.shape[:3])
        q_b = q[:, 1:]
        out_b, lse_b, aux_b = ops.forward(q_b, gather_blocks(k, flat_index, block_size), gather_blocks(v, flat_index, block_size),
                                          False, slot_bias, scale)
        merge_into(out[:, 1:], lse[:, 1:], out_b, lse_b)  # chunk 0's lse stays part A's alone
        del out_b
        ctx.save_for_backward(q, k, v, flat_index, slot_bias, out, lse)
        ctx.block_size, ctx.scale, ctx.ops, ctx.aux = block_size, scale, ops, (aux_a, aux_b)
        return out

    @staticmethod
    def backward(ctx: Any, grad):
        q, k, v, flat_index, slot_bias, out, lse = ctx.saved_tensors
        s, scale, ops = ctx.block_size, ctx.scale, ctx.ops
        aux_a, aux_b = ctx.aux
        grad = grad.contiguous()
        grads = ops.backward(*one_head(grad, q, k, v, out), lse.view(-1, 1, lse.shape[-1]), aux_a, True, None, scale)
        dq, dk, dv = (t.view(q.shape) for t in grads)
        # Part B in pieces: its dq and block gradients are then a fraction of a tensor, not whole extra ones at peak.
        for rows, own, after in pieces(q.shape[0], q.shape[1] - 1, q.shape[2] * q.shape[3]):
            index = flat_index[rows, own]
            dq_b, dkb, dvb = ops.backward(grad[rows, after], q[rows, after], gather_blocks(k, index, s),
                                          gather_blocks(v, index, s), out[rows, after], lse[rows, after], aux_b, False,
                                          None if slot_bias is None else slot_bias[rows, own], scale)
            dq[rows, after].add_(dq_b)
            _scatter_blocks(dk, dkb, index, s)
            _scatter_blocks(dv, dvb, index, s)
            del dq_b, dkb, dvb  # before the next piece allocates its own
        return dq, dk, dv, None, None, None, None, None


def mergeable(idx: torch.Tensor, valid: torch.Tensor, ops: FlashOps) -> bool:
    """Whether the merged kernel can run this retrieval: every chunk after the first retrieves at least one block
    (chunk 0 never does), and unused slots exist only where the op pair takes a bias to mask them."""
    rest = valid[:, :, 1:]
    return idx.shape[2] > 1 and bool(rest.any(-1).all()) and (ops.supports_bias or bool(rest.all()))


def merged_chunk_attention(qc, kc, vc, idx, valid, block_size: int, scale: float, ops: FlashOps = CPU_OPS):
    """qc/kc/vc [B, H, T, M, D]; idx/valid [B, H, T, k] (block ids per chunk) -> [B, H, T, M, D].

    Requires `mergeable(idx, valid, ops)`."""
    batch, heads, n_chunks, chunk, dim = qc.shape
    top = idx.shape[-1]
    rows = batch * heads
    blocks_per_row = n_chunks * chunk // block_size
    base = (torch.arange(rows, device=idx.device) * blocks_per_row).view(rows, 1, 1)
    flat_index = idx[:, :, 1:].clamp(min=0).reshape(rows, n_chunks - 1, top) + base
    rest = valid[:, :, 1:].reshape(rows, n_chunks - 1, top)
    bias = None
    if not bool(rest.all()):
        slot_ok = rest.repeat_interleave(block_size, dim=-1)[:, :, None, :]
        bias = torch.zeros(slot_ok.shape, dtype=qc.dtype, device=qc.device).masked_fill(~slot_ok, float("-inf"))
    views = (t.contiguous().view(rows, n_chunks, chunk, dim) for t in (qc, kc, vc))
    out = ChunkRetrievalAttention.apply(*views, flat_index, bias, block_size, scale, ops)
    return out.view(batch, heads, n_chunks, chunk, dim)
