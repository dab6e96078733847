"""Where documents come from: PG-19 (the hub's parquet copy or a local copy) and local text corpora.

Every reader is lazy, one file (or one small parquet batch) at a time, so memory is bounded by a document, never
by the corpus (PG-19 train is ~11 GB of text). Policy for bytes that are not UTF-8: the document is skipped with a
warning naming its file (and line, for jsonl), and the skip is recorded in the manifest; the run goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from expspan_cli.errors import ExpspanError, require

Doc = dict[str, Any]  # {"title": str, "text": str, ...extra columns a corpus carries into the docs view}

PG19_SPLITS = ("train", "validation", "test")
PG19_HUB = "emozilla/pg19"
TEXT_SUFFIXES = (".txt", ".jsonl", ".parquet")
_PARQUET_BATCH = 16  # rows per read: a PG-19 row is a whole book (~400 KB)


@dataclass
class Split:
    """One split of a corpus: `read()` gives a fresh lazy iterator of documents each time it is called."""

    name: str
    read: Callable[[], Iterator[Doc]]
    documents: int | None = None  # known in advance when the files say so (progress totals)
    skipped: dict[str, str] = field(default_factory=dict)  # file (or file:line) -> why


@dataclass
class Corpus:
    kind: str
    source: str
    fingerprint: str  # changes when the input changes: a rerun with an equal fingerprint is a no-op
    splits: dict[str, Split]
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific settings recorded in the manifest
    # Adds tokenizer-dependent fields to documents bound for the docs view; returns recall distances in tokens.
    annotate: Callable[[list[Doc], Any], list[int]] | None = None


Warn = Callable[[str], None]


def _fingerprint(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(root) if f != root else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _limited(read: Callable[[], Iterator[Doc]], max_docs: int | None) -> Callable[[], Iterator[Doc]]:
    require(max_docs is None or max_docs >= 1, f"the document limit must be at least 1, got {max_docs}")
    return read if max_docs is None else (lambda: itertools.islice(read(), max_docs))


def _read_txt(path: Path, split: Split, warn: Warn) -> Iterator[Doc]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        _skip(split, str(path), f"not UTF-8 (byte at offset {err.start})", warn)
        return
    except OSError as err:
        _skip(split, str(path), f"cannot be read ({err.strerror})", warn)
        return
    yield {"title": path.stem, "text": text}


def _read_jsonl(path: Path, split: Split, warn: Warn) -> Iterator[Doc]:
    try:
        f = path.open("rb")
    except OSError as err:
        _skip(split, str(path), f"cannot be read ({err.strerror})", warn)
        return
    with f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                _skip(split, where, f"not UTF-8 (byte at offset {err.start})", warn)
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ExpspanError(f"{where}: not valid JSON ({err.msg})", hint="jsonl wants one JSON object a line")
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ExpspanError(f"{where}: no string field 'text'", hint="each jsonl line needs {\"text\": ...}")
            yield {"title": str(obj.get("title") or f"{path.stem}:{lineno}"), "text": obj["text"]}


def _parquet_file(path: Path) -> Any:
    """The open parquet file, or None when it is damaged or unreadable (the reader then skips it, named)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError):
        return None


def _parquet_columns(path: Path) -> tuple[str, str | None] | None:
    pf = _parquet_file(path)
    if pf is None:
        return None
    names = pf.schema_arrow.names
    require("text" in names, f"{path}: no 'text' column (has {', '.join(names)})",
            hint="parquet sources need a 'text' column (PG-19's hub schema has one)")
    title = next((c for c in ("short_book_title", "title") if c in names), None)
    return "text", title


def _read_parquet(path: Path, split: Split, warn: Warn) -> Iterator[Doc]:
    import pyarrow as pa

    columns = _parquet_columns(path)
    if columns is None:
        _skip(split, str(path), "not a readable parquet file (damaged or truncated)", warn)
        return
    text_col, title_col = columns
    batches = _parquet_file(path).iter_batches(batch_size=_PARQUET_BATCH,
                                               columns=[c for c in (text_col, title_col) if c])
    row = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as err:
            _skip(split, f"{path}:{row + 1}-", f"damaged from here ({type(err).__name__})", warn)
            return
        texts = batch.column(text_col).to_pylist()
        titles = batch.column(title_col).to_pylist() if title_col else [None] * len(texts)
        for text, title in zip(texts, titles):
            row += 1
            if text is None:
                _skip(split, f"{path}:{row}", "null text", warn)
                continue
            yield {"title": str(title or f"{path.stem}:{row}"), "text": text}


_READERS = {".txt": _read_txt, ".jsonl": _read_jsonl, ".parquet": _read_parquet}


def _skip(split: Split, where: str, why: str, warn: Warn) -> None:
    if where not in split.skipped:  # a split is read twice when a BPE is trained on it: warn once
        split.skipped[where] = why
        warn(f"skipped {where}: {why}")


def _count_docs(files: list[Path]) -> int | None:
    """Documents in files whose count is cheap to know (txt: one each; parquet: row counts); else None."""
    total = 0
    for f in files:
        if f.suffix == ".txt":
            total += 1
        elif f.suffix == ".parquet" and (pf := _parquet_file(f)) is not None:
            total += pf.metadata.num_rows
        else:
            return None
    return total


