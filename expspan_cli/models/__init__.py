"""Model zoo: tiny random-init hybrids of every supported transformers family, hub ids and local paths."""
