"""`expspan prepare`: a corpus -> tokenizer/, packed/<split>/, docs/<split>/ and manifest.json, built in a
temporary sibling directory and renamed into place only when complete."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from expspan_cli.data.encode import batched, encode_batches
from expspan_cli.data.kinds import DATA_KINDS
from expspan_cli.data.sources import Corpus, Doc, Split
from expspan_cli.data.tokenizer import bpe_spec, load_tokenizer, pad_id, tokenizer_hash, train_bpe
from expspan_cli.data.views import ArrowView, Packer, docs_table, packed_table
from expspan_cli.errors import ExpspanError, require
from expspan_cli.progress import console, rate_progress
from expspan_cli.runs import atomic_dir, provenance, read_manifest, write_manifest


BPE_MAX_BYTES = 200_000_000  # a bpe:N tokenizer learns from at most this much training text (tiny models)
TRAIN = "train"


@dataclass
class PrepareResult:
    path: Path
    manifest: dict[str, Any]
    built: bool  # False when the output already held exactly this preparation (a no-op)


def default_views(splits: list[str], pack: list[str] | None, docs: list[str] | None) -> tuple[list[str], list[str]]:
    """Packed blocks for train, whole documents for the other splits, unless the caller says otherwise."""
    pack = [s for s in splits if s == TRAIN] if pack is None else pack
    docs = [s for s in splits if s not in pack] if docs is None else docs
    for s in pack + docs:
        require(s in splits, f"view asked for split {s!r}, which is not being prepared",
                hint=f"prepared splits: {', '.join(splits)}")
    require(bool(pack or docs), "nothing to write: no split has a view")
    return pack, docs


def _existing(out: Path, request: dict[str, Any], force: bool) -> dict[str, Any] | None:
    """The manifest of an identical earlier preparation (a no-op); None when there is nothing in the way."""
    if not out.exists():
        return None
    manifest = read_manifest(out)
    if manifest is None or manifest.get("kind") not in DATA_KINDS:
        if out.is_dir() and not any(out.iterdir()):
            return None
        raise ExpspanError(f"{out} exists and is not prepared data", hint="choose another --out (--force only "
                           "replaces an earlier `expspan prepare` output)")
    if force:
        return None
    old = manifest.get("request", {})
    if old == request:
        return manifest
    differ = sorted(k for k in set(old) | set(request) if old.get(k) != request.get(k))
    raise ExpspanError(f"{out} holds data prepared with other inputs or options ({', '.join(differ)} differ)",
                       hint="pass --force to rebuild it, or choose another --out")


def _training_texts(split: Split, max_bytes: int, stats: dict[str, int]) -> Iterator[str]:
    for doc in split.read():
        if stats["bytes"] >= max_bytes:
            return
        stats["documents"] += 1
        stats["bytes"] += len(doc["text"])
        yield doc["text"]


def _tokenizer(spec: str, corpus: Corpus, dest: Path) -> tuple[Any, dict[str, Any]]:
    """Train or load the tokenizer, save it into the output, and reload that saved copy (what later stages see)."""
    from transformers import AutoTokenizer

    bpe = bpe_spec(spec)
    info: dict[str, Any] = {"name": spec, "path": "tokenizer"}
    if bpe is not None:
        require(TRAIN in corpus.splits, f"{spec} is trained on the train split, which is not being prepared",
                hint="add train to --splits, or pass --tokenizer DIR/tokenizer of the prepared training data")
        stats = {"documents": 0, "bytes": 0}
        with console.status(f"training {spec} on {TRAIN}"):
            tok = train_bpe(bpe.vocab, _training_texts(corpus.splits[TRAIN], BPE_MAX_BYTES, stats), bpe.compact)
        info["trained_on"] = {"split": TRAIN, **stats}
    else:
        tok = load_tokenizer(spec)
    tok.save_pretrained(str(dest))
    tok = AutoTokenizer.from_pretrained(str(dest))
    info.update(hash=tokenizer_hash(tok), vocab_size=len(tok), cls=type(tok).__name__)
    return tok, info


def _non_empty(docs: Iterator[Doc], counts: dict[str, int]) -> Iterator[Doc]:
    for doc in docs:
        if doc["text"]:
            yield doc
        else:
            counts["empty"] += 1


def _distance_summary(distances: list[int]) -> dict[str, Any]:
    """How far back the recalls reach, in tokens: against a 256-token pre-training context and 512/1024 windows."""
    d = np.asarray(distances)
    return {"recalls": len(d), **{f"p{q}": int(np.percentile(d, q)) for q in (0, 10, 50, 90, 100)},
            **{f"beyond_{n}": round(float((d > n).mean()), 3) for n in (256, 512, 1024)}}


def _prepare_split(split: Split, tok: Any, tok_dir: Path, *, root: Path, staging: Path, seq_len: int, pack: bool,
                   docs: bool, num_proc: int, batch_docs: int, progress: Any,
                   annotate: Callable[[list[Doc], Any], list[int]] | None) -> tuple[dict, dict, dict]:
    counts = {"empty": 0}
    packer = Packer(seq_len, tok.eos_token_id, pad_id(tok)) if pack else None
    packed_view = ArrowView(staging / f"packed-{split.name}.arrow")
    docs_view = ArrowView(staging / f"docs-{split.name}.arrow")
    n_docs = n_tokens = n_chars = 0
    distances: list[int] = []
    task = progress.add_task(f"{split.name:>10}", total=split.documents, tokens=0)
    start = time.perf_counter()
    for batch, ids in encode_batches(batched(_non_empty(split.read(), counts), batch_docs), tok, tok_dir, num_proc):
        n_docs += len(batch)
        n_tokens += sum(len(a) for a in ids)
        n_chars += sum(len(d["text"]) for d in batch)
        if packer is not None:
            packed_view.append(packed_table(packer.add(ids)))
        if docs:
            if annotate is not None:
                distances += annotate(batch, tok)
            docs_view.append(docs_table(batch, ids))
        progress.update(task, advance=len(batch), tokens=n_tokens)
    seconds = time.perf_counter() - start
    progress.update(task, total=n_docs)
    require(n_docs > 0, f"split {split.name!r} has no readable documents",
            hint="check the source: every file was empty, skipped or filtered out")
    stats = {"documents": n_docs, "tokens": n_tokens, "characters": n_chars, "empty_documents": counts["empty"],
             "skipped": dict(split.skipped), "seconds": round(seconds, 3),
             "tokens_per_s": round(n_tokens / seconds) if seconds else None}
    packed_info: dict[str, Any] = {}
    docs_info: dict[str, Any] = {}
    if packer is not None:
        last, padding = packer.finish()
        if len(last):
            packed_view.append(packed_table(last))
        rel = f"packed/{split.name}"
        blocks = packed_view.save(root / rel)
        packed_info = {"path": rel, "blocks": blocks, "tokens": n_tokens + n_docs, "eos": n_docs,
                       "padding": padding, "pad_token_id": pad_id(tok)}
    if docs:
        rel = f"docs/{split.name}"
        docs_info = {"path": rel, "documents": docs_view.save(root / rel), "tokens": n_tokens}
        if distances:
            docs_info["recall_distance_tokens"] = _distance_summary(distances)
    return stats, packed_info, docs_info


def prepare(corpus: Corpus, *, tokenizer: str, seq_len: int, out: Path, pack: list[str] | None = None,
            docs: list[str] | None = None, num_proc: int = 1, batch_docs: int = 64, force: bool = False,
            command: str | None = None) -> PrepareResult:
    """Tokenize every split of corpus with one tokenizer and write the packed and per-document views to out.

    An output that already holds the same preparation (same inputs, fingerprint, tokenizer and options) is left
    as it is; a different one is replaced only with force.
    """
    require(seq_len >= 2, f"--seq-len must be at least 2 (got {seq_len})",
            hint="a packed block needs an input token and a next token to predict")
    require(num_proc >= 1, f"--num-proc must be at least 1 (got {num_proc})")
    require(batch_docs >= 1, f"--batch-docs must be at least 1 (got {batch_docs})")
    bpe_spec(tokenizer)
    splits = list(corpus.splits)
    pack, docs = default_views(splits, pack, docs)
    request = json.loads(json.dumps({"kind": corpus.kind, "source": corpus.source, "fingerprint": corpus.fingerprint,
                                     "tokenizer": tokenizer, "seq_len": seq_len, "splits": splits, "packed": pack,
                                     "docs": docs, "options": corpus.options}, default=str))
    out = Path(out)
    same = _existing(out, request, force)
    if same is not None:
        return PrepareResult(out, same, built=False)
    import datasets

    datasets.disable_progress_bars()  # ours show tokens/s; theirs would print a bar per saved shard
    start = time.perf_counter()
    with atomic_dir(out, force=True, kind="prepared") as tmp:
        staging = tmp / ".staging"
        tok, tok_info = _tokenizer(tokenizer, corpus, tmp / "tokenizer")
        split_stats: dict[str, Any] = {}
        views: dict[str, dict[str, Any]] = {"packed": {}, "docs": {}}
        with rate_progress("tok", "tokens", counts="docs") as progress:
            for name in splits:
                stats, packed_info, docs_info = _prepare_split(
                    corpus.splits[name], tok, tmp / "tokenizer", root=tmp, staging=staging, seq_len=seq_len,
                    pack=name in pack, docs=name in docs, num_proc=num_proc, batch_docs=batch_docs,
                    progress=progress, annotate=corpus.annotate)
                split_stats[name] = stats
                if packed_info:
                    views["packed"][name] = packed_info
                if docs_info:
                    views["docs"][name] = docs_info
        shutil.rmtree(staging, ignore_errors=True)
        wall = time.perf_counter() - start
        manifest = {"kind": corpus.kind, "source": corpus.source, "seq_len": seq_len, "tokenizer": tok_info,
                    "eos_token_id": tok.eos_token_id, "pad_token_id": pad_id(tok), "splits": split_stats,
                    "views": views, "options": corpus.options, "request": request,
                    "command": command or shlex.join(["expspan", *sys.argv[1:]]), "wall_time_s": round(wall, 3),
                    "provenance": provenance()}
        write_manifest(tmp, manifest)
    return PrepareResult(out, manifest, built=True)
