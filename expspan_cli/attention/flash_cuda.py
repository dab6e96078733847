"""SE-Attn's fused retrieval + attention on CUDA: the CUDA twin of the CPU flash op pair that lse_merge.py merges.

PyTorch's own FlashAttention-2 kernels (`aten._scaled_dot_product_flash_attention` and its backward) run both parts:
every chunk's causal self-attention over views of q/k/v, and the retrieving chunks' queries over their gathered
blocks, merged by log-sum-exp. Nothing L x L exists; the extra memory over full attention is the gathered blocks
(k*S/M of k and v) and the second part's output and dq while they live. The CUDA flash kernel takes no mask, so
chunks with unused retrieval slots (top_k above the blocks an early chunk can see) or padding go to se.py's masked
path instead (`mergeable`).
"""

from __future__ import annotations

import torch

from expspan_cli.attention.lse_merge import CPU_OPS, FlashOps

FLASH_DTYPES = (torch.float16, torch.bfloat16)


def _cuda_forward(q, k, v, causal, bias, scale):
    out, lse, cum_q, cum_k, max_q, max_k, rng, unused, _ = torch.ops.aten._scaled_dot_product_flash_attention(
        q, k, v, 0.0, causal, False, scale=scale)
    return out, lse, (cum_q, cum_k, max_q, max_k, rng, unused)


def _cuda_backward(grad, q, k, v, out, lse, aux, causal, bias, scale):
    cum_q, cum_k, max_q, max_k, rng, unused = aux
    # FlashAttention reads lse without strides, so a slice (chunks 1..) must be made contiguous.
    return torch.ops.aten._scaled_dot_product_flash_attention_backward(
        grad, q, k, v, out, lse.contiguous(), cum_q, cum_k, max_q, max_k, 0.0, causal, rng, unused, scale=scale)


CUDA_OPS = FlashOps(_cuda_forward, _cuda_backward, supports_bias=False)


def cuda_flash_supported(q: torch.Tensor) -> bool:
    """Whether PyTorch's CUDA flash kernel takes these queries: half precision, head dim a multiple of 8 up to 256."""
    dim = q.shape[-1]
    return q.is_cuda and q.dtype in FLASH_DTYPES and dim % 8 == 0 and dim <= 256


def flash_ops(q: torch.Tensor) -> FlashOps | None:
    """The flash op pair for q's device and dtype: CPU_OPS on CPU, CUDA_OPS where supported, else None."""
    if q.device.type == "cpu":
        return CPU_OPS
    return CUDA_OPS if cuda_flash_supported(q) else None
