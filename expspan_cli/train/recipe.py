"""Training recipes: a YAML file whose fields mirror the `pretrain`/`finetune` options, validated field by field.

Defaults are the paper's (reference/paper.md §4.3, LongLoRA's recipe): 1000 steps, lr 2e-4 (2e-5 for S2-Attn),
20 warmup steps, constant_with_warmup, no weight decay, per-device batch 1 x 8 accumulation, bf16 where supported,
gradient checkpointing. A later recipe (the whole reproduction) nests this one; keep it to what training needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expspan_cli.config import bounded, build, read_yaml
from expspan_cli.errors import require
from expspan_cli.train.methods import LR, LR_S2



@dataclass
class TrainRecipe:
    model: str | None = None  # required to fine-tune; pre-training builds a preset (default tiny-hybrid)
    random_base: bool = False  # fine-tuning a random-init preset must be asked for (benchmarks)
    tokenizer: str | None = None  # None: the model's own (presets: the prepared data's)
    data: str | None = None  # a directory written by `expspan prepare`
    method: str = "hylora"
    attn: str | None = None  # None: "se", or the method preset's (longlora: s2)
    attn_params: dict[str, Any] = field(default_factory=dict)  # passed to set_attention (se: chunk_sizes, ...)
    seq_len: int | None = bounded(None, gt=0)  # None: the prepared block length; else a divisor of it (blocks are cut)
    split: str = "train"
    max_steps: int = bounded(1000, gt=0)
    save_steps: int = bounded(100, gt=0)
    save_total_limit: int = bounded(2, gt=0)
    lr: float | None = bounded(None, gt=0, what="a positive learning rate")  # None: LR, or LR_S2 with attn s2
    warmup_steps: int = bounded(20, ge=0)
    lr_scheduler: str = "constant_with_warmup"
    weight_decay: float = bounded(0.0, ge=0)
    per_device_batch_size: int = bounded(1, gt=0)
    grad_accum: int = bounded(8, gt=0)
    bf16: bool | None = None  # None: where the device supports it (CUDA with bf16)
    gradient_checkpointing: bool = True
    seed: int = bounded(42, ge=0)
    lora_r: int | None = bounded(None, gt=0)  # None: 32 on hybrids, 8 on transformers (paper §2)
    lora_alpha: int | None = bounded(None, gt=0)  # None: 2 * lora_r
    lora_dropout: float = bounded(0.0, ge=0, lt=1)
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    rope_scaling: str | float = "auto"  # "auto": LongLoRA's linear factor ceil(L / pre-training ctx) on transformers
    deepspeed: str | None = None  # a DeepSpeed config (JSON or YAML), e.g. recipes/deepspeed-zero2.yaml
    logging_steps: int = bounded(1, gt=0)
    curriculum: list[dict[str, Any]] | None = None  # row lengths and copy rows by phase (train/curriculum.py)

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else (LR_S2 if self.attn == "s2" else LR)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _schedulers() -> list[str]:
    """The learning-rate schedules transformers' Trainer knows (its SchedulerType values)."""
    from transformers.trainer_utils import SchedulerType

    return [s.value for s in SchedulerType]


def build_recipe(path: str | Path | None = None, **overrides: Any) -> TrainRecipe:
    """A recipe from a YAML file (optional) with `overrides` (CLI options; None means 'not given') on top."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml(path, "recipe")
        require(isinstance(loaded, dict), f"recipe {path} must be a mapping of field: value")
        values.update(loaded.get("train", loaded) if isinstance(loaded.get("train"), dict) else loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    recipe = build(TrainRecipe, values)
    if recipe.lr_scheduler != TrainRecipe.lr_scheduler:  # the default is one; asking transformers imports torch
        schedulers = _schedulers()
        require(recipe.lr_scheduler in schedulers, f"recipe field 'lr_scheduler': unknown scheduler "
                f"{recipe.lr_scheduler!r}", hint=f"one of {', '.join(schedulers)}")
    require(recipe.rope_scaling in ("auto", "none") or isinstance(recipe.rope_scaling, float),
            f"recipe field 'rope_scaling' must be 'auto', 'none' or a factor, got {recipe.rope_scaling!r}")
    if recipe.curriculum is not None:
        from expspan_cli.train.curriculum import parse_curriculum

        parse_curriculum(recipe.curriculum, recipe.max_steps)
    return recipe
