"""Load a model by preset name, hub id, local directory or run directory (base + adapter + trained tensors)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers as tf

from expspan_cli.errors import ExpspanError, require
from expspan_cli.hub import offline_unless_reachable
from expspan_cli.models.adapter import ADAPTER_INFO, read_adapter_info, restore_adapter
from expspan_cli.models.mamba_ssm_backend import is_mamba_ssm_checkpoint
from expspan_cli.models.tiny import RECALL_SHAPE, tiny_hybrid_config

tf.utils.logging.disable_progress_bar()  # per-file loading bars: noise around expspan's own progress and errors

_OFFLINE_HINT = ("offline, pass a local model directory (download it where there is network with `hf download "
                 "{spec} --local-dir DIR`), or set HF_HUB_OFFLINE=1 to use the local cache")


@dataclass(frozen=True)
class Preset:
    description: str
    hub_id: str | None = None  # None: built locally (random init)
    backend: str = "transformers"  # "mamba_ssm": GPU-only mamba-ssm MambaLMHeadModel
    pretrain_context: int | None = None
    shape: dict[str, Any] | None = None  # built locally: overrides of the tiny-hybrid config


PRESETS: dict[str, Preset] = {
    "tiny-hybrid": Preset("~5M-param Bamba (3 Mamba-2 + 1 attention layer, partial RoPE), random init, vocab of "
                          "the prepared tokenizer"),
    "tiny-recall-hybrid": Preset("~0.5M-param Bamba (1 Mamba-2 + 2 attention layers, width 128, tied embeddings) that "
                                 "learns in-context recall with the pre-training curriculum; vocab of the prepared "
                                 "tokenizer", shape=RECALL_SHAPE),
    "mamba2-hybrid-2.7b": Preset("the paper's Mamba-2-Hybrid 2.7B", "state-spaces/mamba2attn-2.7b", "mamba_ssm", 2048),
    "mamba2-hybrid-2.7b-random": Preset("the paper's Mamba-2-Hybrid 2.7B shape, random init (benchmarks, no "
                                        "download; vocab of the prepared tokenizer up to 50277)", None, "mamba_ssm",
                                        2048),
    "llama-7b": Preset("Llama-1 7B (paper App. C)", "huggyllama/llama-7b", pretrain_context=2048),
    "zamba2-1.2b": Preset("Zamba2 1.2B (paper App. D)", "Zyphra/Zamba2-1.2B", pretrain_context=4096),
}


def is_random_preset(spec: str) -> bool:
    """A preset built locally from random init (no trained weights behind it)."""
    return spec in PRESETS and PRESETS[spec].hub_id is None


def pretrain_context(spec: str, config: Any) -> int | None:
    """The context the model was pre-trained at: what a fine-tuned model's config records, else the preset's, else
    the config's max positions (None when nothing says)."""
    recorded = getattr(config, "expspan_pretrain_context", None)
    if recorded:
        return int(recorded)
    if spec in PRESETS and PRESETS[spec].pretrain_context:
        return PRESETS[spec].pretrain_context
    return getattr(config, "max_position_embeddings", None)


def plain_source(spec: str) -> str | None:
    """Where plain transformers loads `spec` from as expspan does (an absolute path or a hub id), or None when it
    cannot: a random-init preset, a mamba-ssm preset, or a run whose model is an adapter still to merge."""
    spec = str(spec)
    if spec in PRESETS:
        preset = PRESETS[spec]
        return preset.hub_id if preset.hub_id and preset.backend == "transformers" else None
    final = _run_final(spec)
    if final is not None:
        return None if (final / ADAPTER_INFO).exists() else str(final.resolve())
    return str(Path(spec).resolve()) if Path(spec).is_dir() else spec


def _dtype(dtype: Any) -> torch.dtype | None:
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "fp32": torch.float32, "float32": torch.float32}
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in names:
        raise ExpspanError(f"unknown dtype {dtype!r}", hint=f"one of {', '.join(names)}")
    return names[dtype]


