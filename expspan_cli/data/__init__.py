"""Prepared data: PG-19, a synthetic long-recall corpus and local text, tokenized into packed training blocks and
whole-document evaluation streams (see docs/data.md)."""

from expspan_cli.data.prepared import PreparedData, check_tokenizer, load_prepared

__all__ = ["PreparedData", "check_tokenizer", "load_prepared"]
