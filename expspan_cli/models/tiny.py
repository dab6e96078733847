"""Tiny random-init configs of every supported transformers family (tests, benchmarks, the embedded default).

Each hybrid has Mamba-2 mixers and at least one attention layer; `mamba2` has none (attention variants refuse it).
"""

from __future__ import annotations

from typing import Any

import transformers as tf

from expspan_cli.errors import ExpspanError

FAMILIES = ("llama", "bamba", "falcon_h1", "nemotron_h", "zamba2", "jamba", "mamba2")


def tiny_config(family: str, vocab_size: int = 128, hidden_size: int = 64, heads: int = 4, kv_heads: int = 2,
                max_position_embeddings: int = 8192, **overrides: Any) -> tf.PretrainedConfig:
    """A config of a few hundred thousand parameters: 2-3 layers, one of them attention (GQA, RoPE)."""
    head_dim = hidden_size // heads
    attn = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_attention_heads=heads,
                num_key_value_heads=kv_heads, max_position_embeddings=max_position_embeddings)
    ssm_heads = 2 * hidden_size // 16
    mamba = dict(mamba_n_heads=ssm_heads, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=16, mamba_d_conv=4,
                 mamba_expand=2, mamba_chunk_size=32)
    if family == "llama":
        cfg = tf.LlamaConfig(intermediate_size=2 * hidden_size, num_hidden_layers=2, **attn)
    elif family == "bamba":
        cfg = tf.BambaConfig(intermediate_size=2 * hidden_size, num_hidden_layers=2, attn_layer_indices=[1],
                             **attn, **mamba)
    elif family == "falcon_h1":
        cfg = tf.FalconH1Config(intermediate_size=2 * hidden_size, mamba_d_ssm=2 * hidden_size, num_hidden_layers=2,
                                head_dim=head_dim, **attn, **mamba)
    elif family == "nemotron_h":
        cfg = tf.NemotronHConfig(intermediate_size=2 * hidden_size, num_hidden_layers=3, hybrid_override_pattern="M*-",
                                 head_dim=head_dim, mamba_num_heads=ssm_heads, mamba_head_dim=16, n_groups=1,
                                 ssm_state_size=16, conv_kernel=4, expand=2, chunk_size=32, **attn)
    elif family == "zamba2":
        cfg = tf.Zamba2Config(num_hidden_layers=2, layers_block_type=["mamba", "hybrid"], mamba_d_state=16,
                              mamba_headdim=16, mamba_ngroups=1, n_mamba_heads=ssm_heads, mamba_d_conv=4,
                              mamba_expand=2, chunk_size=32, attention_head_dim=head_dim,
                              intermediate_size=2 * hidden_size, **attn)
    elif family == "jamba":
        cfg = tf.JambaConfig(intermediate_size=2 * hidden_size, num_hidden_layers=2, attn_layer_period=2,
                             attn_layer_offset=1, expert_layer_period=100, expert_layer_offset=99, num_experts=1,
                             mamba_d_state=8, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=8, **attn)
    elif family == "mamba2":
        cfg = tf.Mamba2Config(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=2,
                              num_heads=ssm_heads, head_dim=16, n_groups=1, state_size=16, chunk_size=32)
    else:
        raise ExpspanError(f"unknown model family {family!r}", hint=f"one of {', '.join(FAMILIES)}")
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


def tiny_model(family: str, seed: int = 0, **kwargs: Any) -> tf.PreTrainedModel:
    """A random-init causal LM of `family` (deterministic for a seed)."""
    import torch

    torch.manual_seed(seed)
    return tf.AutoModelForCausalLM.from_config(tiny_config(family, **kwargs))


# `tiny-recall-hybrid`: the shape benchmarks/learnability found to learn in-context recall in minutes of CPU with the
# pre-training curriculum; a second attention layer gives the copy its two steps (find the match, read what follows).
RECALL_SHAPE: dict[str, Any] = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                                    attn_layer_indices=[1, 2], mamba_n_heads=8, tie_word_embeddings=True)


def tiny_hybrid_config(vocab_size: int, context: int = 256, **overrides: Any) -> tf.PretrainedConfig:
    """The `tiny-hybrid` preset: a ~5M-parameter Bamba (Mamba-2 + one GQA attention layer of four, with partial RoPE
    on half of each head like the paper's Mamba-2-Hybrid). `context` is recorded as its pre-training context; sized
    to pre-train at 256 and fine-tune at 2048 tokens in minutes on a 2-core CPU."""
    cfg = tf.BambaConfig(vocab_size=vocab_size, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         attn_layer_indices=[2], num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=context, mamba_n_heads=16, mamba_d_head=32, mamba_n_groups=1,
                         mamba_d_state=32, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=64,
                         tie_word_embeddings=False, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg
