"""The attention layer of mamba-ssm hybrids (`MHA` in mamba_ssm/modules/mha.py), rebuilt so its attention runs
through expspan's variants: same parameters and names (fused qkv `in_proj`, depthwise `conv1d` when d_conv > 0,
`out_proj`), same partial rotary embedding, same inference cache layout, but the attention itself is
`module_attention`, so `set_attention` switches it exactly as it switches a transformers layer.

Rebuilt rather than wrapped: mamba-ssm's MHA needs flash-attn for its rotary embedding and its decoding kernel, and
its prefill stores the conv state *after* the convolution, so its next decoding step convolves convolved values.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from expspan_cli.attention.hf import module_attention


def rotate(x: torch.Tensor, positions: torch.Tensor, rotary_dim: int, base: float, interleaved: bool) -> torch.Tensor:
    """Rotary embedding on the first `rotary_dim` features of x [B, L, H, D] (flash-attn's RotaryEmbedding: halves
    rotated GPT-NeoX style, or adjacent pairs when interleaved); the rest pass through."""
    inv_freq = 1.0 / base ** (torch.arange(0, rotary_dim, 2, device=x.device, dtype=torch.float32) / rotary_dim)
    angles = positions.float()[:, None] * inv_freq  # [L, rotary_dim / 2]
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    rot, rest = x[..., :rotary_dim].float(), x[..., rotary_dim:]
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        rotated = torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)
    else:
        x1, x2 = rot.chunk(2, dim=-1)
        rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return torch.cat([rotated.to(x.dtype), rest], dim=-1)


class MambaSSMAttention(nn.Module):
    """mamba-ssm's MHA (causal self-attention) with switchable attention; construct with the checkpoint's attn_cfg."""

    is_causal = True  # how attention_modules() recognises an attention layer
    projection_names = ("in_proj", "out_proj")  # HyLoRA's LoRA targets: the fused qkv and output projections

    def __init__(self, embed_dim: int, num_heads: int, num_heads_kv: int | None = None, head_dim: int | None = None,
                 mlp_dim: int = 0, qkv_proj_bias: bool = True, out_proj_bias: bool = True,
                 softmax_scale: float | None = None, causal: bool = True, layer_idx: int | None = None,
                 d_conv: int = 0, rotary_emb_dim: int = 0, rotary_emb_base: float = 10000.0,
                 rotary_emb_interleaved: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.embed_dim, self.layer_idx, self.d_conv = embed_dim, layer_idx, d_conv
        self.rotary_emb_dim, self.rotary_emb_base = rotary_emb_dim, rotary_emb_base
        self.rotary_emb_interleaved, self.softmax_scale, self.causal = rotary_emb_interleaved, softmax_scale, causal
        self.num_heads = num_heads
        self.num_heads_kv = num_heads_kv or num_heads
        self.head_dim = head_dim or embed_dim // num_heads
        self.mlp_dim = math.ceil(mlp_dim / 256) * 256
        qkv_dim = self.head_dim * (self.num_heads + 2 * self.num_heads_kv)
        self.in_proj = nn.Linear(embed_dim, qkv_dim + self.mlp_dim, bias=qkv_proj_bias, **factory)
        if d_conv > 0:
            self.conv1d = nn.Conv1d(qkv_dim, qkv_dim, kernel_size=d_conv, padding=d_conv - 1, groups=qkv_dim, **factory)
        self.out_proj = nn.Linear(self.head_dim * num_heads + self.mlp_dim // 2, embed_dim, bias=out_proj_bias,
                                  **factory)

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype: Any = None) -> tuple:
        """(kv cache [B, max_seqlen, 2, Hkv, D], conv state [B, qkv_dim, d_conv] of pre-conv inputs or None)."""
        dtype = dtype or self.out_proj.weight.dtype
        device = self.out_proj.weight.device
        conv = None if self.d_conv == 0 else torch.zeros(batch_size, self.conv1d.weight.shape[0], self.d_conv,
                                                         device=device, dtype=dtype)
        kv = torch.empty(batch_size, max_seqlen, 2, self.num_heads_kv, self.head_dim, device=device, dtype=dtype)
        return kv, conv

    def _conv(self, qkv: torch.Tensor, conv_state: torch.Tensor | None, offset: int) -> torch.Tensor:
        """Causal depthwise conv over [B, L, C]; with a state, continue from (and then keep) the last d_conv inputs."""
        x = qkv.transpose(1, 2)
        if conv_state is not None and offset > 0:
            x = torch.cat([conv_state, x], dim=-1)
            out = F.conv1d(x, self.conv1d.weight, self.conv1d.bias, groups=x.shape[1])
            out = out[..., -qkv.shape[1]:]
        else:
            out = self.conv1d(x)[..., : qkv.shape[1]]
        if conv_state is not None:
            conv_state.copy_(F.pad(x, (self.d_conv - x.shape[-1], 0))[..., -self.d_conv:])
        return out.transpose(1, 2)

    def forward(self, x: torch.Tensor, inference_params: Any = None, **kwargs: Any) -> torch.Tensor:
        batch, length, _ = x.shape
        offset = 0 if inference_params is None else inference_params.seqlen_offset
        cache = None
        if inference_params is not None:
            if self.layer_idx not in inference_params.key_value_memory_dict:
                inference_params.key_value_memory_dict[self.layer_idx] = self.allocate_inference_cache(
                    batch, inference_params.max_seqlen, x.dtype)
            cache = inference_params.key_value_memory_dict[self.layer_idx]
        qkv = self.in_proj(x)
        if self.mlp_dim > 0:
            qkv, mlp = qkv.split([qkv.shape[-1] - self.mlp_dim, self.mlp_dim], dim=-1)
            up, gate = mlp.chunk(2, dim=-1)
            mlp = up * F.silu(gate)
        if self.d_conv > 0:
            qkv = self._conv(qkv, None if cache is None else cache[1], offset)
        q_dim, kv_dim = self.num_heads * self.head_dim, self.num_heads_kv * self.head_dim
        q, k, v = (t.reshape(batch, length, -1, self.head_dim) for t in qkv.split([q_dim, kv_dim, kv_dim], dim=-1))
        if self.rotary_emb_dim > 0:
            pos = torch.arange(offset, offset + length, device=x.device)
            q, k = (rotate(t, pos, self.rotary_emb_dim, self.rotary_emb_base, self.rotary_emb_interleaved)
                    for t in (q, k))
        if cache is not None:
            kv = cache[0]
            kv[:batch, offset:offset + length, 0], kv[:batch, offset:offset + length, 1] = k, v
            k, v = kv[:batch, : offset + length, 0], kv[:batch, : offset + length, 1]
        out = module_attention(self, q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None,
                               self.softmax_scale)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        if self.mlp_dim > 0:
            out = torch.cat([out, mlp], dim=-1)
        return self.out_proj(out)

    @classmethod
    def replacing(cls, mixer: nn.Module, attn_cfg: dict[str, Any]) -> "MambaSSMAttention":
        """A layer built from `attn_cfg` that takes over `mixer`'s projection and conv modules (same tensors)."""
        layer = cls(mixer.in_proj.in_features, layer_idx=getattr(mixer, "layer_idx", None), **attn_cfg,
                    device="meta")
        for name in ("in_proj", "conv1d", "out_proj"):
            if hasattr(layer, name):
                setattr(layer, name, getattr(mixer, name))
        return layer
