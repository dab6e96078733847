"""The paper's Mamba-2-Hybrid checkpoint (`state-spaces/mamba2attn-2.7b`) is a mamba-ssm model, not a transformers
one: it loads through mamba-ssm's `MambaLMHeadModel`, whose kernels are Triton/CUDA only."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from expspan_cli.errors import require


def load_mamba_ssm(hub_id: str, dtype: torch.dtype | None = None) -> Any:
    require(torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm") is not None,
            f"{hub_id} runs on the mamba-ssm backend, which needs a CUDA GPU and the mamba-ssm package",
            hint="pip install 'expspan-cli[gpu]' on a GPU machine, or use --model tiny-hybrid / zamba2-1.2b on CPU")
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    return MambaLMHeadModel.from_pretrained(hub_id, device="cuda", dtype=dtype or torch.bfloat16)
