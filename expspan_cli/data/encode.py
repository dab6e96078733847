"""Batched, parallel tokenization whose memory is bounded by the few batches in flight, not by the corpus."""

from __future__ import annotations

import collections
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from expspan_cli.data.sources import Doc
from expspan_cli.data.tokenizer import make_encoder

BATCH_CHARS = 4_000_000  # a batch closes at this much text even before `batch_docs` (PG-19 books are ~400 KB)

_worker_encode: Callable[[list[str]], list[np.ndarray]] | None = None


def batched(docs: Iterable[Doc], batch_docs: int, batch_chars: int = BATCH_CHARS) -> Iterator[list[Doc]]:
    batch: list[Doc] = []
    chars = 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc["text"])
        if len(batch) >= batch_docs or chars >= batch_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _init_worker(backend_json: str | None, tokenizer_dir: str) -> None:
    # num_proc processes already share the cores; the Rust thread pool inside each would oversubscribe them.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    global _worker_encode
    if backend_json is not None:  # the parent's own Rust tokenizer, rebuilt without importing transformers
        from tokenizers import Tokenizer

        _worker_encode = make_encoder(Tokenizer.from_str(backend_json))
    else:
        from transformers import AutoTokenizer

        _worker_encode = make_encoder(AutoTokenizer.from_pretrained(tokenizer_dir))


def _encode_in_worker(texts: list[str]) -> list[np.ndarray]:
    assert _worker_encode is not None
    return _worker_encode(texts)


def encode_batches(batches: Iterable[list[Doc]], tokenizer: Any, tokenizer_dir: Path,
                   num_proc: int) -> Iterator[tuple[list[Doc], list[np.ndarray]]]:
    """(documents, their token ids) per batch, in input order. num_proc 1 tokenizes here (a fast tokenizer still
    uses all cores through its Rust thread pool); more starts that many worker processes holding the same
    tokenizer, with at most 2 batches per worker in flight."""
    if num_proc <= 1:
        encode = make_encoder(tokenizer)
        for batch in batches:
            yield batch, encode([d["text"] for d in batch])
        return
    # spawn, not fork: forking after the Rust tokenizer has started its threads can deadlock the children.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    with ProcessPoolExecutor(num_proc, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(backend.to_str() if backend else None, str(tokenizer_dir))) as pool:
        pending: collections.deque = collections.deque()
        for batch in batches:
            pending.append((batch, pool.submit(_encode_in_worker, [d["text"] for d in batch])))
            if len(pending) >= 2 * num_proc:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
