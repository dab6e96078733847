"""`expspan prepare pg19|text|synthetic`: tokenize a corpus into packed training blocks and per-document streams."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer
from rich.table import Table

from expspan_cli.data.synthetic import ANSWERS, DISTRIBUTIONS, SyntheticSpec

MAX_SEQ_LEN = 1 << 22  # 4M tokens a block: past the longest context any model here handles, and a bound on memory

_SYN = SyntheticSpec()

app = typer.Typer(rich_markup_mode=None,
                  help="Tokenize a corpus into packed training blocks and whole-document evaluation streams.",
                  no_args_is_help=True)

_TOKENIZER_HELP = ("A transformers id or local path (the model's own tokenizer), bpe:N to train a byte-level BPE, or "
                   "bpe:N:compact for one over the characters the text uses, digits split (tiny models).")
_OUT = typer.Option(..., "--out", help="Output folder (written atomically).")
_SEQ_LEN = typer.Option(2048, "--seq-len", min=2, max=MAX_SEQ_LEN, help="Tokens per packed training block.")
_NUM_PROC = typer.Option(1, "--num-proc", min=1, help="Tokenizer processes (1: in-process, still multi-threaded).")
_FORCE = typer.Option(False, "--force", help="Rebuild even if --out already holds this preparation.")
_PACKED = typer.Option(None, "--packed", help="Splits to pack into blocks (default: train).")
_DOCS = typer.Option(None, "--docs", help="Splits to keep as whole documents (default: all but the packed ones).")
_BATCH = typer.Option(64, "--batch-docs", min=1, help="Documents per tokenizer batch (batches also close at 4 MB).")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def _run(kind: str, source: Path | None, splits: str | None, options: dict, *, tokenizer: str, seq_len: int,
         out: Path, packed: str | None, docs: str | None, num_proc: int, batch_docs: int, force: bool) -> None:
    """Read the corpus through its kind (data/kinds.py: the registry `reproduce` uses too), then prepare it."""
    from expspan_cli.data.build import prepare
    from expspan_cli.data.kinds import DATA_KINDS
    from expspan_cli.progress import console

    corpus = DATA_KINDS[kind].read(None if source is None else str(source), _names(splits), options)
    result = prepare(corpus, tokenizer=tokenizer, seq_len=seq_len, out=out, pack=_names(packed),
                     docs=_names(docs), num_proc=num_proc, batch_docs=batch_docs, force=force)
    if not result.built:
        console.print(f"{out} already holds this preparation (same source, tokenizer and options): nothing to do "
                      "(--force rebuilds)")
        return
    m = result.manifest
    table = Table(title=f"{m['kind']} -> {out}  (tokenizer {m['tokenizer']['name']}, hash {m['tokenizer']['hash']}, "
                        f"seq_len {m['seq_len']})")
    for col in ("split", "documents", "tokens", "tok/s", "packed blocks", "skipped"):
        table.add_column(col, justify="right")
    for name, s in m["splits"].items():
        blocks = m["views"]["packed"].get(name, {}).get("blocks", "-")
        table.add_row(name, f"{s['documents']:,}", f"{s['tokens']:,}", f"{s['tokens_per_s'] or 0:,}", str(blocks),
                      str(len(s["skipped"])))
    console.print(table)


@app.command("pg19")
def pg19(
    out: Path = _OUT,
    tokenizer: str = typer.Option(..., "--tokenizer", help=_TOKENIZER_HELP),
    source: Path = typer.Option(None, "--source", help="A local PG-19 copy (train/ validation/ test/ of .txt "
                                "books, or parquet files of the hub schema); default: the hub's emozilla/pg19."),
    splits: str = typer.Option("train,validation,test", "--splits", help="Comma-separated PG-19 splits."),
    max_books: int = typer.Option(None, "--max-books", min=1, help="At most this many books per split."),
    seq_len: int = _SEQ_LEN, num_proc: int = _NUM_PROC, force: bool = _FORCE, packed: str = _PACKED,
    docs: str = _DOCS, batch_docs: int = _BATCH,
) -> None:
    """PG-19 books, from the hub or a local copy."""
    _run("pg19", source, splits, {"max_books": max_books}, tokenizer=tokenizer, seq_len=seq_len, out=out,
         packed=packed, docs=docs, num_proc=num_proc,
         batch_docs=batch_docs, force=force)


@app.command("text")
def text(
    source: Path = typer.Option(..., "--source", help="A .txt/.jsonl/.parquet file or a folder of them "
                                "(subfolders named for splits, or one split `train`)."),
    out: Path = _OUT,
    tokenizer: str = typer.Option(..., "--tokenizer", help=_TOKENIZER_HELP),
    splits: str = typer.Option("train", "--splits", help="Comma-separated splits."),
    max_docs: int = typer.Option(None, "--max-docs", min=1, help="At most this many documents per split."),
    seq_len: int = _SEQ_LEN, num_proc: int = _NUM_PROC, force: bool = _FORCE, packed: str = _PACKED,
    docs: str = _DOCS, batch_docs: int = _BATCH,
) -> None:
    """Any local corpus: .txt (a document a file), .jsonl (field `text`), .parquet (column `text`)."""
    _run("text", source, splits, {"max_docs": max_docs}, tokenizer=tokenizer, seq_len=seq_len, out=out,
         packed=packed, docs=docs, num_proc=num_proc, batch_docs=batch_docs, force=force)


@app.command("synthetic")
def synthetic(
    out: Path = _OUT,
    tokenizer: str = typer.Option("bpe:2048", "--tokenizer", help=_TOKENIZER_HELP),
    seed: int = typer.Option(0, "--seed", min=0),
    train_docs: int = typer.Option(_SYN.documents["train"], "--train-docs", min=1, help="Documents in train."),
    eval_docs: int = typer.Option(_SYN.documents["test"], "--eval-docs", min=1, help="Documents in validation and in test each."),
    haystack_docs: int = typer.Option(_SYN.documents["haystack"], "--haystack-docs", min=0, help="Fact-free essays for RULER-style haystacks."),
    doc_words: int = typer.Option(_SYN.doc_words, "--doc-words", min=1, help="Words of filler per document."),
    facts: int = typer.Option(_SYN.facts, "--facts", min=0, help="Key-value facts stated and later queried per document."),
    distance: str = typer.Option("{}:{}".format(*_SYN.distance), "--distance", help="MIN:MAX words between a fact and its query."),
    distribution: Literal[DISTRIBUTIONS] = typer.Option(_SYN.distribution, "--distribution",
                                                        help="How fact-to-query distances are drawn."),
    haystack_words: int = typer.Option(_SYN.haystack_words, "--haystack-words", min=1, help="Words per haystack essay."),
    answer: Literal[ANSWERS] = typer.Option(_SYN.answer, "--answer", help="value ('Answer: 4821.') | restate ('Answer: the pin "
                               "of Dara Vell is 4821.', the value after the same words as where it was stated)"),
    ruler_share: float = typer.Option(_SYN.ruler_share, "--ruler-share", min=0.0, max=1.0, help="Share of documents "
                                      "written as RULER niah_single samples (teaches a model RULER's format)."),
    seq_len: int = _SEQ_LEN, num_proc: int = _NUM_PROC, force: bool = _FORCE, packed: str = _PACKED,
    docs: str = _DOCS, batch_docs: int = _BATCH,
) -> None:
    """The embedded default's long-recall corpus, generated offline from a seed (see docs/data.md)."""
    options = dict(seed=seed, documents={"train": train_docs, "validation": eval_docs, "test": eval_docs,
                                         "haystack": haystack_docs},
                   doc_words=doc_words, facts=facts, distance=distance, distribution=distribution,
                   haystack_words=haystack_words, answer=answer, ruler_share=ruler_share)
    _run("synthetic", None, None, options, tokenizer=tokenizer, seq_len=seq_len, out=out, packed=packed, docs=docs,
         num_proc=num_proc, batch_docs=batch_docs, force=force)
