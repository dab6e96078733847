"""Fine-tuning methods (full, lora, lora+, hylora) with exact semantics, the trainable-parameter table, and saving
what a method trained as one standard PEFT adapter: LoRA on the attention projections, and the modules a method
trains fully (embeddings, norms, SSM conv1d) as PEFT `modules_to_save`, so plain PEFT loads exactly the trained
model (the reading side is models/adapter.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from torch import nn

from expspan_cli.errors import require
from expspan_cli.models.adapter import ADAPTER_INFO
from expspan_cli.models.layers import attention_projection_names, is_norm, parameter_groups, ssm_mixers
from expspan_cli.train.methods import GROUPS, METHODS, get_method



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
        r = r if r is not None else default_rank(model)
        require(r > 0, f"LoRA rank must be positive, got {r}")
        full, tied = fully_trained_modules(model, spec.full_groups)
        config = LoraConfig(r=r, lora_alpha=alpha if alpha is not None else 2 * r, lora_dropout=dropout,
                            target_modules=names, bias="none", task_type="CAUSAL_LM", modules_to_save=full or None,
                            ensure_weight_tying=tied)
        model = get_peft_model(model, config)
        if tied:
            out = model.get_output_embeddings()
            require(out is not None and out.weight is model.get_input_embeddings().weight,
                    f"{type(model.get_base_model()).__name__} ties its output head to its embeddings, and PEFT did "
                    "not tie their trained copies", hint="use a model with untied embeddings, or --method lora")
    groups = parameter_groups(model)
    for name, param in model.named_parameters():
        group = groups.get(name)  # None: a frozen original PEFT keeps beside its trained copy
        param.requires_grad_(group == "lora" or group in spec.full_groups)
    require(any(p.requires_grad for p in model.parameters()), f"method {method!r} would train nothing on this model")
    return model


def fully_trained_modules(model: nn.Module, groups: tuple[str, ...]) -> tuple[list[str], bool]:
    """(qualified names of the modules in `groups` to train fully, whether the embeddings are tied to the output
    head). A tied output head is listed too, so PEFT keeps its trained copy tied to the embedding's."""
    embed = model.get_input_embeddings()
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = "embeddings" in groups and output is not None and output.weight is embed.weight
    names = []
    for name, module in model.named_modules():
        if ("embeddings" in groups and (module is embed or (tied and module is output))) or \
                ("norms" in groups and is_norm(module) and any(True for _ in module.parameters(recurse=False))):
            names.append(name)
    if "conv1d" in groups:
        names += [f"{name}.conv1d" for name in ssm_mixers(model)]
    return names, tied


def trainable_table(model: nn.Module) -> list[dict[str, Any]]:
    """Rows {group, trainable, total, percent}: trainable parameters per group, percent of all parameters the model
    runs (PEFT's frozen originals of fully trained modules are not counted twice)."""
    groups = parameter_groups(model)
    running = [(n, p) for n, p in model.named_parameters() if n in groups]
    total_all = sum(p.numel() for _, p in running)
    rows = []
    for group in GROUPS:
        params = [p for n, p in running if groups[n] == group]
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


def save_adapter(model: nn.Module, directory: str | Path, base: str, info: dict[str, Any]) -> None:
    """A PEFT model as a standard adapter whose base is `base` (an absolute path or a hub id), plus `info`
    (context, attention, method) for expspan's loader."""
    from expspan_cli.runs import atomic_write_json

    for config in model.peft_config.values():
        config.base_model_name_or_path = base
    model.save_pretrained(str(directory))
    atomic_write_json(Path(directory) / ADAPTER_INFO, {"base_model": base, **info})
