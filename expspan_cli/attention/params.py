"""Parameters of each attention variant, with the paper's defaults and validation that names the bad field."""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, fields
from typing import Any

from expspan_cli.config import check_known
from expspan_cli.errors import ExpspanError, require
from expspan_cli.options import coerce, parse_pairs

VARIANTS = ("full", "se", "s2", "swa")
SE_KERNELS = ("lse_merge", "flex")


@dataclass(frozen=True)
class FullParams:
    """Standard causal attention (SDPA; flash-attn on CUDA when installed)."""


@dataclass(frozen=True)
class SEParams:
    """SE-Attn (paper §3): chunks of M tokens attend causally to themselves plus the top-k past memory blocks of S
    tokens, ranked by R_ij = sum_t q_t . c_j where c_j is the mean non-causal attention output inside block j."""

    chunk_sizes: tuple[int, ...] = (2048, 4096)  # one is drawn per layer call (paper §4.3)
    block_size: int = 32
    top_k: int = 8
    retrieval: str = "per_head"  # "per_head": each query head ranks blocks itself; "shared": scores summed over heads
    memory: str = "relevancy"  # "relevancy" (SE-Attn) | "random" (SE-Attn-Random) | "none" (SE-Attn-NoMem)
    # True: each query ranks blocks with its chunk's queries up to itself only (no peeking at later tokens).
    # None: the paper's chunk-level ranking while training, strictly causal at inference (evaluation, generation).
    causal_retrieval: bool | None = None
    kernel: str = "lse_merge"  # paper-mode attention after retrieval: "lse_merge" (flash calls merged by lse) | "flex"

    def __post_init__(self) -> None:
        sizes = self.chunk_sizes if isinstance(self.chunk_sizes, (list, tuple)) else (self.chunk_sizes,)
        object.__setattr__(self, "chunk_sizes", tuple(int(m) for m in sizes))
        require(len(self.chunk_sizes) > 0, "se: chunk_sizes must list at least one chunk size")
        require(self.block_size > 0, f"se: block_size must be positive, got {self.block_size}")
        for m in self.chunk_sizes:
            require(m > 0 and m % self.block_size == 0,
                    f"se: chunk size {m} is not a positive multiple of block_size {self.block_size}",
                    hint="memory blocks must tile each chunk exactly")
        require(self.top_k >= 0, f"se: top_k must be >= 0, got {self.top_k}")
        require(self.retrieval in ("per_head", "shared"),
                f"se: retrieval must be 'per_head' or 'shared', got {self.retrieval!r}")
        require(self.memory in ("relevancy", "random", "none"),
                f"se: memory must be 'relevancy', 'random' or 'none', got {self.memory!r}")
        require(self.kernel in SE_KERNELS, f"se: kernel must be one of {', '.join(SE_KERNELS)}, got {self.kernel!r}",
                hint="'flex' (FlexAttention with a retrieval BlockMask) is a CUDA kernel; 'lse_merge' runs anywhere")


@dataclass(frozen=True)
class S2Params:
    """LongLoRA's shifted sparse attention: causal attention inside groups of `group_size_ratio` * L tokens; half the
    heads use groups shifted by half a group (no wrap-around: their first and last groups are half-size)."""

    group_size_ratio: float = 0.25

    def __post_init__(self) -> None:
        require(0 < self.group_size_ratio <= 1, f"s2: group_size_ratio must be in (0, 1], got {self.group_size_ratio}")


@dataclass(frozen=True)
class SWParams:
    """Causal sliding-window attention: each token sees itself and the window - 1 tokens before it."""

    window: int = 4096

    def __post_init__(self) -> None:
        require(self.window > 0, f"swa: window must be positive, got {self.window}")


PARAMS = {"full": FullParams, "se": SEParams, "s2": S2Params, "swa": SWParams}


def make_params(variant: str, **values: Any) -> Any:
    """Build the parameter object of `variant`; unknown variants and fields, and values of the wrong type, are user
    errors. Text values (from the command line) are converted to each field's type."""
    if variant not in PARAMS:
        raise ExpspanError(f"unknown attention variant {variant!r}", hint=f"one of {', '.join(VARIANTS)}")
    cls = PARAMS[variant]
    try:
        check_known(values, [f.name for f in fields(cls)], noun="parameter(s)")
    except ExpspanError as err:
        raise ExpspanError(f"{variant}: {err.message}", err.hint.replace("it takes", f"{variant} takes")) from None
    hints = typing.get_type_hints(cls)
    typed = {name: coerce(value, hints[name], f"{variant}: {name}") for name, value in values.items()}
    try:
        return cls(**typed)
    except (TypeError, ValueError) as err:
        raise ExpspanError(f"{variant}: {err}") from err


def parse_attn_params(variant: str, items: list[str] | None, option: str = "--attn-param") -> dict[str, Any]:
    """--attn-param KEY=VALUE items for `variant`, typed per field and validated: {field: value} of those given."""
    given = parse_pairs(items, option)
    make_params(variant, **given)
    hints = typing.get_type_hints(PARAMS[variant])
    return {name: _plain(coerce(value, hints[name], f"{variant}: {name}")) for name, value in given.items()}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def params_dict(params: Any) -> dict[str, Any]:
    """The parameters as JSON-plain values (lists, not tuples), as records and configs store them."""
    return {name: _plain(value) for name, value in asdict(params).items()}


def fitted_defaults(variant: str, context: int | None) -> dict[str, Any]:
    """The paper's settings scaled to a model pre-trained at `context` tokens (paper §4.3: pre-training 2048 ->
    SE chunks {2048, 4096}, SW window 4096, fine-tuning at 8192): chunks of 1x and 2x the context, a window of 2x.
    {} when the context is unknown or the variant has nothing to scale."""
    if not context:
        return {}
    if variant == "se" and context % SEParams.block_size == 0:
        return {"chunk_sizes": [context, 2 * context]}
    if variant == "swa":
        return {"window": 2 * context}
    return {}


def span(variant: str, params: Any, length: int) -> int:
    """The most keys one query attends to in a `length`-token sequence: the span a fair comparison matches
    (SE: its largest chunk plus the k retrieved blocks; S2: one group; SW: the window)."""
    if variant == "swa":
        return min(params.window, length)
    if variant == "s2":
        return max(1, int(length * params.group_size_ratio))
    if variant == "se":
        memory = 0 if params.memory == "none" else params.top_k * params.block_size
        return min(max(params.chunk_sizes) + memory, length)
    return length


def reduces_to_full(variant: str, params: Any, length: int) -> str | None:
    """Why `variant` with `params` computes exactly full causal attention on `length`-token sequences (so a result
    under its name would be full attention's), or None when it does not."""
    if variant == "swa" and params.window >= length:
        return f"swa: window {params.window} covers the whole {length}-token sequence"
    if variant == "s2" and int(length * params.group_size_ratio) >= length:
        return f"s2: group_size_ratio {params.group_size_ratio} makes one group of the whole {length}-token sequence"
    if variant == "se":
        for chunk in params.chunk_sizes:
            if chunk >= length:
                return f"se: chunk size {chunk} covers the whole {length}-token sequence"
            past_blocks = ((-(-length // chunk) - 1) * chunk) // params.block_size
            if params.memory != "none" and params.top_k >= past_blocks:
                return (f"se: top_k {params.top_k} retrieves all {past_blocks} past blocks of {params.block_size} "
                        f"tokens of every chunk of {chunk} in a {length}-token sequence")
    return None
