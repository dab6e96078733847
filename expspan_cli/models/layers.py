"""Where the parts HyLoRA cares about live in a loaded model: attention projections, SSM 1D convs, norms, embeddings.

Parts are found by module type and position, never by parameter name alone: SSM and attention projections share
names (`in_proj`, `out_proj`) in some families, and PEFT's name matching would silently pick the wrong ones.
"""

from __future__ import annotations

from torch import nn

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    from expspan_cli.attention import attention_modules

    return attention_modules(model)


def unwrap(module: nn.Module) -> nn.Module:
    """The module PEFT wrapped to train a copy of it (`modules_to_save`), else the module itself."""
    return module.original_module if hasattr(module, "original_module") and hasattr(module, "modules_to_save") \
        else module


def ssm_mixers(model: nn.Module) -> dict[str, nn.Module]:
    """Mamba mixers by qualified name: modules that hold a depthwise `conv1d` next to an `in_proj` and are not
    attention layers (mamba-ssm's attention has a qkv conv1d too; HyLoRA trains the SSM ones)."""
    attention = {id(m) for m in _attention_modules(model)}
    return {name: mod for name, mod in model.named_modules()
            if isinstance(unwrap(getattr(mod, "conv1d", nn.Identity())), nn.Conv1d) and hasattr(mod, "in_proj")
            and id(mod) not in attention}


def attention_projection_names(model: nn.Module, targets: tuple[str, ...] = ATTENTION_PROJECTIONS) -> list[str]:
    """Qualified names of the `targets` linear projections inside attention layers (exact names, for PEFT). A layer
    whose projections are named otherwise lists them in `projection_names` (mamba-ssm's fused in_proj, out_proj)."""
    ids = {id(m) for m in _attention_modules(model)}
    names = []
    for name, mod in model.named_modules():
        if id(mod) in ids:
            names += [f"{name}.{t}" for t in getattr(mod, "projection_names", targets)
                      if isinstance(getattr(mod, t, None), nn.Linear)]
    return names


def is_norm(module: nn.Module) -> bool:
    """LayerNorm / RMSNorm / gated RMSNorm of any family (transformers names them all `*Norm*`)."""
    return isinstance(module, nn.LayerNorm) or ("Norm" in type(module).__name__ and not list(module.children()))


def parameter_groups(model: nn.Module) -> dict[str, str]:
    """Group of every (deduplicated) parameter the model runs, by qualified name: lora, embeddings, norms, conv1d or
    other. PEFT's frozen originals of the modules it trains copies of (`original_module`) run nowhere: left out."""
    embed = unwrap(model.get_input_embeddings()) if hasattr(model, "get_input_embeddings") else None
    conv_ids = {id(unwrap(m.conv1d)) for m in ssm_mixers(model).values()}
    groups: dict[str, str] = {}
    for name, _ in model.named_parameters():
        if ".original_module." in f".{name}":
            continue
        path = name.rpartition(".")[0]
        if ".modules_to_save." in f".{path}":  # a trained copy: classify it as the module it copies
            path = path.split(".modules_to_save.")[0]
        owner = unwrap(model.get_submodule(path))
        if ".lora_" in f".{name}":
            groups[name] = "lora"
        elif owner is embed:
            groups[name] = "embeddings"
        elif id(owner) in conv_ids:
            groups[name] = "conv1d"
        elif is_norm(owner):
            groups[name] = "norms"
        else:
            groups[name] = "other"
    return groups
