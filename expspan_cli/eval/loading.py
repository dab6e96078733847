"""What every evaluation needs before it runs: the model (through the zoo, with its adapter), its attention variant,
its identity for the record, and a check that the lengths asked for fit its positions."""

from __future__ import annotations

from typing import Any

import torch

from expspan_cli.errors import ExpspanError, require
from expspan_cli.options import parse_device


def load_for_eval(spec: str, adapter: str | None = None, tokenizer: str | None = None, device: str | None = None,
                  merge_adapter: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode; bf16 on GPU, fp32 on CPU. An adapter stays a PEFT model unless merged, so
    scores equal those of the artifact loaded with plain PEFT."""
    from expspan_cli.models import load_model

    device = parse_device(device)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model, tok = load_model(spec, adapter=adapter, dtype=dtype, device=device, tokenizer=tokenizer,
                            merge_adapter=merge_adapter)
    if tok is None:
        raise ExpspanError(f"model {spec!r} comes without a tokenizer", hint="pass --tokenizer DIR")
    return model.eval(), tok


def apply_attention(model: Any, variant: str, params: dict[str, Any], lengths: list[int]) -> dict[str, Any]:
    """Switch the model to `variant` (parameters: those given, over the ones its config saves for that variant, over
    the paper's settings scaled to its context); returns what the record says about it: every parameter, SE's
    retrieval mode (strictly causal at inference unless `causal_retrieval` is given), and the lengths at which the
    variant computes exactly full attention (legitimate at short lengths; reports mark them)."""
    from expspan_cli.attention import current_attention, set_attention
    from expspan_cli.attention.hf import saved_attention
    from expspan_cli.attention.params import params_dict, reduces_to_full

    if variant != "full":
        set_attention(model, variant, **{**params_dict(saved_attention(model.config, variant)), **params})
    name, parsed = current_attention(model)
    described: dict[str, Any] = {"variant": variant, "params": params_dict(parsed) if parsed is not None else {},
                                 "active": name}
    if variant == "se":
        described["retrieval"] = "paper" if parsed.causal_retrieval is False else "causal"
    if parsed is not None:
        full = {str(n): reason for n in lengths if (reason := reduces_to_full(variant, parsed, n))}
        if full:
            described["full_attention_at"] = full
    return described


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

    from expspan_cli.models.layers import parameter_groups

    config = getattr(model, "config", None)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    groups = parameter_groups(model)  # as merged: no LoRA factors, no frozen originals beside trained copies
    return {"spec": spec, "class": type(base).__name__, "model_type": getattr(config, "model_type", None),
            "parameters": sum(p.numel() for n, p in model.named_parameters() if groups.get(n, "lora") != "lora"),
            "adapter": "peft" if base is not model else None, "max_positions": max_positions(model),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "tokenizer_hash": tokenizer_hash(tokenizer), "name_or_path": getattr(config, "_name_or_path", None)}


def prepare_model(spec: str, adapter: str | None, tokenizer: str | None, attn: str, attn_params: dict[str, Any],
                  lengths: list[int], allow_extrapolation: bool, device: str | None = None,
                  merge_adapter: bool = False, prepared: Any = None) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """(model, tokenizer, model identity, attention description), lengths checked against the model's positions
    and, given the `prepared` data it will score, its tokenizer against the one the data was made with."""
    from expspan_cli.attention import make_params

    if attn == "full":
        require(not attn_params, "attention 'full' takes no --attn-param", hint="drop them or pick --attn se/s2/swa")
    make_params(attn, **attn_params)  # before the model loads: a bad parameter is one line, at once
    model, tok = load_for_eval(spec, adapter=adapter, tokenizer=tokenizer, device=device, merge_adapter=merge_adapter)
    if prepared is not None:
        from expspan_cli.data import check_tokenizer

        check_tokenizer(prepared, tok)
    check_lengths(model, lengths, allow_extrapolation)
    attention = apply_attention(model, attn, attn_params, lengths)
    torch.manual_seed(0)  # SE-Attn draws a chunk size per layer call: the same draws make an evaluation repeatable
    identity = model_identity(spec, model, tok)
    limit = identity["max_positions"]
    identity["beyond_trained_context"] = [n for n in lengths if limit and n > limit]  # marked in records and tables
    return model, tok, identity, attention
