"""The one config validator: files a user names (recipes, DeepSpeed configs) read or refused in one line, and
fields declared once (type from the annotation, bounds beside it) checked with their full path in every error
(`grid[3].attn_params.top_k`). Recipes, attention parameters, curricula and CLI overrides all go through it."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from expspan_cli.errors import ExpspanError, require
from expspan_cli.options import coerce


def read_yaml(path: str | Path, what: str) -> Any:
    """A YAML file a user names (recipe, DeepSpeed config, ...), or one error line saying why it cannot be read."""
    path = Path(path)
    require(path.exists(), f"{what} {path} does not exist")
    require(path.is_file(), f"{what} {path} is a directory, not a file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ExpspanError(f"{what} {path} is not UTF-8 text") from None
    except OSError as err:
        raise ExpspanError(f"{what} {path} cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ExpspanError(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}") from None


@dataclass(frozen=True)
class Bounds:
    """What a numeric field admits, declared once beside the field (`bounded`) and checked by `build`."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    what: str | None = None  # the error's wording when the default one ("positive", ">= 0") says too little

    def check(self, value: Any, name: str) -> None:
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        ok = math.isfinite(value) and (self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge) \
            and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le)
        require(ok, f"{name} must be {self.what or self._wording()}, got {value}")

    def _wording(self) -> str:
        if self.gt == 0 and self.lt is None and self.le is None:
            return "positive"
        low = f"[{self.ge}" if self.ge is not None else f"({self.gt}" if self.gt is not None else "(-inf"
        high = f"{self.le}]" if self.le is not None else f"{self.lt})" if self.lt is not None else None
        return f"in {low}, {high}" if high else f"> {self.gt}" if self.gt is not None else f">= {self.ge}"


def bounded(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **bounds: Any) -> Any:
    """A dataclass field with its bounds: `max_steps: int = bounded(1000, gt=0)`."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"bounds": Bounds(**bounds)})


def path(where: str, name: str | int) -> str:
    """`grid[3]` + `attn_params` -> `grid[3].attn_params`; an index -> `grid[3]`."""
    if isinstance(name, int):
        return f"{where}[{name}]"
    return f"{where}.{name}" if where else name


def check_known(values: Any, known: Any, where: str = "", noun: str = "recipe field") -> None:
    """Every key of `values` is one of `known`; else one line naming each unknown one by its full path."""
    unknown = sorted(set(values) - set(known))
    require(not unknown, f"unknown {noun} {', '.join(path(where, u) for u in unknown)}",
            hint=f"{where or 'it'} takes {', '.join(sorted(known)) or 'nothing'}")


def build(cls: type, values: dict[str, Any], where: str = "", noun: str = "recipe field", quote: bool = True) -> Any:
    """An instance of the dataclass `cls` from `values`: keys checked, each value converted to its field's type
    (text too: `options.coerce`) and held to its declared bounds; every error names the field's path."""
    check_known(values, [f.name for f in dataclasses.fields(cls)], where, noun)
    hints = typing.get_type_hints(cls)
    typed = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            name = f"{noun} {path(where, f.name)!r}" if quote else f"{noun} {path(where, f.name)}"
            typed[f.name] = coerce(values[f.name], hints[f.name], name)
            if "bounds" in f.metadata:
                f.metadata["bounds"].check(typed[f.name], name)
    return cls(**typed)
