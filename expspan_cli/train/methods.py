"""The fine-tuning methods registry: what each method trains, by parameter group. Plain data (no torch), so the
command line checks `--method` at once; `train/adapters.py` applies a method to a model."""

from __future__ import annotations

from dataclasses import dataclass

from expspan_cli.errors import ExpspanError

GROUPS = ("lora", "embeddings", "norms", "conv1d", "other")
LR = 2e-4  # the paper's (LongLoRA's recipe)
LR_S2 = 2e-5  # LongLoRA's default, which the paper keeps for S2-Attn


@dataclass(frozen=True)
class Method:
    description: str
    lora: bool
    full_groups: tuple[str, ...]  # parameter groups trained fully (besides LoRA)
    attn: str | None = None  # a preset's attention variant
    lr: float | None = None  # a preset's learning rate


METHODS: dict[str, Method] = {
    "full": Method("every parameter trains", False, GROUPS),
    "lora": Method("LoRA on the attention layers' projections only (targeted by layer, not name)", True, ()),
    "lora+": Method("LongLoRA's LoRA+: lora + trainable embeddings and normalization layers", True,
                    ("embeddings", "norms")),
    "hylora": Method("lora+ + the SSM layers' 1D convolutions trained fully (fused kernels read the conv weight "
                     "directly, so LoRA on it would do nothing)", True, ("embeddings", "norms", "conv1d")),
    "longlora": Method(f"S2-Attn + lora+ at LongLoRA's learning rate {LR_S2:g}", True, ("embeddings", "norms"),
                       attn="s2", lr=LR_S2),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ExpspanError(f"unknown method {name!r}", hint=f"one of {', '.join(METHODS)}")
    return METHODS[name]


def training_attention(method: str, attn: str | None) -> str:
    """The attention a run of `method` trains with: the method preset's (longlora: s2), else `attn`, else SE."""
    preset = get_method(method).attn
    if preset:
        if attn not in (None, preset):
            raise ExpspanError(f"method {method!r} is S2-Attn + lora+; it cannot run with attention {attn!r}",
                               hint=f"use --method lora+ --attn {attn}")
        return preset
    return attn or "se"
