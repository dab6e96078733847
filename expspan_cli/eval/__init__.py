"""Evaluation: PG-19 perplexity by context length, RULER (own offline generators), lm-eval harness bridge."""
