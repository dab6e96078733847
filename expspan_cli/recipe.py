"""Training recipes: a YAML file whose fields mirror the `pretrain`/`finetune` options, validated field by field.

Defaults are the paper's (reference/paper.md §4.3, LongLoRA's recipe): 1000 steps, lr 2e-4 (2e-5 for S2-Attn),
20 warmup steps, constant_with_warmup, no weight decay, per-device batch 1 x 8 accumulation, bf16 where supported,
gradient checkpointing. A later recipe (the whole reproduction) nests this one; keep it to what training needs.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from expspan_cli.errors import ExpspanError, require

LR = 2e-4
LR_S2 = 2e-5  # LongLoRA's default, which the paper keeps for S2-Attn


@dataclass
class TrainRecipe:
    model: str | None = None  # required to fine-tune; pre-training builds a preset (default tiny-hybrid)
    random_base: bool = False  # fine-tuning a random-init preset must be asked for (benchmarks)
    tokenizer: str | None = None  # None: the model's own (presets: the prepared data's)
    data: str | None = None  # a directory written by `expspan prepare`
    method: str = "hylora"
    attn: str | None = None  # None: "se", or the method preset's (longlora: s2)
    attn_params: dict[str, Any] = field(default_factory=dict)  # passed to set_attention (se: chunk_sizes, ...)
    seq_len: int | None = None  # None: the prepared block length; else a divisor of it (blocks are cut)
    split: str = "train"
    max_steps: int = 1000
    save_steps: int = 100
    save_total_limit: int = 2
    lr: float | None = None  # None: LR, or LR_S2 with attn s2
    warmup_steps: int = 20
    lr_scheduler: str = "constant_with_warmup"
    weight_decay: float = 0.0
    per_device_batch_size: int = 1
    grad_accum: int = 8
    bf16: bool | None = None  # None: where the device supports it (CUDA with bf16)
    gradient_checkpointing: bool = True
    seed: int = 42
    lora_r: int | None = None  # None: 32 on hybrids, 8 on transformers (paper §2)
    lora_alpha: int | None = None  # None: 2 * lora_r
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    rope_scaling: str | float = "auto"  # "auto": LongLoRA's linear factor ceil(L / pre-training ctx) on transformers
    deepspeed: str | None = None  # a DeepSpeed config (JSON or YAML), e.g. recipes/deepspeed-zero2.yaml
    logging_steps: int = 1
    curriculum: list[dict[str, Any]] | None = None  # row lengths and copy rows by phase (train/curriculum.py)

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else (LR_S2 if self.attn == "s2" else LR)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(name: str, value: Any) -> Any:
    """Coerce/validate one field against its annotation; the error names the field."""
    hint = typing.get_type_hints(TrainRecipe)[name]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    if value is None:
        require(type(None) in options, f"recipe field {name!r} cannot be empty")
        return None
    for option in options:
        base = typing.get_origin(option) or option
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base in (str, bool, dict, list) and isinstance(value, base):
            return value
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
    raise ExpspanError(f"recipe field {name!r} must be {wanted}, got {value!r}")


def _schedulers() -> list[str]:
    """The learning-rate schedules transformers' Trainer knows (its SchedulerType values)."""
    from transformers.trainer_utils import SchedulerType

    return [s.value for s in SchedulerType]


def read_yaml(path: str | Path, what: str) -> Any:
    """A YAML file a user names (recipe, DeepSpeed config, ...), or one error line saying why it cannot be read."""
    path = Path(path)
    require(path.exists(), f"{what} {path} does not exist")
    require(path.is_file(), f"{what} {path} is a directory, not a file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ExpspanError(f"{what} {path} is not UTF-8 text") from None
    except OSError as err:
        raise ExpspanError(f"{what} {path} cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ExpspanError(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}") from None


def build_recipe(path: str | Path | None = None, **overrides: Any) -> TrainRecipe:
    """A recipe from a YAML file (optional) with `overrides` (CLI options; None means 'not given') on top."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml(path, "recipe")
        require(isinstance(loaded, dict), f"recipe {path} must be a mapping of field: value")
        values.update(loaded.get("train", loaded) if isinstance(loaded.get("train"), dict) else loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainRecipe)}
    unknown = sorted(set(values) - known)
    require(not unknown, f"unknown recipe field(s): {', '.join(unknown)}", hint=f"fields: {', '.join(sorted(known))}")
    recipe = TrainRecipe(**{k: _check_type(k, v) for k, v in values.items()})
    for name in ("max_steps", "save_steps", "per_device_batch_size", "grad_accum", "logging_steps",
                 "save_total_limit"):
        require(getattr(recipe, name) > 0, f"recipe field {name!r} must be positive, got {getattr(recipe, name)}")
    for name in ("seq_len", "lora_r", "lora_alpha"):
        value = getattr(recipe, name)
        require(value is None or value > 0, f"recipe field {name!r} must be positive, got {value}")
    for name in ("warmup_steps", "weight_decay", "seed"):
        require(getattr(recipe, name) >= 0, f"recipe field {name!r} must be >= 0, got {getattr(recipe, name)}")
    require(recipe.lr is None or (recipe.lr > 0 and math.isfinite(recipe.lr)),
            f"recipe field 'lr' must be a positive learning rate, got {recipe.lr}")
    if recipe.lr_scheduler != TrainRecipe.lr_scheduler:  # the default is one; asking transformers imports torch
        schedulers = _schedulers()
        require(recipe.lr_scheduler in schedulers, f"recipe field 'lr_scheduler': unknown scheduler "
                f"{recipe.lr_scheduler!r}", hint=f"one of {', '.join(schedulers)}")
    require(0 <= recipe.lora_dropout < 1, f"recipe field 'lora_dropout' must be in [0, 1), got {recipe.lora_dropout}")
    require(recipe.rope_scaling in ("auto", "none") or isinstance(recipe.rope_scaling, float),
            f"recipe field 'rope_scaling' must be 'auto', 'none' or a factor, got {recipe.rope_scaling!r}")
    if recipe.curriculum is not None:
        from expspan_cli.train.curriculum import parse_curriculum

        parse_curriculum(recipe.curriculum, recipe.max_steps)
    return recipe
