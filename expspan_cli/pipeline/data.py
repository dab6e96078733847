"""The prepare stage of a reproduction: a recipe's data entry -> its kind's reader (data/kinds.py) -> `prepare`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expspan_cli.pipeline.spec import DataSpec


def prepare_data(spec: DataSpec, out: Path) -> dict[str, Any]:
    """Run `expspan prepare` for one data entry into `out` (a no-op when it already holds it); its manifest."""
    from expspan_cli.data.build import prepare
    from expspan_cli.data.kinds import DATA_KINDS

    # `data:NAME` reuses the tokenizer another recipe dataset was prepared with (a sibling of out).
    tokenizer = str(out.parent / spec.tokenizer_of / "tokenizer") if spec.tokenizer_of else spec.tokenizer
    corpus = DATA_KINDS[spec.kind].read(spec.source, spec.splits, spec.options)
    result = prepare(corpus, tokenizer=tokenizer, seq_len=spec.seq_len, out=out, num_proc=spec.num_proc,
                     command=f"expspan reproduce (data {spec.name})")
    return result.manifest