def _load_tokenizer(source: str | Path) -> tf.PreTrainedTokenizerBase:
    if not Path(source).is_dir():
        offline_unless_reachable()
    try:
        return tf.AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as err:
        raise ExpspanError(f"cannot load a tokenizer from {source}: {str(err).splitlines()[0]}") from err


def set_config(config: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        setattr(config, key, value)


def _config_with(source: str, overrides: dict[str, Any] | None) -> tf.PretrainedConfig:
    if not Path(source).is_dir():
        offline_unless_reachable()
    config = tf.AutoConfig.from_pretrained(source)
    set_config(config, overrides or {})
    return config


def _from_pretrained(source: str, overrides: dict[str, Any] | None, dtype: torch.dtype | None
                     ) -> tf.PreTrainedModel:
    local = Path(source).is_dir()
    try:
        config = _config_with(source, overrides)
        return tf.AutoModelForCausalLM.from_pretrained(source, config=config, dtype=dtype or torch.float32)
    except OSError as err:
        if local:
            raise ExpspanError(f"{source} is not a loadable transformers model: {str(err).splitlines()[0]}") from err
        raise ExpspanError(f"cannot load model {source!r}: not a local model directory, and the hub is unreachable "
                           "or has no such model", hint=_OFFLINE_HINT.format(spec=source)) from err
    except Exception as err:  # a damaged file (truncated safetensors, config.json that is not JSON, ...)
        if not local:
            raise
        raise ExpspanError(f"{source} is damaged and cannot be loaded ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:160]})", hint="re-create it (re-export, or rerun the "
                           "stage that wrote it)") from None


def _build_preset(name: str, tokenizer: str | None, overrides: dict[str, Any] | None, dtype: torch.dtype | None,
                  seed: int) -> tuple[tf.PreTrainedModel, tf.PreTrainedTokenizerBase]:
    if tokenizer is None:
        raise ExpspanError(f"preset {name!r} takes its vocabulary from a tokenizer",
                           hint="pass the prepared data's tokenizer (DIR/tokenizer)")
    tok = _load_tokenizer(tokenizer)
    config = tiny_hybrid_config(len(tok), **{**(PRESETS[name].shape or {}), **(overrides or {})})
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(config)
    return (model.to(dtype) if dtype else model), tok


def _run_final(spec: str) -> Path | None:
    """RUN/final when spec is a completed pretrain/finetune run directory."""
    from expspan_cli.runs import read_manifest

    manifest = read_manifest(spec) if Path(spec).is_dir() else None
    if manifest and manifest.get("kind") in ("pretrain", "finetune"):
        return Path(spec) / manifest.get("final", "final")
    require(manifest is not None or not (Path(spec) / "recipe.json").is_file(), f"{spec} is an unfinished run (it "
            "has no manifest.json, so no final model)", hint="finish it: rerun its command with --resume")
    return None


@dataclass(frozen=True)
class ModelSource:
    """What a model spec names, decided once for both `load_model` and `model_config`."""

    kind: str  # "adapter" | "mamba_preset" | "preset" | "mamba_ssm" | "transformers"
    spec: str  # adapter: its base; presets: the preset name; else a directory or hub id
    adapter: str | None = None


def resolve(spec: str, adapter: str | None = None) -> ModelSource:
    """A preset name, hub id, local model directory or (completed) run directory, as a ModelSource."""
    spec = str(spec)
    final = _run_final(spec)
    if final is not None:
        if (final / ADAPTER_INFO).exists():
            adapter, spec = str(final), ""
        else:
            spec = str(final)
    if adapter is not None:
        return ModelSource("adapter", spec or read_adapter_info(adapter)["base_model"], adapter)
    if spec in PRESETS:
        preset = PRESETS[spec]
        if preset.backend == "mamba_ssm":
            return ModelSource("mamba_preset", spec)
        return resolve(preset.hub_id) if preset.hub_id else ModelSource("preset", spec)
    if not Path(spec).is_dir() and (os.sep in spec.strip("/") and spec.count("/") != 1 or Path(spec).exists()):
        raise ExpspanError(f"model {spec!r} is neither a preset, a directory nor a hub id",
                           hint=f"presets: {', '.join(PRESETS)}")
    return ModelSource("mamba_ssm" if is_mamba_ssm_checkpoint(spec) else "transformers", spec)


def load_model(spec: str, *, adapter: str | None = None, dtype: Any = None, device: Any = None,
               tokenizer: str | None = None, config_overrides: dict[str, Any] | None = None, seed: int = 0,
               merge_adapter: bool = True) -> tuple[tf.PreTrainedModel, tf.PreTrainedTokenizerBase | None]:
    """A causal LM and its tokenizer from a preset name, hub id, local model directory or fine-tuning run directory.

    A run directory (or `adapter`, a saved adapter directory) restores the base model, the trained non-LoRA tensors
    and the LoRA adapter, merged into a plain transformers model (or, `merge_adapter` False, as the PEFT model plain
    PEFT loading gives, for evaluations that match it exactly). `tokenizer` overrides the model's own (presets
    take their vocabulary from it); `config_overrides` are set on the config before the weights load (RoPE scaling).
    """
    source = resolve(spec, adapter)
    if source.kind == "adapter":
        adapter = source.adapter
        info = read_adapter_info(adapter)
        overrides = {**info.get("config_overrides", {}), **(config_overrides or {})}
        model, tok = load_model(source.spec, dtype=dtype, tokenizer=tokenizer or adapter,
                                config_overrides=overrides, seed=info.get("seed", seed))
        model = restore_adapter(model, adapter, merge=merge_adapter)
        set_config(model.config, info.get("config", {}))
        if tokenizer is None and (Path(adapter) / "tokenizer_config.json").exists():
            tok = _load_tokenizer(adapter)
    elif source.kind == "mamba_preset":
        from expspan_cli.models.mamba_ssm_backend import PAPER_HYBRID, load_mamba_ssm

        model = load_mamba_ssm(PRESETS[source.spec].hub_id or PAPER_HYBRID, dtype=_dtype(dtype), seed=seed)
        tok = _load_tokenizer(tokenizer or "EleutherAI/gpt-neox-20b")
    elif source.kind == "preset":
        model, tok = _build_preset(source.spec, tokenizer, config_overrides, _dtype(dtype), seed)
    else:
        if source.kind == "mamba_ssm":
            from expspan_cli.models.mamba_ssm_backend import load_mamba_ssm

            model = load_mamba_ssm(source.spec, dtype=_dtype(dtype))
        else:
            model = _from_pretrained(source.spec, config_overrides, _dtype(dtype))
        tok = _load_tokenizer(tokenizer) if tokenizer else _maybe_tokenizer(source.spec)
    if device is not None:
        model = model.to(device)
    return model, tok


def _maybe_tokenizer(source: str) -> tf.PreTrainedTokenizerBase | None:
    try:
        return tf.AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError):
        return None


def model_config(spec: str, *, tokenizer: str | None = None) -> tf.PretrainedConfig | None:
    """The transformers config `load_model(spec)` would build, without loading weights (None: not a transformers
    model, i.e. the mamba-ssm backend)."""
    source = resolve(spec)
    if source.kind == "adapter":
        info = read_adapter_info(source.adapter)
        config = model_config(source.spec, tokenizer=tokenizer or source.adapter)
        if config is not None:
            set_config(config, {**info.get("config_overrides", {}), **info.get("config", {})})
        return config
    if source.kind in ("mamba_preset", "mamba_ssm"):
        return None
    if source.kind == "preset":
        require(tokenizer is not None, f"preset {source.spec!r} takes its vocabulary from a tokenizer")
        return tiny_hybrid_config(len(_load_tokenizer(tokenizer)), **(PRESETS[source.spec].shape or {}))
    try:
        return _config_with(source.spec, None)
    except OSError as err:
        raise ExpspanError(f"cannot load model {source.spec!r}: not a local model directory, and the hub is "
                           "unreachable or has no such model", hint=_OFFLINE_HINT.format(spec=source.spec)) from err
