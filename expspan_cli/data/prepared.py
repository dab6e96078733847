"""Reading prepared data back: what later stages call (`load_prepared`, `check_tokenizer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from expspan_cli.data.kinds import DATA_KINDS
from expspan_cli.data.tokenizer import tokenizer_hash
from expspan_cli.errors import ExpspanError, require
from expspan_cli.runs import read_manifest


@dataclass
class PreparedData:
    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def seq_len(self) -> int:
        return int(self.manifest["seq_len"])

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def tokenizer_hash(self) -> str:
        return self.manifest["tokenizer"]["hash"]

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.path / self.manifest["tokenizer"]["path"]))

    def _view(self, view: str, split: str) -> Any:
        from datasets import load_from_disk

        have = self.manifest["views"].get(view, {})
        if split not in have:
            raise ExpspanError(f"{self.path} has no {view} view of split {split!r} (it has: "
                               f"{', '.join(have) or 'none'})",
                               hint=f"prepare it with `expspan prepare ... --{view} {split}`")
        where = self.path / have[split]["path"]
        expected = have[split].get("blocks" if view == "packed" else "documents")
        try:
            ds = load_from_disk(str(where))
        except Exception as err:  # noqa: BLE001 - truncated or damaged Arrow files, a missing piece: one meaning
            raise ExpspanError(f"{where} is damaged and cannot be read ({type(err).__name__}: "
                               f"{str(err).splitlines()[0][:120]})", hint=f"prepare {self.path} again (--force)") \
                from None
        require(expected is None or len(ds) == expected, f"{where} holds {len(ds)} rows, its manifest says "
                f"{expected}: it is damaged", hint=f"prepare {self.path} again (--force)")
        return ds

    def packed(self, split: str = "train", seq_len: int | None = None, drop_padded: bool = False) -> Any:
        """Training blocks (`input_ids`, each seq_len long). A shorter seq_len that divides the prepared one cuts
        every block into equal pieces (pre-training at 256 on data packed at 2048); anything else is refused.
        drop_padded leaves out the trailing block(s) that hold the pad tokens completing the last block, so no
        training label is a pad."""
        ds = self._view("packed", split)
        if seq_len is not None and seq_len != self.seq_len:
            require(0 < seq_len < self.seq_len and self.seq_len % seq_len == 0,
                    f"{self.path} is packed at {self.seq_len} tokens; {seq_len} does not divide it",
                    hint=f"prepare the data with --seq-len {seq_len} (or a multiple of it)")
            ds = _recut(ds, seq_len)
        padding = self.manifest["views"]["packed"][split].get("padding", 0)
        if drop_padded and padding:
            ds = ds.select(range(len(ds) - -(-padding // (seq_len or self.seq_len))))
        return ds

    def docs(self, split: str = "validation") -> Any:
        """One row per document: `input_ids` (the whole document, no special tokens), `text`, `title`."""
        return self._view("docs", split)


def _recut(ds: Any, seq_len: int) -> Any:
    """The same token stream in shorter blocks, built on the memory-mapped Arrow buffers (no copy, no cache file
    written into the prepared folder)."""
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    chunks = []
    for chunk in ds.data.table.column("input_ids").chunks:
        values = chunk.flatten()
        offsets = np.arange(0, len(values) + 1, seq_len, dtype=np.int32)
        chunks.append(pa.ListArray.from_arrays(pa.array(offsets), values))
    return Dataset(InMemoryTable(pa.table({"input_ids": pa.chunked_array(chunks)})))


def load_prepared(path: str | Path) -> PreparedData:
    path = Path(path)
    manifest = read_manifest(path)
    if manifest is None or manifest.get("kind") not in DATA_KINDS:
        raise ExpspanError(f"{path} is not prepared data (no manifest.json from `expspan prepare`)",
                           hint="run `expspan prepare pg19|text|synthetic --out DIR` first")
    return PreparedData(path, manifest)


def check_tokenizer(prepared: PreparedData, tokenizer_or_hash: Any) -> None:
    """Refuse a model whose tokenizer maps tokens to other ids than the data's tokenizer did."""
    theirs = tokenizer_or_hash if isinstance(tokenizer_or_hash, str) else tokenizer_hash(tokenizer_or_hash)
    if theirs != prepared.tokenizer_hash:
        raise ExpspanError(f"tokenizer mismatch: {prepared.path} was tokenized with "
                           f"{prepared.manifest['tokenizer']['name']} (hash {prepared.tokenizer_hash}), the model's "
                           f"tokenizer has hash {theirs}",
                           hint="prepare the data again with the model's tokenizer (`expspan prepare ... --tokenizer "
                           "MODEL`): the model's embedding rows stand for its own tokenizer's ids")
