"""One entry point for every variant on plain tensors: what the transformers hook, the mamba-ssm backend and the
benchmarks call."""

from __future__ import annotations

from typing import Any

import torch

from expspan_cli.attention.full import full_attention
from expspan_cli.attention.params import PARAMS
from expspan_cli.attention.s2 import s2_attention
from expspan_cli.attention.se import se_attention
from expspan_cli.attention.sliding import swa_attention

# variant -> its fast path, called as (q, k, v, params, key_padding, scale, recorder); PARAMS holds the parameters.
KERNELS = {
    "full": lambda q, k, v, params, key_padding, scale, recorder: full_attention(q, k, v, key_padding, scale),
    "se": lambda q, k, v, params, key_padding, scale, recorder: se_attention(q, k, v, params, key_padding, scale,
                                                                             recorder=recorder),
    "s2": lambda q, k, v, params, key_padding, scale, recorder: s2_attention(q, k, v, params, key_padding, scale),
    "swa": lambda q, k, v, params, key_padding, scale, recorder: swa_attention(q, k, v, params, key_padding, scale),
}


def attend(variant: str, params: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           key_padding: torch.Tensor | None = None, scale: float | None = None,
           recorder: list | None = None) -> torch.Tensor:
    """Run `variant` on q [B, Hq, Lq, D], k/v [B, Hkv, Lk, D]; key_padding [B, Lk] (True = real token) or None."""
    assert variant == "full" or isinstance(params, PARAMS[variant]), (variant, params)
    return KERNELS[variant](q, k, v, params, key_padding, scale, recorder)