def _file_split(name: str, files: list[Path], warn: Warn, max_docs: int | None) -> Split:
    split = Split(name, read=lambda: iter(()))

    def read() -> Iterator[Doc]:
        for f in files:
            yield from _READERS[f.suffix](f, split, warn)

    split.read = _limited(read, max_docs)
    count = _count_docs(files)
    split.documents = count if max_docs is None or count is None else min(count, max_docs)
    return split


def _existing(source: Path) -> Path:
    require(source.exists(), f"source {source} does not exist", hint="--source takes a folder or a file")
    return source


def _unknown(split: str, have: list[str], where: str) -> ExpspanError:
    return ExpspanError(f"split {split!r} not found in {where} (it has: {', '.join(have) or 'nothing'})",
                        hint="choose --splits among those")


def local_pg19(root: Path, splits: list[str], warn: Warn, max_books: int | None = None) -> Corpus:
    """A local PG-19 copy: DeepMind's layout (`train/ validation/ test/`, one .txt per book) or hub parquet files
    (split named by the folder or by the file name, as in `data/test-00000-of-00001.parquet`)."""
    root = _existing(root)
    require(root.is_dir(), f"source {root} is not a folder", hint="PG-19 --source is the folder holding train/ etc.")
    for s in splits:
        require(s in PG19_SPLITS, f"unknown PG-19 split {s!r}", hint=f"PG-19 has {', '.join(PG19_SPLITS)}")
    by_split: dict[str, list[Path]] = {}
    for f in sorted(root.rglob("*.parquet")):
        name = f.parent.name if f.parent.name in PG19_SPLITS else f.name.split("-")[0].split(".")[0]
        if name in PG19_SPLITS:
            by_split.setdefault(name, []).append(f)
    if not by_split:
        for name in PG19_SPLITS:
            if (root / name).is_dir():
                by_split[name] = sorted((root / name).glob("*.txt"))
    require(any(by_split.values()), f"no PG-19 books found in {root}",
            hint="expected train/ validation/ test/ folders of .txt books, or parquet files of the hub schema")
    for s in splits:
        if not by_split.get(s):
            raise _unknown(s, sorted(k for k, v in by_split.items() if v), str(root))
    files = [f for s in splits for f in by_split[s]]
    return Corpus("pg19", str(root.resolve()), _fingerprint(files, root),
                  {s: _file_split(s, by_split[s], warn, max_books) for s in splits}, {"max_books": max_books})


def local_text(source: Path, splits: list[str], warn: Warn, max_docs: int | None = None) -> Corpus:
    """Any local corpus of .txt (a document a file), .jsonl (a document a line, field `text`) and .parquet
    (column `text`). A folder with subfolders named for the requested splits reads each split from its subfolder;
    otherwise the folder (or the one file) is the split `train`."""
    source = _existing(source)
    if source.is_file():
        require(source.suffix in TEXT_SUFFIXES, f"{source}: unsupported file type",
                hint=f"use {', '.join(TEXT_SUFFIXES)}")
        layout = {"train": [source]}
    elif any((source / s).is_dir() for s in splits):
        layout = {s: sorted(f for f in (source / s).rglob("*") if f.suffix in TEXT_SUFFIXES and f.is_file())
                  for s in splits if (source / s).is_dir()}
    else:
        layout = {"train": sorted(f for f in source.rglob("*") if f.suffix in TEXT_SUFFIXES and f.is_file())}
    for s in splits:
        if s not in layout:
            raise _unknown(s, sorted(layout), str(source))
        require(bool(layout[s]), f"no {'/'.join(TEXT_SUFFIXES)} files for split {s!r} in {source}",
                hint="point --source at a folder or file of text")
    for s in splits:
        for f in layout[s]:
            if f.suffix == ".parquet":
                _parquet_columns(f)  # fail on a bad schema before any output is started
    files = [f for s in splits for f in layout[s]]
    return Corpus("text", str(source.resolve()), _fingerprint(files, source),
                  {s: _file_split(s, layout[s], warn, max_docs) for s in splits}, {"max_books": max_docs})


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """Silence the hub client's retry chatter so an unreachable hub reads as our one error line."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def hub_pg19(splits: list[str], warn: Warn, max_books: int | None = None, repo: str = PG19_HUB) -> Corpus:
    """PG-19 streamed from the hub's parquet copy (fields short_book_title, publication_date, url, text)."""
    import datasets

    from expspan_cli.hub import offline_unless_reachable

    offline_unless_reachable()  # offline, the hub client fails at once instead of retrying
    for s in splits:
        require(s in PG19_SPLITS, f"unknown PG-19 split {s!r}", hint=f"PG-19 has {', '.join(PG19_SPLITS)}")
    streams = {}
    with quiet_hub():
        for s in splits:
            try:
                streams[s] = datasets.load_dataset(repo, split=s, streaming=True)
            except Exception as err:  # noqa: BLE001 - any hub failure means the same thing to the user
                raise ExpspanError(f"cannot read {repo} from the hub ({type(err).__name__}); pass --source DIR with a "
                                   f"local PG-19 copy", hint="--source takes train/ validation/ test/ folders of "
                                   ".txt books or parquet files") from None

    def split_of(name: str) -> Split:
        def read() -> Iterator[Doc]:
            with quiet_hub():
                for row in streams[name]:
                    yield {"title": row.get("short_book_title") or row.get("url") or "", "text": row["text"]}

        return Split(name, _limited(read, max_books))

    return Corpus("pg19", f"hub:{repo}", f"hub:{repo}", {s: split_of(s) for s in splits}, {"max_books": max_books})
