"""The prepare stage of a reproduction: a recipe's data entry -> the corpus readers and `prepare` of expspan_cli.data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expspan_cli.pipeline.spec import DataSpec


def synthetic_spec(spec: DataSpec) -> Any:
    """The SyntheticSpec a recipe's `options` describe (its `distance` may be written [lo, hi] or "lo:hi")."""
    from expspan_cli.data.synthetic import SyntheticSpec, parse_distance

    options = dict(spec.options)
    if isinstance(options.get("distance"), str):
        options["distance"] = parse_distance(options["distance"])
    elif isinstance(options.get("distance"), list):
        options["distance"] = tuple(options["distance"])
    return SyntheticSpec(**options)


def _corpus(spec: DataSpec) -> Any:
    from expspan_cli.data.progress import warn
    from expspan_cli.data.sources import PG19_SPLITS, hub_pg19, local_pg19, local_text
    from expspan_cli.data.synthetic import synthetic_corpus

    if spec.kind == "synthetic":
        return synthetic_corpus(synthetic_spec(spec), spec.splits)
    if spec.kind == "pg19":
        splits = spec.splits or list(PG19_SPLITS)
        books = spec.options.get("max_books")
        if spec.source is None:
            return hub_pg19(splits, warn, books)
        return local_pg19(Path(spec.source), splits, warn, books)
    return local_text(Path(spec.source), spec.splits or ["train"], warn, spec.options.get("max_docs"))


def prepare_data(spec: DataSpec, out: Path) -> dict[str, Any]:
    """Run `expspan prepare` for one data entry into `out` (a no-op when it already holds it); its manifest."""
    from expspan_cli.data.build import prepare

    # `data:NAME` reuses the tokenizer another recipe dataset was prepared with (a sibling of out).
    tokenizer = str(out.parent / spec.tokenizer_of / "tokenizer") if spec.tokenizer_of else spec.tokenizer
    result = prepare(_corpus(spec), tokenizer=tokenizer, seq_len=spec.seq_len, out=out, num_proc=spec.num_proc,
                     command=f"expspan reproduce (data {spec.name})")
    return result.manifest
