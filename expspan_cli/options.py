"""The one parser for typed option values that every command shares: KEY=VALUE pairs, booleans, and comma lists of
integers (with a k suffix, 2k = 2048). Values a user types are text; each is converted to the type of the field it
sets, so `causal_retrieval=False` is False everywhere."""

from __future__ import annotations

import types
import typing
from typing import Any

from expspan_cli.errors import ExpspanError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """KEY=VALUE items (repeatable option) -> {key: raw text}; a malformed or repeated key is one error line."""
    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ExpspanError(f"{option} takes KEY=VALUE, got {item!r}", hint=f"e.g. {option} top_k=8")
        if key in pairs:
            raise ExpspanError(f"{option} {key} is given twice")
        pairs[key] = value.strip()
    return pairs


def parse_bool(text: str, name: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ExpspanError(f"{name} must be true or false, got {text!r}")


def parse_int(text: str, name: str) -> int:
    """An integer, with an optional k (x1024) suffix: 2048, 2k, 64K."""
    raw = text.strip().lower()
    scale = 1024 if raw.endswith("k") else 1
    try:
        return int(raw[:-1] if scale > 1 else raw) * scale
    except ValueError:
        raise ExpspanError(f"{name} must be an integer (e.g. 2048 or 2k), got {text!r}") from None


def _split_list(text: str) -> list[str]:
    """The items of a typed list: "2048,8192", "[256, 512]"."""
    return [t for t in text.strip().strip("[]").replace(" ", "").split(",") if t]


def parse_int_list(text: str | list[int] | tuple[int, ...], name: str) -> list[int]:
    """A comma list of integers: "2048,8192", "2k,8k", "[256, 512]" (or a list already parsed)."""
    items = [str(t) for t in text] if isinstance(text, (list, tuple)) else _split_list(str(text))
    if not items:
        raise ExpspanError(f"{name} must list at least one integer, got {text!r}")
    return [parse_int(t, name) for t in items]


def parse_lengths(text: str | list[int]) -> list[int]:
    """Evaluation lengths: a comma list of positive integers (2k = 2048)."""
    lengths = parse_int_list(text, "--lengths")
    if min(lengths) <= 0:
        raise ExpspanError(f"--lengths must list positive lengths, got {text!r}")
    return lengths


def _options(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def coerce(value: Any, hint: Any, name: str) -> Any:
    """`value` (typed text from the command line, or a YAML value) as the type `hint` names; one error line if it
    cannot be. Text is converted; other values must already have the type (a YAML 1 is no bool)."""
    options = _options(hint)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in options):
        if type(None) in options:
            return None
        raise ExpspanError(f"{name} cannot be empty")
    errors = []
    for option in (o for o in options if o is not type(None)):
        base = typing.get_origin(option) or option
        try:
            if base is bool:
                if isinstance(value, bool):
                    return value
                if isinstance(value, str):
                    return parse_bool(value, name)
            elif base is int:
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
                if isinstance(value, str):
                    return parse_int(value, name)
            elif base is float:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return float(value)
                if isinstance(value, str):
                    try:
                        return float(value)
                    except ValueError:
                        raise ExpspanError(f"{name} must be a number, got {value!r}") from None
            elif base in (tuple, list):
                elem = (typing.get_args(option) or (str,))[0]
                items = _split_list(value) if isinstance(value, str) else \
                    value if isinstance(value, (list, tuple)) else [value]
                return base(coerce(v, elem, name) for v in items)
            elif base is str:
                if isinstance(value, str):
                    return value
            elif isinstance(value, base):
                return value
        except ExpspanError as err:
            errors.append(err)
            continue
    if errors:
        raise errors[0]
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
    raise ExpspanError(f"{name} must be {wanted}, got {value!r}")


def parse_device(text: str | None) -> str:
    """A torch device this build and machine have: cpu, cuda, cuda:N or mps (None: cuda when available)."""
    import torch

    if text is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = text.partition(":")
    if kind == "cpu" and not index:
        return text
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            build = "a CPU-only build of torch" if torch.version.cuda is None else "no visible CUDA device"
            raise ExpspanError(f"--device {text}: this machine has {build}", hint="use --device cpu, or install "
                               "the CUDA build of torch on a GPU machine")
        if index and int(index) >= torch.cuda.device_count():
            raise ExpspanError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return text
    if kind == "mps" and not index:
        if not torch.backends.mps.is_available():
            raise ExpspanError("--device mps: this machine has no Metal GPU", hint="use --device cpu")
        return text
    raise ExpspanError(f"--device {text!r} is not a device", hint="cpu, cuda, cuda:N or mps")
