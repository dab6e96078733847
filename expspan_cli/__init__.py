"""expspan: long-context fine-tuning of hybrid state-space models (SE-Attn, HyLoRA and baselines)."""

__version__ = "0.1.0"
