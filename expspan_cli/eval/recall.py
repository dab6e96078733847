"""`recall` evaluation on the synthetic long-recall corpus: does the model produce a fact's value when it is asked
for it, by how far back the fact was stated?

Each document of a prepared synthetic docs split is read once (its first `length` tokens); for every query inside
that window, the value after "Answer:" counts as recalled when greedy (argmax) predictions reproduce all its tokens
given the true prefix. Accuracy is reported overall and per bucket of fact-to-query distance in tokens, which is
what separates a model that retrieves beyond its pre-training context or a sliding window from one that does not.
Perplexity barely sees this (value tokens are ~1% of the tokens).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from expspan_cli.errors import require
from expspan_cli.eval import defaults
from expspan_cli.eval.loading import prepare_model
from expspan_cli.eval.records import write_record
from expspan_cli.progress import rate_progress

EDGES = (256, 512, 1024)


def bucket_names(edges: tuple[int, ...] | list[int]) -> list[str]:
    bounds = [0, *edges]
    return [f"{lo}-{hi}" for lo, hi in zip(bounds, bounds[1:])] + [f">{bounds[-1]}"]


def _bucket(distance: int, edges: tuple[int, ...] | list[int]) -> str:
    names = bucket_names(edges)
    return next((names[i] for i, edge in enumerate(edges) if distance <= edge), names[-1])


def _value_span(tokenizer: Any, ids: list[int], start: int, value: str) -> int:
    """Number of tokens from `start` that spell the value (the first token also holds the space before it)."""
    for k in range(1, 8):
        if value in tokenizer.decode(ids[start:start + k]):
            return k
    return 0


@torch.no_grad()
def recall_accuracy(model: Any, tokenizer: Any, docs: Any, length: int, edges: tuple[int, ...] | list[int] = EDGES,
                    on_doc: Any = None) -> dict[str, Any]:
    device = next(model.parameters()).device
    hits: dict[str, list[int]] = {name: [] for name in bucket_names(edges)}
    for doc in docs:
        ids = list(doc["input_ids"][:length])
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[0]
        predicted = logits.argmax(-1).tolist()
        for r in doc.get("recalls") or []:
            start = r.get("answer_token")
            if start is None or start < 1:
                continue
            k = _value_span(tokenizer, ids, start, r["value"])
            if k == 0 or start + k > len(ids):
                continue  # the query lies beyond the window
            ok = predicted[start - 1:start + k - 1] == ids[start:start + k]
            hits[_bucket(r["distance_tokens"], edges)].append(int(ok))
        if on_doc is not None:
            on_doc(len(ids))
    counted = [h for v in hits.values() for h in v]
    return {"accuracy": 100.0 * sum(counted) / len(counted) if counted else None,
            "by_distance": {n: (100.0 * sum(v) / len(v) if v else None) for n, v in hits.items()},
            "counts": {n: len(v) for n, v in hits.items()}, "length": length}


def evaluate_recall(model: str, data: str | Path, lengths: list[int], out: str | Path, *, split: str = defaults.SPLIT,
                    max_docs: int | None = None, edges: list[int] | None = None, attn: str = "full",
                    attn_params: dict[str, Any] | None = None, adapter: str | None = None,
                    tokenizer: str | None = None, allow_extrapolation: bool = False, device: str | None = None,
                    quiet: bool = False) -> Path:
    """Recall accuracy by distance at each context length (one record)."""
    from expspan_cli.data import load_prepared

    start = time.perf_counter()
    prepared = load_prepared(data)
    docs = prepared.docs(split)
    require("recalls" in docs.column_names, f"{data} split {split!r} has no recall annotations",
            hint="recall evaluation needs data from `expspan prepare synthetic`")
    if max_docs is not None:
        docs = docs.select(range(min(max_docs, len(docs))))
    edges = tuple(edges or EDGES)
    net, tok, identity, attention = prepare_model(model, adapter, tokenizer, attn, attn_params or {}, lengths,
                                                  allow_extrapolation, device, prepared=prepared)
    results = {}
    with rate_progress("tok", field="tokens", disable=quiet) as bar:
        for length in lengths:
            job = bar.add_task(f"recall {length}", total=len(docs), tokens=0)

            def advance(n: int, job: Any = job) -> None:
                bar.update(job, advance=1, tokens=bar.tasks[job].fields["tokens"] + n)
            results[str(length)] = recall_accuracy(net, tok, docs, length, edges, advance)
    metrics = {"accuracy": {n: r["accuracy"] for n, r in results.items()}, "by_length": results}
    config = {"data": str(data), "split": split, "lengths": lengths, "max_docs": max_docs, "edges": list(edges),
              "attn": attn, "attn_params": attn_params or {}, "allow_extrapolation": allow_extrapolation,
              "data_tokenizer_hash": prepared.tokenizer_hash}
    return write_record(out, "recall", metrics, config, identity, adapter, attention, time.perf_counter() - start)
