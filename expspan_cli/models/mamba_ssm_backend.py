"""The mamba-ssm backend: Mamba-2-Hybrid checkpoints (`MambaLMHeadModel` with `attn_layer_idx` / `attn_cfg`, e.g.
state-spaces/mamba2attn-2.7b) as a causal LM that the rest of expspan uses like a transformers one.

Its attention layers are MambaSSMAttention (same tensors as mamba-ssm's MHA), so `set_attention` switches them,
`record_retrievals` sees them and HyLoRA puts LoRA on their `in_proj`/`out_proj` only; the Mamba-2 mixers stay
mamba-ssm's own (Triton SSD kernels: CUDA for users; the tests run them in Triton's interpreter on CPU). `forward`
takes labels (the Trainer), `generate` decodes greedily with the backend's own inference cache (Mamba-2 conv/SSM
states, attention KV cache and SE-Attn state).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers as tf
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.modeling_outputs import CausalLMOutput

from expspan_cli.errors import ExpspanError, require
from expspan_cli.models.mamba_attention import MambaSSMAttention

CONFIG_FILE = "config.json"
# state-spaces/mamba2attn-2.7b's config (paper §4.1): 58 Mamba-2 layers (mamba-ssm's Mamba2 defaults) + 6 attention.
PAPER_HYBRID: dict[str, Any] = {
    "d_model": 2560, "d_intermediate": 0, "n_layer": 64, "vocab_size": 50277, "ssm_cfg": {"layer": "Mamba2"},
    "attn_layer_idx": [9, 18, 27, 36, 45, 56],
    "attn_cfg": {"causal": True, "d_conv": 4, "head_dim": 128, "num_heads": 30, "out_proj_bias": False,
                 "qkv_proj_bias": False, "rotary_emb_dim": 64},
    "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 16,
    "tie_embeddings": True}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_INSTALL_HINT = ("on a CUDA machine: pip install mamba-ssm --no-build-isolation (Triton kernels only) and optionally "
                 "causal-conv1d; on CPU use a transformers hybrid instead (tiny-hybrid, zamba2-1.2b)")


def require_backend() -> None:
    """One clear error where the backend cannot run: no CUDA device, or mamba-ssm not installed."""
    if not torch.cuda.is_available():
        raise ExpspanError("the mamba-ssm backend (Mamba-2-Hybrid checkpoints) runs on CUDA GPUs only, and this "
                           "machine has none", hint=_INSTALL_HINT)
    if importlib.util.find_spec("mamba_ssm") is None:
        raise ExpspanError("the mamba-ssm backend needs the mamba-ssm package, which is not installed",
                           hint=_INSTALL_HINT)


def is_mamba_ssm_checkpoint(path: str | Path) -> bool:
    """A local directory holding a mamba-ssm config.json (MambaConfig fields, no transformers model_type)."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # not readable as a mamba-ssm config: the transformers loader names the damage
    return isinstance(data, dict) and "model_type" not in data and "d_model" in data and "ssm_cfg" in data


def read_config(spec: str) -> dict[str, Any]:
    """The MambaConfig fields of a local checkpoint directory or hub id."""
    if Path(spec).is_dir():
        require(is_mamba_ssm_checkpoint(spec), f"{spec} is not a mamba-ssm checkpoint (no MambaConfig config.json)")
        return json.loads((Path(spec) / CONFIG_FILE).read_text())
    from mamba_ssm.utils.hf import load_config_hf

    try:
        return load_config_hf(spec)
    except OSError as err:
        raise ExpspanError(f"cannot load mamba-ssm checkpoint {spec!r}: not a local directory, and the hub is "
                           "unreachable or has no such model", hint=f"offline, download it where there is network "
                           f"(`hf download {spec} --local-dir DIR`) and pass DIR") from err


def _state_dict(spec: str, device: Any, dtype: Any) -> dict[str, torch.Tensor]:
    if not Path(spec).is_dir():
        from mamba_ssm.utils.hf import load_state_dict_hf

        return load_state_dict_hf(spec, device=device, dtype=dtype)
    for name in WEIGHT_FILES:
        path = Path(spec) / name
        if path.is_file():
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(path), device=str(device))
            return torch.load(path, map_location=device, weights_only=True)
    raise ExpspanError(f"{spec} holds no weights ({' or '.join(WEIGHT_FILES)})")


