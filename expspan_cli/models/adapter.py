"""Reading back a saved adapter: a standard PEFT adapter directory (LoRA + the fully trained embeddings, norms and
conv1d as PEFT `modules_to_save`) plus `expspan_adapter.json` (the fine-tuning context and attention)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from expspan_cli.errors import ExpspanError, require

ADAPTER_INFO = "expspan_adapter.json"  # next to a PEFT adapter: its base, context, attention and method
# Earlier runs kept the fully trained tensors in a side file PEFT ignores; such runs still load through expspan.
LEGACY_TENSORS = "trained_tensors.safetensors"


def read_adapter_info(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / ADAPTER_INFO
    if not path.exists():
        raise ExpspanError(f"{directory} is not an expspan adapter directory (no {ADAPTER_INFO})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExpspanError(f"{path} is not valid JSON: {err}") from None


def _load_legacy_tensors(base: nn.Module, directory: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(directory / LEGACY_TENSORS))
    params = dict(base.named_parameters())
    missing = sorted(set(tensors) - set(params))
    require(not missing, f"{directory}: trained tensors do not fit this model (e.g. {missing[:3]})")
    with torch.no_grad():
        for name, value in tensors.items():
            require(params[name].shape == value.shape, f"{directory}: {name} has shape {tuple(value.shape)}, the "
                    f"model's is {tuple(params[name].shape)}")
            params[name].copy_(value)


def restore_adapter(base: nn.Module, directory: str | Path, merge: bool = True) -> nn.Module:
    """`base` with the adapter in `directory` applied through PEFT: merged into a plain model of the base's class,
    or (merge False) the PEFT model itself, which computes exactly what plain PEFT loading computes (merging the
    LoRA product into the weights moves logits by float rounding)."""
    from peft import PeftModel

    directory = Path(directory)
    if (directory / LEGACY_TENSORS).exists():
        _load_legacy_tensors(base, directory)
    model = PeftModel.from_pretrained(base, str(directory))
    return model.merge_and_unload() if merge else model
