"""A CPU stand-in for mamba-ssm's `MambaLMHeadModel` with the same module layout, names and config fields, so the
backend (attention routing, HyLoRA targeting, training, generation with an inference cache) is tested without CUDA.

Layout as in mamba_ssm/models/mixer_seq_simple.py: backbone.embedding, backbone.layers[i] = Block(norm, mixer,
[norm2, mlp]) with mixer = MHA for i in attn_layer_idx (fused qkv in_proj, conv1d when d_conv > 0, out_proj) and
Mamba2 otherwise (in_proj, conv1d, dt_bias, A_log, D, gated norm, out_proj), backbone.norm_f, lm_head (tied when
tie_embeddings). Only the SSM arithmetic differs: the stand-in's scan is a per-head exponential moving average,
cheap and with an exact recurrent step, instead of Mamba-2's SSD kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MambaConfig:
    """mamba_ssm.models.config_mamba.MambaConfig's fields (the checkpoint's config.json)."""

    d_model: int = 64
    d_intermediate: int = 0
    n_layer: int = 4
    vocab_size: int = 128
    ssm_cfg: dict = field(default_factory=lambda: {"layer": "Mamba2"})
    attn_layer_idx: list = field(default_factory=list)
    attn_cfg: dict = field(default_factory=dict)
    rms_norm: bool = True
    residual_in_fp32: bool = True
    fused_add_norm: bool = False
    pad_vocab_size_multiple: int = 8
    tie_embeddings: bool = True


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5, **factory: Any) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, **factory))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if z is not None:  # Mamba-2's gated norm: gate first, then normalise (norm_before_gate=False)
            x = x * F.silu(z)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MHA(nn.Module):
    """Parameters of mamba-ssm's MHA; its forward is never run (the backend replaces it by MambaSSMAttention)."""

    def __init__(self, embed_dim: int, num_heads: int, num_heads_kv: int | None = None, head_dim: int | None = None,
                 qkv_proj_bias: bool = True, out_proj_bias: bool = True, d_conv: int = 0, layer_idx: int | None = None,
                 **_: Any) -> None:
        super().__init__()
        self.layer_idx, self.d_conv = layer_idx, d_conv
        head_dim = head_dim or embed_dim // num_heads
        qkv_dim = head_dim * (num_heads + 2 * (num_heads_kv or num_heads))
        self.in_proj = nn.Linear(embed_dim, qkv_dim, bias=qkv_proj_bias)
        if d_conv > 0:
            self.conv1d = nn.Conv1d(qkv_dim, qkv_dim, kernel_size=d_conv, padding=d_conv - 1, groups=qkv_dim)
        self.out_proj = nn.Linear(head_dim * num_heads, embed_dim, bias=out_proj_bias)


class Mamba2(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, headdim: int = 16,
                 ngroups: int = 1, layer_idx: int | None = None, **_: Any) -> None:
        super().__init__()
        self.layer_idx, self.d_conv, self.headdim = layer_idx, d_conv, headdim
        self.d_inner = expand * d_model
        self.nheads = self.d_inner // headdim
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, self.d_inner + self.conv_dim + self.nheads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, kernel_size=d_conv, padding=d_conv - 1,
                                groups=self.conv_dim)
        self.dt_bias = nn.Parameter(torch.zeros(self.nheads))
        self.A_log = nn.Parameter(torch.zeros(self.nheads))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = RMSNorm(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, u: torch.Tensor, inference_params: Any = None, **_: Any) -> torch.Tensor:
        batch, length, _ = u.shape
        z, xbc, dt = self.in_proj(u).split([self.d_inner, self.conv_dim, self.nheads], dim=-1)
        state = None
        if inference_params is not None:
            state = inference_params.key_value_memory_dict.setdefault(self.layer_idx, (
                u.new_zeros(batch, self.conv_dim, self.d_conv), u.new_zeros(batch, self.nheads, self.headdim)))
        x = xbc.transpose(1, 2)
        if state is not None and inference_params.seqlen_offset > 0:
            x = torch.cat([state[0], x], dim=-1)
            conv = F.conv1d(x, self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)[..., -length:]
        else:
            conv = self.conv1d(x)[..., :length]
        if state is not None:
            state[0].copy_(F.pad(x, (self.d_conv - x.shape[-1], 0)))
        xs = F.silu(conv.transpose(1, 2))[..., : self.d_inner].reshape(batch, length, self.nheads, self.headdim)
        decay = torch.sigmoid(self.A_log - F.softplus(dt + self.dt_bias))[..., None]  # [B, L, H, 1]
        h = state[1] if state is not None else u.new_zeros(batch, self.nheads, self.headdim)
        ys = []
        for t in range(length):
            h = decay[:, t] * h + (1 - decay[:, t]) * xs[:, t]
            ys.append(h)
        if state is not None:
            state[1].copy_(h)
        y = torch.stack(ys, 1) + xs * self.D[:, None]
        return self.out_proj(self.norm(y.reshape(batch, length, self.d_inner), z))


class Block(nn.Module):
    """mamba-ssm's Block without fused add+norm: residual = x + residual; x = mixer(norm(residual))."""

    def __init__(self, mixer: nn.Module, dim: int, residual_in_fp32: bool) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.mixer = mixer
        self.residual_in_fp32 = residual_in_fp32

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None = None, inference_params: Any = None,
                **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        residual = hidden + residual if residual is not None else hidden
        hidden = self.norm(residual.to(self.norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.float()
        return self.mixer(hidden, inference_params=inference_params, **kwargs), residual


class MixerModel(nn.Module):
    def __init__(self, config: MambaConfig, vocab_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)  # mamba-ssm's init; unit-scale tied logits would saturate
        ssm_cfg = {k: v for k, v in config.ssm_cfg.items() if k != "layer"}
        self.layers = nn.ModuleList(
            Block(MHA(config.d_model, layer_idx=i, **config.attn_cfg) if i in config.attn_layer_idx
                  else Mamba2(config.d_model, layer_idx=i, **ssm_cfg), config.d_model, config.residual_in_fp32)
            for i in range(config.n_layer))
        self.norm_f = RMSNorm(config.d_model)

    def forward(self, input_ids: torch.Tensor, inference_params: Any = None, **kwargs: Any) -> torch.Tensor:
        hidden, residual = self.embedding(input_ids), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual, inference_params=inference_params, **kwargs)
        residual = hidden + residual if residual is not None else hidden
        return self.norm_f(residual.to(self.norm_f.weight.dtype))


class MambaLMHeadModel(nn.Module):
    def __init__(self, config: MambaConfig, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.config = config
        vocab = config.vocab_size + (-config.vocab_size % config.pad_vocab_size_multiple)
        self.backbone = MixerModel(config, vocab)
        self.lm_head = nn.Linear(config.d_model, vocab, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight
        self.to(device=device, dtype=dtype)
