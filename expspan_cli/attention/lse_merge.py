"""SE-Attn's chunk attention on CPU as two flash calls merged by log-sum-exp, with no copy of q, k or v.

Part A is each chunk's causal self-attention (views of q/k/v); part B is each chunk's queries over its k gathered
blocks (non-causal). Forward merges the two by their log-sum-exps. Backward calls the flash backward of each part
with the *merged* output and log-sum-exp, which yields exactly the gradient of attention over the union of keys
(the flash backward recomputes probabilities from the lse it is given), and scatters the blocks' key/value
gradients straight into dk/dv. Saved for backward: q, k, v (alive anyway), the merged output and lse, and the block
indices, so peak memory stays at full attention's level.
"""

from __future__ import annotations

import torch

_fwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_bwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


def _gather(x: torch.Tensor, flat_index: torch.Tensor, block_size: int) -> torch.Tensor:
    """x [B, N, M, D] -> blocks [B, N, k*S, D] picked by flat indices into x viewed as [-1, S, D]."""
    batch, rows, _, dim = x.shape
    picked = x.reshape(-1, block_size, dim).index_select(0, flat_index.reshape(-1))
    return picked.view(batch, rows, -1, dim)


def _scatter_blocks(grad: torch.Tensor, grad_blocks: torch.Tensor, flat_index: torch.Tensor, block_size: int) -> None:
    """Add the gathered blocks' gradients back into grad [B, N, M, D] in place, whatever its strides (the flash
    backward returns a sequence-major layout, and a contiguous copy would cost a whole extra tensor)."""
    batch, rows, chunk, dim = grad.shape
    per_chunk = chunk // block_size
    flat = flat_index.reshape(-1, 1)
    row = flat // per_chunk
    offsets = torch.arange(block_size, device=grad.device)
    grad.index_put_((row // rows, row % rows, (flat % per_chunk) * block_size + offsets),
                    grad_blocks.reshape(-1, block_size, dim), accumulate=True)


class ChunkRetrievalAttention(torch.autograd.Function):
    """q/k/v: chunks as contiguous [B, H*T, M, D]; flat_index [B, H*T, k] block ids into k.view(-1, S, D);
    slot_bias: additive [B, H*T, 1, kS] (-inf on unused slots) or None; no_retrieval [B, H*T, 1] bool."""

    @staticmethod
    def forward(ctx, q, k, v, flat_index, slot_bias, no_retrieval, block_size, scale):
        out, lse_a = _fwd(q, k, v, 0.0, True, scale=scale)
        out_b, lse_b = _fwd(q, _gather(k, flat_index, block_size), _gather(v, flat_index, block_size), 0.0, False,
                            attn_mask=slot_bias, scale=scale)
        lse_b = lse_b.masked_fill(no_retrieval, float("-inf"))
        lse = torch.logaddexp(lse_a, lse_b)
        out.mul_((lse_a - lse).exp_()[..., None].to(out.dtype))
        out.add_(out_b.mul_((lse_b - lse).exp_()[..., None].to(out_b.dtype)))
        del out_b
        ctx.save_for_backward(q, k, v, flat_index, slot_bias, out, lse)
        ctx.block_size, ctx.scale = block_size, scale
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, flat_index, slot_bias, out, lse = ctx.saved_tensors
        s, scale = ctx.block_size, ctx.scale
        grad = grad.contiguous()
        dq, dk, dv = _bwd(grad, q, k, v, out, lse, 0.0, True, scale=scale)
        kb, vb = _gather(k, flat_index, s), _gather(v, flat_index, s)
        dq_b, dkb, dvb = _bwd(grad, q, kb, vb, out, lse, 0.0, False, attn_mask=slot_bias, scale=scale)
        del kb, vb
        dq.add_(dq_b)
        _scatter_blocks(dk, dkb, flat_index, s)
        _scatter_blocks(dv, dvb, flat_index, s)
        return dq, dk, dv, None, None, None, None, None


def merged_chunk_attention(qc, kc, vc, idx, valid, block_size, scale):
    """qc/kc/vc [B, H, T, M, D]; idx/valid [B, H, T, k] (block ids per chunk) -> [B, H, T, M, D]."""
    batch, heads, n_chunks, chunk, dim = qc.shape
    top = idx.shape[-1]
    blocks_per_head = n_chunks * chunk // block_size
    base = (torch.arange(batch * heads, device=idx.device) * blocks_per_head).view(batch, heads, 1, 1)
    flat_index = (idx.clamp(min=0) + base).reshape(batch, heads * n_chunks, top)
    no_retrieval = ~valid.any(-1)  # [B, H, T]: chunks with nothing to retrieve (the first one)
    bias = None
    if not bool(valid.all()):
        slot_ok = valid.repeat_interleave(block_size, dim=-1).reshape(batch, heads * n_chunks, 1, top * block_size)
        bias = torch.zeros(slot_ok.shape, dtype=qc.dtype, device=qc.device).masked_fill(~slot_ok, float("-inf"))
    views = (t.contiguous().view(batch, heads * n_chunks, chunk, dim) for t in (qc, kc, vc))
    out = ChunkRetrievalAttention.apply(*views, flat_index, bias, no_retrieval.reshape(batch, heads * n_chunks, 1),
                                        block_size, scale)
    return out.view(batch, heads, n_chunks, chunk, dim)
