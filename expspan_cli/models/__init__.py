"""Model zoo: tiny random-init hybrids of every supported transformers family, hub ids and local paths."""

from expspan_cli.models.zoo import PRESETS, load_model, model_config

__all__ = ["PRESETS", "load_model", "model_config"]
