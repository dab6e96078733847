"""Fine-tuning methods (full, lora, lora+, hylora) with exact semantics, the trainable-parameter table, and saving /
restoring what a method trained (LoRA adapter + every non-LoRA trained tensor)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from expspan_cli.errors import ExpspanError, require
from expspan_cli.models.layers import attention_projection_names, parameter_groups, ssm_mixers

TRAINED_TENSORS = "trained_tensors.safetensors"  # non-LoRA tensors a method trains (embeddings, norms, conv1d)
GROUPS = ("lora", "embeddings", "norms", "conv1d", "other")


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
    "longlora": Method("S2-Attn + lora+ at LongLoRA's learning rate 2e-5", True, ("embeddings", "norms"),
                       attn="s2", lr=2e-5),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ExpspanError(f"unknown method {name!r}", hint=f"one of {', '.join(METHODS)}")
    return METHODS[name]


def default_rank(model: nn.Module) -> int:
    """The paper's LoRA rank: 32 on hybrids (SSM layers present), 8 on transformers (LongLoRA's Llama setting)."""
    return 32 if ssm_mixers(model) else 8


def apply_method(model: nn.Module, method: str, *, r: int | None = None, alpha: int | None = None,
                 dropout: float = 0.0, targets: tuple[str, ...] | list[str] = ("q_proj", "k_proj", "v_proj", "o_proj")
                 ) -> nn.Module:
    """Freeze/unfreeze `model` per `method`; LoRA methods return a PEFT model. Refuses a method training nothing."""
    spec = get_method(method)
    if spec.lora:
        from peft import LoraConfig, get_peft_model

        names = attention_projection_names(model, tuple(targets))
        require(bool(names), f"method {method!r} puts LoRA on attention layers, and {type(model).__name__} has no "
                f"{'/'.join(targets)} projection in an attention layer",
                hint="use --method full, or a model with attention layers")
        r = r or default_rank(model)
        config = LoraConfig(r=r, lora_alpha=alpha or 2 * r, lora_dropout=dropout, target_modules=names, bias="none",
                            task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    groups = parameter_groups(model)
    for name, param in model.named_parameters():
        group = groups[name]
        param.requires_grad_(group == "lora" or group in spec.full_groups)
    require(any(p.requires_grad for p in model.parameters()), f"method {method!r} would train nothing on this model")
    return model


def trainable_table(model: nn.Module) -> list[dict[str, Any]]:
    """Rows {group, trainable, total, percent}: trainable parameters per group, percent of all parameters."""
    groups = parameter_groups(model)
    total_all = sum(p.numel() for p in model.parameters())
    rows = []
    for group in GROUPS:
        params = [p for n, p in model.named_parameters() if groups[n] == group]
        trainable = sum(p.numel() for p in params if p.requires_grad)
        rows.append({"group": group, "trainable": trainable, "total": sum(p.numel() for p in params),
                     "percent": 100.0 * trainable / total_all})
    trainable = sum(r["trainable"] for r in rows)
    rows.append({"group": "all", "trainable": trainable, "total": total_all, "percent": 100.0 * trainable / total_all})
    return rows


def print_trainable_table(rows: list[dict[str, Any]], method: str, console: Console | None = None) -> None:
    table = Table(title=f"trainable parameters, method {method}", caption=METHODS[method].description,
                  title_justify="left", caption_justify="left")
    for col in ("group", "trainable", "of", "% of model"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for row in rows:
        table.add_row(row["group"], f"{row['trainable']:,}", f"{row['total']:,}", f"{row['percent']:.3f}")
    (console or Console()).print(table)


def _base(model: nn.Module) -> nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def save_trained_tensors(model: nn.Module, directory: str | Path) -> None:
    """Write every trained non-LoRA tensor of a PEFT model, by base-model name (PEFT saves only the adapter)."""
    from safetensors.torch import save_file

    groups = parameter_groups(_base(model))
    tensors = {n: p.detach().cpu().contiguous().clone() for n, p in _base(model).named_parameters()
               if p.requires_grad and groups[n] != "lora"}
    save_file(tensors, str(Path(directory) / TRAINED_TENSORS))


def load_trained_tensors(model: nn.Module, directory: str | Path) -> None:
    """Copy the tensors `save_trained_tensors` wrote into `model` (a base or PEFT model); every one must match."""
    from safetensors.torch import load_file

    tensors = load_file(str(Path(directory) / TRAINED_TENSORS))
    params = dict(_base(model).named_parameters())
    missing = sorted(set(tensors) - set(params))
    require(not missing, f"{directory}: trained tensors do not fit this model (e.g. {missing[:3]})")
    with torch.no_grad():
        for name, value in tensors.items():
            require(params[name].shape == value.shape, f"{directory}: {name} has shape {tuple(value.shape)}, the "
                    f"model's is {tuple(params[name].shape)}")
            params[name].copy_(value)


def save_adapter(model: nn.Module, directory: str | Path, info: dict[str, Any]) -> None:
    """A PEFT model's adapter, its trained non-LoRA tensors and `info` (base model spec, config overrides, seed)."""
    from expspan_cli.models.zoo import ADAPTER_INFO
    from expspan_cli.runs import atomic_write_json

    model.save_pretrained(str(directory))
    save_trained_tensors(model, directory)
    atomic_write_json(Path(directory) / ADAPTER_INFO, info)


def restore_adapter(base: nn.Module, directory: str | Path) -> nn.Module:
    """The model `save_adapter` saved: trained tensors into `base`, then the LoRA weights merged in."""
    from peft import PeftModel

    load_trained_tensors(base, directory)
    return PeftModel.from_pretrained(base, str(directory)).merge_and_unload()