@dataclasses.dataclass
class DecodeState:
    """mamba-ssm's InferenceParams fields (its mixers read them): per-layer caches and how many tokens they hold."""

    max_seqlen: int
    max_batch_size: int
    seqlen_offset: int = 0
    batch_size_offset: int = 0
    key_value_memory_dict: dict = dataclasses.field(default_factory=dict)
    lengths_per_sample: torch.Tensor | None = None


class MambaSSMForCausalLM(nn.Module):
    """A mamba-ssm hybrid (its backbone and lm_head, state-dict names unchanged) with a transformers-style interface."""

    main_input_name = "input_ids"

    def __init__(self, lm: nn.Module, mamba_config: Any) -> None:
        super().__init__()
        self.backbone, self.lm_head = lm.backbone, lm.lm_head
        self.mamba_config = mamba_config
        fields = dataclasses.asdict(mamba_config)
        self.config = tf.PretrainedConfig(**fields, tie_word_embeddings=fields.get("tie_embeddings", True))
        self.config.model_type = "mamba_ssm"
        # transformers' tied-weight map, which PEFT reads to keep a trained embedding copy tied to the output head
        self._tied_weights_keys = {"lm_head.weight": "backbone.embedding.weight"} if mamba_config.tie_embeddings \
            else {}

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.embedding

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def tie_weights(self) -> None:
        """As mamba-ssm's: the output head shares the embedding matrix when the config ties them (lm-eval calls it)."""
        if self.mamba_config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, inference_params: DecodeState | None = None,
                num_last_tokens: int = 0, inputs_embeds: torch.Tensor | None = None, **_: Any) -> CausalLMOutput:
        require(inputs_embeds is None, "mamba-ssm models take input_ids, not inputs_embeds")
        _require_no_padding(attention_mask)
        hidden = self.backbone(input_ids, inference_params=inference_params)
        if num_last_tokens > 0:
            hidden = hidden[:, -num_last_tokens:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict[str, Any] | None = None,
                                        every_n_layers: int = 1, offload: bool = False) -> None:
        """Recompute every n-th block during backward (the Trainer's activation checkpointing); the RNG state is
        replayed, so SE-Attn draws the same chunk size again."""
        require(not offload, "the mamba-ssm backend does not offload checkpointed activations")
        kwargs = {"use_reentrant": False, **(activation_checkpointing_kwargs or {})}
        for block in list(self.backbone.layers)[::every_n_layers]:
            if "forward" not in block.__dict__:
                block.forward = functools.partial(checkpoint, block.forward, **kwargs)

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, **_: Any) -> dict[str, Any]:
        return {"input_ids": input_ids}  # PEFT's causal-LM wrapper requires the method; generate() below needs none

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, max_new_tokens: int = 20,
                 do_sample: bool = False, eos_token_id: int | None = None, pad_token_id: int | None = None,
                 max_length: int | None = None, **_: Any) -> torch.Tensor:
        """Greedy decoding: one prefill, then one token per step through the inference cache. Returns prompt +
        generated ids (max_length, as lm-eval passes it, counts the prompt); sequences that produced EOS are
        continued with pad (or EOS)."""
        require(not do_sample, "the mamba-ssm backend decodes greedily only", hint="drop do_sample")
        _require_no_padding(attention_mask)
        batch, prompt = input_ids.shape
        if max_length is not None:
            max_new_tokens = max(max_length - prompt, 0)
        state = DecodeState(max_seqlen=prompt + max_new_tokens, max_batch_size=batch)
        fill = pad_token_id if pad_token_id is not None else eos_token_id
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        step_ids, out = input_ids, [input_ids]
        for _ in range(max_new_tokens):
            logits = self(step_ids, inference_params=state, num_last_tokens=1).logits[:, -1]
            state.seqlen_offset += step_ids.shape[1]
            token = logits.argmax(-1)
            if eos_token_id is not None:
                token = torch.where(done, torch.full_like(token, fill), token)
                done |= token == eos_token_id
            step_ids = token[:, None]
            out.append(step_ids)
            if bool(done.all()):
                break
        return torch.cat(out, dim=1)

    def save_pretrained(self, directory: str | Path, **_: Any) -> None:
        """mamba-ssm's own checkpoint format (config.json of MambaConfig fields + pytorch_model.bin)."""
        from expspan_cli.runs import atomic_write_json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), directory / "pytorch_model.bin")
        atomic_write_json(directory / CONFIG_FILE, dataclasses.asdict(self.mamba_config))


