"""What every evaluation needs before it runs: the model (through the zoo, with its adapter), its attention variant,
its identity for the record, and a check that the lengths asked for fit its positions."""

from __future__ import annotations

from typing import Any

import torch

from expspan_cli.errors import ExpspanError


def parse_lengths(text: str | list[int]) -> list[int]:
    items = text if isinstance(text, list) else [t for t in str(text).replace(" ", "").split(",") if t]
    try:
        lengths = [int(str(t).lower().replace("k", "")) * (1024 if "k" in str(t).lower() else 1) for t in items]
    except ValueError:
        raise ExpspanError(f"--lengths must be a comma list of integers (e.g. 2048,8192 or 2k,8k), got {text!r}") \
            from None
    if not lengths or min(lengths) <= 0:
        raise ExpspanError(f"--lengths must list positive lengths, got {text!r}")
    return lengths


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_for_eval(spec: str, adapter: str | None = None, tokenizer: str | None = None, device: str | None = None
                  ) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode; bf16 on GPU, fp32 on CPU."""
    from expspan_cli.models import load_model

    device = device or default_device()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model, tok = load_model(spec, adapter=adapter, dtype=dtype, device=device, tokenizer=tokenizer)
    if tok is None:
        raise ExpspanError(f"model {spec!r} comes without a tokenizer", hint="pass --tokenizer DIR")
    return model.eval(), tok


def apply_attention(model: Any, variant: str, params: dict[str, Any]) -> dict[str, Any]:
    """Switch the model to `variant` unless it is full attention; returns what the record says about it."""
    from expspan_cli.attention import current_attention, set_attention
    from expspan_cli.attention.params import params_dict

    if variant != "full" or params:
        set_attention(model, variant, **params)
    name, parsed = current_attention(model)
    return {"variant": variant, "params": params_dict(parsed) if parsed is not None else {}, "active": name}


def max_positions(model: Any) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None)


def check_lengths(model: Any, lengths: list[int], allow_extrapolation: bool) -> None:
    limit = max_positions(model)
    if limit and lengths and max(lengths) > limit and not allow_extrapolation:
        raise ExpspanError(f"length {max(lengths)} is beyond the model's {limit} positions",
                           hint="pass --allow-extrapolation to evaluate there anyway")


def model_identity(spec: str, model: Any, tokenizer: Any) -> dict[str, Any]:
    from expspan_cli.data.tokenizer import tokenizer_hash

    config = getattr(model, "config", None)
    return {"spec": spec, "class": type(model).__name__, "model_type": getattr(config, "model_type", None),
            "parameters": sum(p.numel() for p in model.parameters()), "max_positions": max_positions(model),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "tokenizer_hash": tokenizer_hash(tokenizer), "name_or_path": getattr(config, "_name_or_path", None)}


def parse_attn_params(items: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE pairs (values read as JSON when they parse, e.g. chunk_sizes=[2048,4096], else as text)."""
    import json

    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ExpspanError(f"--attn-param takes KEY=VALUE, got {item!r}", hint="e.g. --attn-param top_k=8")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def prepare_model(spec: str, adapter: str | None, tokenizer: str | None, attn: str, attn_params: dict[str, Any],
                  lengths: list[int], allow_extrapolation: bool, device: str | None = None
                  ) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """(model, tokenizer, model identity, attention description), lengths checked against the model's positions."""
    model, tok = load_for_eval(spec, adapter=adapter, tokenizer=tokenizer, device=device)
    check_lengths(model, lengths, allow_extrapolation)
    attention = apply_attention(model, attn, attn_params)
    torch.manual_seed(0)  # SE-Attn draws a chunk size per layer call: the same draws make an evaluation repeatable
    return model, tok, model_identity(spec, model, tok), attention
