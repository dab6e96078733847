"""Throughput of `expspan prepare` against bare `tokenizers` on the same text, same tokenizer, in one run.

The bare baseline is the best case for the Rust library: every text already in memory, one `encode_batch_fast`
call, ids read out. `prepare` is timed end to end: reading files, tokenizing in batches, packing, writing both
Arrow views and the manifest. The ratio of the two rates is the figure (target: at least 0.6).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from expspan_cli.data.build import prepare
from expspan_cli.data.sources import local_text
from expspan_cli.data.synthetic import SyntheticSpec, recall_document
from expspan_cli.data.tokenizer import train_bpe


def write_corpus(root: Path, megabytes: float, seed: int = 0) -> list[Path]:
    """About `megabytes` of synthetic documents as .txt files (one document each) under root/train/."""
    spec = SyntheticSpec(seed=seed)
    (root / "train").mkdir(parents=True, exist_ok=True)
    files, size, i = [], 0, 0
    while size < megabytes * 1e6:
        path = root / "train" / f"{i:06d}.txt"
        text = recall_document(spec, "train", i)["text"]
        path.write_text(text, encoding="utf-8")
        files.append(path)
        size += len(text.encode())
        i += 1
    return files


def _timed(fn: Callable[[], int], repeats: int) -> tuple[int, list[float]]:
    times, tokens = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = fn()
        times.append(time.perf_counter() - start)
    return tokens, times


def bench_prepare(source: Path | None = None, megabytes: float = 10.0, tokenizer: str | None = None,
                  bpe_vocab: int = 8192, seq_len: int = 2048, num_procs: tuple[int, ...] = (1, 2),
                  repeats: int = 3, batch_docs: int = 64) -> list[dict[str, Any]]:
    """Rows of {case, tokens, seconds (median), tokens_per_s, ratio_vs_bare}; the first row is the baseline.

    source: a folder of .txt/.jsonl/.parquet (split `train`); by default ~`megabytes` of synthetic text is written.
    tokenizer: a local fast tokenizer folder; by default a byte-level BPE of `bpe_vocab` is trained on the corpus
    (not timed), so the comparison needs no download.
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tokenizer_name = tokenizer or f"bpe:{bpe_vocab} trained on the corpus"
    with tempfile.TemporaryDirectory(prefix="expspan-bench-prepare-") as tmp_name:
        tmp = Path(tmp_name)
        if source is None:
            source = tmp / "corpus"
            write_corpus(source, megabytes)
        corpus = local_text(source, ["train"], warn=lambda _: None)
        texts = [d["text"] for d in corpus.splits["train"].read()]
        if tokenizer is None:
            tokenizer = str(tmp / "tokenizer")
            train_bpe(bpe_vocab, iter(texts)).save_pretrained(tokenizer)
        json_path = Path(tokenizer) / "tokenizer.json"
        bare = Tokenizer.from_file(str(json_path)) if json_path.exists() else \
            AutoTokenizer.from_pretrained(tokenizer).backend_tokenizer

        def run_bare() -> int:
            return sum(len(e.ids) for e in bare.encode_batch_fast(texts, add_special_tokens=False))

        def run_prepare(num_proc: int, docs: list[str], out: Path) -> Callable[[], int]:
            def go() -> int:
                result = prepare(local_text(source, ["train"], warn=lambda _: None), tokenizer=tokenizer,
                                 seq_len=seq_len, out=out, pack=["train"], docs=docs, num_proc=num_proc,
                                 batch_docs=batch_docs, force=True)
                return result.manifest["splits"]["train"]["tokens"]
            return go

        run_bare()  # warm the Rust thread pool and the page cache
        cases: list[tuple[str, Callable[[], int]]] = [("bare tokenizers encode_batch_fast, all texts in memory",
                                                        run_bare)]
        for n in num_procs:
            cases.append((f"expspan prepare text, packed view, num_proc={n}", run_prepare(n, [], tmp / f"p{n}")))
        cases.append(("expspan prepare text, packed + docs views, num_proc=1",
                      run_prepare(1, ["train"], tmp / "pd")))
        rows: list[dict[str, Any]] = []
        for name, fn in cases:
            tokens, times = _timed(fn, repeats)
            seconds = statistics.median(times)
            rows.append({"case": name, "tokens": tokens, "seconds": round(seconds, 4), "all_seconds": times,
                         "tokens_per_s": round(tokens / seconds), "bytes": sum(len(t.encode()) for t in texts),
                         "documents": len(texts), "tokenizer": tokenizer_name,
                         "seq_len": seq_len})
        for row in rows:
            row["ratio_vs_bare"] = round(row["tokens_per_s"] / rows[0]["tokens_per_s"], 3)
            if row["tokens"] != rows[0]["tokens"]:  # both must have tokenized exactly the same text
                raise RuntimeError(f"{row['case']}: {row['tokens']} tokens, bare tokenizers {rows[0]['tokens']}")
        return rows
