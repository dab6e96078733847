"""The registry of data kinds: what `expspan prepare KIND` and a recipe's `data:` entry can name. Each kind says
what its source is, which `options` it takes, and how to read it into a Corpus; adding a kind is one entry here
plus its reader module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from expspan_cli.config import check_known
from expspan_cli.errors import ExpspanError, require


@dataclass(frozen=True)
class DataKind:
    name: str
    source: str  # "none": generated | "optional": a local copy or the hub | "required": a local path
    options: tuple[str, ...]  # the fields of a recipe entry's `options:`
    read: Callable[[str | None, list[str] | None, dict[str, Any]], Any]  # (source, splits, options) -> Corpus
    check: Callable[[dict[str, Any]], None] | None = None  # deeper validation of `options` (dry-run)


def synthetic_spec(options: dict[str, Any]) -> Any:
    """The SyntheticSpec that `options` describe (its `distance` may be written [lo, hi] or "lo:hi")."""
    from expspan_cli.data.synthetic import SyntheticSpec, parse_distance

    options = dict(options)
    if isinstance(options.get("distance"), str):
        options["distance"] = parse_distance(options["distance"])
    elif isinstance(options.get("distance"), list):
        options["distance"] = tuple(options["distance"])
    if isinstance(options.get("ruler_words"), list):
        options["ruler_words"] = tuple(options["ruler_words"])
    try:
        return SyntheticSpec(**options)
    except TypeError as err:
        raise ExpspanError(str(err)) from None


def _synthetic(source: str | None, splits: list[str] | None, options: dict[str, Any]) -> Any:
    from expspan_cli.data.synthetic import synthetic_corpus

    return synthetic_corpus(synthetic_spec(options), splits)


def _pg19(source: str | None, splits: list[str] | None, options: dict[str, Any]) -> Any:
    from expspan_cli.progress import warn
    from expspan_cli.data.sources import PG19_SPLITS, hub_pg19, local_pg19

    splits = splits or list(PG19_SPLITS)
    if source is None:
        return hub_pg19(splits, warn, options.get("max_books"))
    return local_pg19(Path(source), splits, warn, options.get("max_books"))


def _text(source: str | None, splits: list[str] | None, options: dict[str, Any]) -> Any:
    from expspan_cli.progress import warn
    from expspan_cli.data.sources import local_text

    require(source is not None, "text data needs a source")
    return local_text(Path(source), splits or ["train"], warn, options.get("max_docs"))


def _synthetic_fields() -> tuple[str, ...]:
    from dataclasses import fields

    from expspan_cli.data.synthetic import SyntheticSpec

    return tuple(f.name for f in fields(SyntheticSpec))


DATA_KINDS = {kind.name: kind for kind in (
    DataKind("synthetic", "none", _synthetic_fields(), _synthetic, lambda o: synthetic_spec(o).validate()),
    DataKind("pg19", "optional", ("max_books",), _pg19),
    DataKind("text", "required", ("max_docs",), _text),
)}


def get_data_kind(name: Any, where: str = "kind") -> DataKind:
    require(name in DATA_KINDS, f"recipe field {where} must be one of {', '.join(DATA_KINDS)}, got {name!r}")
    return DATA_KINDS[name]


def check_options(kind: DataKind, options: dict[str, Any], where: str) -> None:
    """A recipe entry's `options:` for `kind`, keys and values, each error naming its path."""
    check_known(options, kind.options, where)
    if kind.check is not None:
        try:
            kind.check(options)
        except ExpspanError as err:
            raise ExpspanError(f"{where}: {err.message}", err.hint) from None
