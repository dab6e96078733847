"""Training examples from prepared data (its packed blocks, cut to the training length) and their collation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from expspan_cli.errors import require


def training_blocks(data: str | Path, split: str, seq_len: int | None) -> tuple[Any, Any, int]:
    """(blocks dataset, prepared data, training length); seq_len None trains at the prepared block length."""
    from expspan_cli.data import load_prepared

    prepared = load_prepared(data)
    blocks = prepared.packed(split, seq_len, drop_padded=True)
    require(len(blocks) > 0, f"{data}: packed split {split!r} is empty")
    return blocks, prepared, seq_len or prepared.seq_len


def tokenizer_dir(prepared: Any) -> Path:
    """Where `expspan prepare` saved the tokenizer every later stage must use."""
    return Path(prepared.path) / prepared.manifest["tokenizer"]["path"]


def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Causal LM batch: every block is full length and padded blocks were dropped, so every label counts. A
    curriculum's blocks arrive already cut into rows; those rows are the batch."""
    ids = torch.stack([torch.as_tensor(row["input_ids"], dtype=torch.long) for row in rows]).flatten(0, -2)
    return {"input_ids": ids, "labels": ids.clone()}
