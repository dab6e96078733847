"""One entry point for every variant on plain tensors: what the transformers hook, the mamba-ssm backend and the
benchmarks call."""

from __future__ import annotations

from typing import Any

import torch

from expspan_cli.attention.full import full_attention
from expspan_cli.attention.params import S2Params, SEParams, SWParams
from expspan_cli.attention.s2 import s2_attention
from expspan_cli.attention.se import se_attention
from expspan_cli.attention.sliding import swa_attention


def attend(variant: str, params: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           key_padding: torch.Tensor | None = None, scale: float | None = None,
           recorder: list | None = None) -> torch.Tensor:
    """Run `variant` on q [B, Hq, Lq, D], k/v [B, Hkv, Lk, D]; key_padding [B, Lk] (True = real token) or None."""
    if variant == "se":
        assert isinstance(params, SEParams)
        return se_attention(q, k, v, params, key_padding, scale, recorder=recorder)
    if variant == "s2":
        assert isinstance(params, S2Params)
        return s2_attention(q, k, v, params, key_padding, scale)
    if variant == "swa":
        assert isinstance(params, SWParams)
        return swa_attention(q, k, v, params, key_padding, scale)
    return full_attention(q, k, v, key_padding, scale)
