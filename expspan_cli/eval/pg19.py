"""`expspan eval pg19`: perplexity of a prepared evaluation split at each context length, one record per run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from expspan_cli.eval import defaults
from expspan_cli.eval.loading import prepare_model
from expspan_cli.eval.perplexity import LONGLORA_STEP, perplexity, windows
from expspan_cli.eval.records import write_record
from expspan_cli.progress import rate_progress


def eval_stream(prepared: Any, split: str, max_tokens: int | None = None) -> torch.Tensor:
    """The split's documents joined with EOS into one stream (LongLoRA scores its split as one stream too)."""
    eos = prepared.manifest["eos_token_id"]
    parts, total = [], 0
    for row in prepared.docs(split)["input_ids"]:
        parts.append(torch.tensor(list(row) + [eos], dtype=torch.long))
        total += len(parts[-1])
        if max_tokens is not None and total >= max_tokens:
            break
    stream = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    return stream[:max_tokens] if max_tokens is not None else stream


def evaluate_pg19(model: str, data: str | Path, lengths: list[int], out: str | Path, *, split: str = defaults.SPLIT,
                  protocol: str = defaults.PG19_PROTOCOL, stride: int | None = None, attn: str = "full",
                  attn_params: dict[str, Any] | None = None, adapter: str | None = None,
                  tokenizer: str | None = None, batch_size: int = defaults.BATCH_SIZE,
                  max_tokens: int | None = None, allow_extrapolation: bool = False, device: str | None = None,
                  quiet: bool = False) -> Path:
    from expspan_cli.data import load_prepared

    start = time.perf_counter()
    prepared = load_prepared(data)
    stream = eval_stream(prepared, split, max_tokens)  # read before the model loads: damaged data fails at once
    net, tok, identity, attention = prepare_model(model, adapter, tokenizer, attn, attn_params or {}, lengths,
                                                  allow_extrapolation, device, prepared=prepared)
    results = {}
    with rate_progress("tok", field="tokens", disable=quiet) as bar:
        for length in lengths:
            total = len(windows(len(stream), length, protocol, stride))
            job = bar.add_task(f"pg19 {length}", total=total, tokens=0)

            def advance(n_windows: int, n_tokens: int, job: Any = job) -> None:
                bar.update(job, advance=n_windows, tokens=bar.tasks[job].fields["tokens"] + n_tokens)
            results[str(length)] = perplexity(net, stream, length, protocol, stride, batch_size, advance)
    metrics = {"ppl": {n: r["ppl"] for n, r in results.items()}, "by_length": results, "protocol": protocol}
    config = {"data": str(data), "split": split, "lengths": lengths, "protocol": protocol,
              "stride": stride if protocol == "strided" else LONGLORA_STEP,  # None: half of each length
              "batch_size": batch_size,
              "max_tokens": max_tokens, "allow_extrapolation": allow_extrapolation, "attn": attn,
              "attn_params": attn_params or {}, "data_tokenizer_hash": prepared.tokenizer_hash}
    return write_record(out, "pg19", metrics, config, identity, adapter, attention, time.perf_counter() - start)
