"""The two views of prepared data, written batch by batch: packed training blocks and whole-document streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from expspan_cli.data.sources import Doc


def ids_column(arrays: list[np.ndarray]) -> pa.ListArray:
    """A list<int32> column from token arrays without going through Python ints."""
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    values = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.int32()))


class Packer:
    """Documents joined with EOS (one after every document) and cut into blocks of exactly seq_len tokens, the
    LongLoRA way; the remainder carries over to the next batch, and only the very last block is padded."""

    def __init__(self, seq_len: int, eos_id: int, pad_id: int):
        self.seq_len, self.pad_id = seq_len, pad_id
        self._eos = np.array([eos_id], dtype=np.int32)
        self._carry = np.empty(0, dtype=np.int32)

    def add(self, docs: list[np.ndarray]) -> np.ndarray:
        parts = [self._carry]
        for ids in docs:
            parts += [ids, self._eos]
        flat = np.concatenate(parts)
        full = len(flat) // self.seq_len * self.seq_len
        self._carry = flat[full:].copy()
        return flat[:full].reshape(-1, self.seq_len)

    def finish(self) -> tuple[np.ndarray, int]:
        """The padded last block (none when the tokens came out even) and how many pad ids it holds."""
        if not len(self._carry):
            return np.empty((0, self.seq_len), dtype=np.int32), 0
        padding = self.seq_len - len(self._carry)
        block = np.concatenate([self._carry, np.full(padding, self.pad_id, dtype=np.int32)])
        self._carry = np.empty(0, dtype=np.int32)
        return block.reshape(1, -1), padding


def packed_table(blocks: np.ndarray) -> pa.Table:
    return pa.table({"input_ids": ids_column(list(blocks))})


def docs_table(docs: list[Doc], ids: list[np.ndarray]) -> pa.Table:
    """input_ids, text, title, plus any extra per-document columns the corpus carries (synthetic `recalls`)."""
    columns: dict[str, Any] = {"input_ids": ids_column(ids), "text": [d["text"] for d in docs],
                               "title": [d["title"] for d in docs]}
    for key in docs[0]:
        if key not in columns:
            columns[key] = [d[key] for d in docs]
    return pa.table(columns)


class ArrowView:
    """Rows appended as Arrow record batches to a staging file, saved as a `datasets.Dataset` once complete."""

    def __init__(self, staging: Path):
        self.path = staging
        self.rows = 0
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None

    def append(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._schema = table.schema
            self._writer = pa.ipc.new_stream(str(self.path), self._schema)
        self._writer.write_table(table.cast(self._schema))
        self.rows += table.num_rows

    def save(self, dest: Path) -> int:
        from datasets import Dataset

        assert self._writer is not None, "save() of a view that received no rows"
        self._writer.close()
        Dataset.from_file(str(self.path)).save_to_disk(str(dest), max_shard_size="500MB")
        self.path.unlink()
        return self.rows
