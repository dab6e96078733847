"""transformers integration: every variant is registered in AttentionInterface and AttentionMaskInterface (with
the flash-style mask function, so the hook receives a compact [B, Lk] padding mask or None, never an L x L one),
and `set_attention` switches a loaded model's attention and its parameters at run time.

A model loaded with `attn_implementation="expspan_se"` (or switched with `set_attn_implementation`) runs the
parameters saved in its config (`expspan_attention`, written by fine-tuning and export), or, when the config saves
none for that variant, the paper's settings scaled to the model's context (`fitted_defaults`)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Iterator

import torch
from torch import nn

from expspan_cli.attention.common import draw_chunk_size, expand_kv
from expspan_cli.attention.dispatch import attend
from expspan_cli.attention.params import VARIANTS, SEParams, fitted_defaults, make_params
from expspan_cli.attention.se import se_attention
from expspan_cli.attention.se_decode import SEState, prefill_state, se_decode
from expspan_cli.errors import ExpspanError

IMPLEMENTATIONS = {variant: f"expspan_{variant}" for variant in VARIANTS}  # names in AttentionInterface
_MAX_DECODE_STATES = 64


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules of a transformers model (classes named *Attention that call the interface)."""
    return [m for m in model.modules() if type(m).__name__.endswith("Attention") and hasattr(m, "is_causal")]


def _hook_for(variant: str):
    def hook(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
             **kwargs: Any) -> tuple[torch.Tensor, None]:
        padding = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
        if attention_mask is not None and padding is None:
            raise ExpspanError("expspan attention received a dense attention mask", hint="switch the model with "
                               "expspan_cli.attention.set_attention, or call expspan_cli.attention.register() before "
                               "loading, so the mask function is registered too")
        out = module_attention(module, query, key, value, padding, scaling, variant)
        return out.transpose(1, 2).contiguous(), None

    hook.__name__ = f"expspan_{variant}_attention"
    return hook


def saved_attention(config: Any, variant: str) -> Any:
    """The parameters of `variant` a config saves, else the paper's settings scaled to the model's context."""
    saved = getattr(config, "expspan_attention", None) or {}
    if saved.get("variant") == variant:
        return make_params(variant, **saved.get("params", {}))
    context = getattr(config, "expspan_pretrain_context", None) or getattr(config, "max_position_embeddings", None)
    return make_params(variant, **fitted_defaults(variant, context))


def _module_params(module: nn.Module, variant: str) -> Any:
    current, params = getattr(module, "_expspan_attention", ("full", None))
    if current == variant:
        return params
    config = getattr(module, "config", None)
    if config is None:
        raise ExpspanError(f"{type(module).__name__} has no config to read {variant!r} parameters from",
                           hint="switch the model with expspan_cli.attention.set_attention(model, variant, ...)")
    params = saved_attention(config, variant)
    module._expspan_attention = (variant, params)
    return params


def module_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     padding: torch.Tensor | None, scaling: float | None, variant: str | None = None) -> torch.Tensor:
    """What an attention layer computes ([B, Hq, Lq, D]) under `variant` (the registered implementation that called
    it), or, when None, under the variant `set_attention` gave it; shared by the transformers hook and the mamba-ssm
    backend's attention layers. Keys are the whole cache when decoding."""
    if variant is None:
        variant, params = getattr(module, "_expspan_attention", ("full", None))
    else:
        params = _module_params(module, variant) if variant != "full" else None
    recorder = getattr(module, "_expspan_recorder", None)
    if variant == "se" and (query.shape[2] != key.shape[2] or not module.training):
        return _se_with_cache(module, params, query, key, value, padding, scaling, recorder)
    return attend(variant, params, query, key, value, padding, scaling, recorder)


def _se_with_cache(module, params: SEParams, q, k, v, padding, scale, recorder):
    """Inference: keep per-sequence SE state so decoding steps (Lq < Lk) continue what the prefill started."""
    states: OrderedDict = module.__dict__.setdefault("_expspan_se_states", OrderedDict())
    heads = q.shape[1]
    scale = scale if scale is not None else q.shape[-1] ** -0.5
    # One module may serve several layers (Zamba2's shared block): the first cached key tells their caches apart.
    tag = (k.shape[0], tuple(k[:, 0, 0, :4].flatten().tolist()))
    real = None if padding is None or bool(padding.all()) else padding.bool()
    kx, vx = expand_kv(k, heads), expand_kv(v, heads)
    if q.shape[2] == k.shape[2]:
        chunk = draw_chunk_size(params.chunk_sizes)
        if params.causal_retrieval is not False:  # None: strictly causal at inference
            state = SEState.empty(chunk)
            out = se_decode(q, kx, vx, params, state, real, scale, recorder)
        else:
            out = se_attention(q, kx, vx, params, padding, scale, chunk_size=chunk, recorder=recorder)
            state = prefill_state(q, kx, vx, params, chunk, real, scale)
        states[tag] = state
        while len(states) > _MAX_DECODE_STATES:
            states.popitem(last=False)
        return out
    state: SEState | None = states.get(tag)
    if state is None:
        raise ExpspanError("SE-Attn cannot decode without its prefill state",
                           hint="run the prompt through the model with SE-Attn before generating")
    return se_decode(q, kx, vx, params, state, real, scale, recorder)


_HOOKS = {variant: _hook_for(variant) for variant in IMPLEMENTATIONS}


def register() -> None:
    """Register every variant with transformers (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    for variant, name in IMPLEMENTATIONS.items():
        AttentionInterface.register(name, _HOOKS[variant])
        AttentionMaskInterface.register(name, flash_attention_mask)


def set_attention(model: nn.Module, variant: str, **params: Any) -> nn.Module:
    """Switch every attention layer of `model` to `variant` with `params` (validated); returns the model.

    The switch is one call and reversible: train with "se", then `set_attention(model, "full")` to evaluate.
    """
    parsed = make_params(variant, **params)
    modules = attention_modules(model)
    if not modules:
        raise ExpspanError(f"{type(model).__name__} has no attention layers, so attention {variant!r} cannot apply",
                           hint="attention variants need a hybrid or transformer model (e.g. Bamba, Zamba2, Llama)")
    register()
    for module in modules:
        module._expspan_attention = (variant, parsed)
        module.__dict__.pop("_expspan_se_states", None)
    if hasattr(model, "set_attn_implementation"):  # transformers; mamba-ssm attention layers read the tag themselves
        model.set_attn_implementation(IMPLEMENTATIONS[variant])
    return model


def current_attention(model: nn.Module) -> tuple[str, Any]:
    """(variant, params) of the model's attention layers; ("full", None) when expspan never switched it."""
    modules = attention_modules(model)
    return getattr(modules[0], "_expspan_attention", ("full", None)) if modules else ("full", None)


@contextlib.contextmanager
def record_retrievals(model: nn.Module) -> Iterator[list[dict]]:
    """Collect, for every SE-Attn call inside the block, which blocks each chunk (or query) retrieved."""
    records: list[dict] = []
    modules = attention_modules(model)
    for i, module in enumerate(modules):
        module._expspan_recorder = _LayerRecorder(records, i)
    try:
        yield records
    finally:
        for module in modules:
            module.__dict__.pop("_expspan_recorder", None)


class _LayerRecorder:
    """A list-like sink that tags each record with its attention layer's index."""

    def __init__(self, records: list[dict], layer: int):
        self.records, self.layer = records, layer

    def append(self, record: dict) -> None:
        self.records.append({"layer": self.layer, **record})
