"""Retrieval diagnostics for SE-Attn on RULER: for every needle, which later chunks retrieved the memory block that
holds it, per layer and head, so a user can see why a needle was found or missed."""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

import torch


def needle_tokens(tokenizer: Any, text: str, char_offsets: list[int]) -> list[int]:
    """Token index of the token that covers (or follows) each char offset; needs a fast tokenizer's offsets."""
    spans = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    ends = [end for _, end in spans]
    return [min(bisect.bisect_right(ends, off), len(ends) - 1) for off in char_offsets]


def block_hits(records: list[dict], positions: list[int]) -> list[dict[str, Any]]:
    """Per (needle, layer, head): how many chunks after the needle's block could retrieve it, and how many did. In
    causal mode (each query retrieves for itself) the rankers are queries, each placed at its chunk's start."""
    rows = []
    for rec in records:
        idx = rec["indices"]
        if idx is None or idx.dim() != 4 or idx.numel() == 0:
            continue
        block = rec["block_size"]
        starts = rec["chunk_starts"] if "chunk_starts" in rec else \
            rec["positions"] // rec["chunk_size"] * rec["chunk_size"]
        starts = starts.to(idx.device)
        for n, pos in enumerate(positions):
            nb = pos // block
            later = starts >= (nb + 1) * block  # chunks whose memory can hold the needle's block
            later &= ~((starts <= pos) & (pos < starts + rec["chunk_size"]))  # a chunk sees its own needle directly
            if not bool(later.any()):
                continue
            hit = (idx[0][:, later] == nb).any(-1)  # [H, chunks]
            for head in range(hit.shape[0]):
                rows.append({"needle": n, "layer": rec["layer"], "head": head, "chunks": int(later.sum()),
                             "hits": int(hit[head].sum())})
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Hit rates by (length, depth) and by (layer, head): the tables the report plots."""
    by_depth: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    by_head: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        for table, key in ((by_depth, (r["task"], r["length"], r["depth"])), (by_head, (r["layer"], r["head"]))):
            table[key][0] += r["hits"]
            table[key][1] += r["chunks"]
    return {
        "by_depth": [{"task": t, "length": length, "depth": d, "hit_rate": h / c, "chunks": c}
                     for (t, length, d), (h, c) in sorted(by_depth.items())],
        "by_head": [{"layer": layer, "head": head, "hit_rate": h / c, "chunks": c}
                    for (layer, head), (h, c) in sorted(by_head.items())],
    }


@torch.no_grad()
def inspect_sample(model: Any, tokenizer: Any, sample: dict[str, Any]) -> list[dict[str, Any]]:
    """One prefill of the sample's prompt with retrieval recording on; rows tagged with each needle's depth."""
    from expspan_cli.attention import record_retrievals

    text = sample["input"] + sample["answer_prefix"]
    positions = needle_tokens(tokenizer, text, [n["offset"] for n in sample["needles"]])
    ids = tokenizer(text, return_tensors="pt")["input_ids"].to(next(model.parameters()).device)
    with record_retrievals(model) as records:
        model(input_ids=ids, use_cache=False)
    rows = block_hits(records, positions)
    for r in rows:
        r["depth"] = sample["needles"][r["needle"]]["depth"]
    return rows
