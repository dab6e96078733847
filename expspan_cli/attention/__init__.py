"""Attention variants (SE-Attn, S2-Attn, sliding window, full) on plain tensors and inside transformers models."""

from expspan_cli.attention.dispatch import attend
from expspan_cli.attention.hf import (
    IMPLEMENTATIONS,
    attention_modules,
    current_attention,
    record_retrievals,
    register,
    set_attention,
)
from expspan_cli.attention.params import VARIANTS, S2Params, SEParams, SWParams, make_params

__all__ = ["VARIANTS", "IMPLEMENTATIONS", "SEParams", "S2Params", "SWParams", "attend", "attention_modules",
           "current_attention", "make_params", "record_retrievals", "register", "set_attention"]