def _require_no_padding(attention_mask: torch.Tensor | None) -> None:
    if attention_mask is not None and not bool(attention_mask.all()):
        raise ExpspanError("mamba-ssm models take no padding (their SSM layers have no mask)",
                           hint="use batch size 1 or sequences of equal length")


def build_hybrid(lm_class: type, config_class: type, fields: dict[str, Any], device: Any = None,
                 dtype: Any = None) -> MambaSSMForCausalLM:
    """A model of mamba-ssm's classes (`lm_class`, `config_class`: MambaLMHeadModel, MambaConfig) with its attention
    layers replaced by MambaSSMAttention. Weights are those of a fresh init: load a state dict to restore a
    checkpoint."""
    known = {f.name for f in dataclasses.fields(config_class)}
    config = config_class(**{k: v for k, v in fields.items() if k in known})
    attn_cfg = dict(config.attn_cfg)
    attn_cfg.setdefault("causal", True)
    require(attn_cfg["causal"], "mamba-ssm attention layers must be causal for a causal LM (attn_cfg.causal)")
    # mamba-ssm's MHA refuses rotary without flash-attn; our layer computes rotary itself, so build it without.
    config.attn_cfg = {**attn_cfg, "rotary_emb_dim": 0}
    lm = lm_class(config, device=device, dtype=dtype)
    config.attn_cfg = attn_cfg
    for i, block in enumerate(lm.backbone.layers):
        if i in config.attn_layer_idx:
            block.mixer = MambaSSMAttention.replacing(block.mixer, attn_cfg)
    return MambaSSMForCausalLM(lm, config)


def without_fused_conv(fields: dict[str, Any], has_causal_conv1d: bool) -> dict[str, Any]:
    """MambaConfig fields whose Mamba-2 layers run unfused where causal-conv1d is missing: mamba-ssm's fused
    (`use_mem_eff_path`) path calls the causal-conv1d kernel unconditionally, the unfused one falls back to a
    PyTorch conv1d. A choice already made in ssm_cfg is kept."""
    if has_causal_conv1d:
        return fields
    ssm_cfg = {"use_mem_eff_path": False, **fields.get("ssm_cfg", {})}
    return {**fields, "ssm_cfg": ssm_cfg}


def load_weights(model: MambaSSMForCausalLM, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load, except a tied lm_head.weight that a checkpoint may leave out."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = model.mamba_config.tie_embeddings
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    require(not missing and not unexpected, f"{source} does not fit its own config: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}")


def load_mamba_ssm(spec: str | dict[str, Any], dtype: Any = None, device: Any = None,
                   seed: int = 0) -> MambaSSMForCausalLM:
    """A mamba-ssm hybrid from a hub id or a local checkpoint directory, or (spec a dict of MambaConfig fields, e.g.
    PAPER_HYBRID) randomly initialised, on CUDA (`device`, default cuda; dtype default bf16, the checkpoints')."""
    require_backend()
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    device, dtype = device or "cuda", dtype or torch.bfloat16
    torch.manual_seed(seed)
    fields = without_fused_conv(spec if isinstance(spec, dict) else read_config(spec),
                                importlib.util.find_spec("causal_conv1d") is not None)
    model = build_hybrid(MambaLMHeadModel, MambaConfig, fields, device=device, dtype=dtype)
    if not isinstance(spec, dict):
        load_weights(model, _state_dict(spec, device, dtype), spec)
    return model
