"""Perplexity of a token stream at a context length, under two named protocols.

`longlora` (LongLoRA's eval.py): a window of `length` tokens starts every 256 tokens (the last start dropped) and
every next-token prediction inside each window is scored, so tokens are counted many times, early ones with little
context. `strided` (Hugging Face's recipe): windows of at most `length` tokens advance by `stride` and score only
the tokens no earlier window scored, so each token after the first is scored exactly once (default stride: half
the length)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

from expspan_cli.errors import ExpspanError

PROTOCOLS = ("longlora", "strided")
LONGLORA_STEP = 256


@dataclass(frozen=True)
class Window:
    start: int  # first input token
    first_target: int  # first scored token (stream index); targets run up to start + length - 1


def windows(n_tokens: int, length: int, protocol: str, stride: int | None = None) -> list[Window]:
    if protocol == "longlora":
        starts = list(range(0, n_tokens - length, LONGLORA_STEP))[:-1]
        out = [Window(s, s + 1) for s in starts]
    elif protocol == "strided":
        stride = stride if stride is not None else length // 2
        if not 0 < stride < length:  # a scored token needs at least one earlier token inside its window
            raise ExpspanError(f"stride {stride} must be in 1..{length - 1} (below the window length)")
        out, scored_to = [], 1
        while scored_to < n_tokens:
            end = min(scored_to + stride, n_tokens) if out else min(length, n_tokens)
            start = max(0, end - length)
            out.append(Window(start, scored_to))
            scored_to = end
    else:
        raise ExpspanError(f"unknown perplexity protocol {protocol!r}", hint=f"one of {', '.join(PROTOCOLS)}")
    if not out:
        raise ExpspanError(f"the evaluation stream has {n_tokens} tokens, too few for windows of {length}",
                           hint="use a shorter --lengths value or more evaluation documents")
    return out


def perplexity(model: Any, stream: torch.Tensor, length: int, protocol: str = "longlora", stride: int | None = None,
               batch_size: int = 1, on_batch: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """exp(mean NLL) over the protocol's scored tokens; on_batch(windows, tokens) reports progress."""
    import torch

    stream = stream.flatten().long()
    wins = windows(len(stream), length, protocol, stride)
    device = next(model.parameters()).device
    total_nll, total_scored = 0.0, 0
    for b in range(0, len(wins), batch_size):
        group = wins[b:b + batch_size]
        width = max(min(w.start + length, len(stream)) - w.start for w in group)
        ids = torch.stack([stream[w.start:w.start + width] for w in group]).to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        positions = torch.arange(1, width, device=device)
        scored = torch.stack([positions + w.start >= w.first_target for w in group])
        total_nll += float(nll[scored].sum())
        total_scored += int(scored.sum())
        if on_batch is not None:
            on_batch(len(group), ids.numel())
    mean = total_nll / total_scored
    return {"ppl": math.exp(mean), "nll": mean, "scored_tokens": total_scored, "windows": len(wins),
            "stream_tokens": len(stream), "protocol": protocol,
            "stride": (stride if stride is not None else length // 2) if protocol == "strided" else LONGLORA_STEP,
            "length": length}
