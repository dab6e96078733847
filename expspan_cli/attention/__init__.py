"""Attention variants (SE-Attn, S2-Attn, sliding window, full) on plain tensors and inside transformers models.

Names load on first use, so reading the variant registry (`attention.params`) imports no torch: the command line
checks `--attn` at once."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"attend": "dispatch", "IMPLEMENTATIONS": "hf", "attention_modules": "hf", "current_attention": "hf",
          "record_retrievals": "hf", "register": "hf", "set_attention": "hf", "VARIANTS": "params",
          "SEParams": "params", "S2Params": "params", "SWParams": "params", "make_params": "params"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
