"""The most bytes a CPU call holds at once, counted from the allocator's own allocation and free events.

This is the CPU twin of CUDA's `max_memory_allocated`: what the computation itself asks for, kernel workspaces
included. A process's resident memory says more about the C library's heap than about the algorithm (glibc raises
its mmap threshold after the first large free and then keeps freed blocks in the heap), so it is recorded beside
this figure, not instead of it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile


@contextlib.contextmanager
def _quiet_stderr():
    """The profiler's C++ side prints its stage lines (and a warning per freed block it never saw allocated) to file
    descriptor 2; they say nothing a benchmark reader needs."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Run `fn` once; return the most bytes of CPU memory it allocated that were live at the same time (a block
    allocated before `fn` has no size on record, so freeing it inside `fn` is not subtracted)."""
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    live = peak = 0
    for _, nbytes in sorted(events, key=lambda e: e[0]):  # stable: same-instant events keep their order
        live += nbytes
        peak = max(peak, live)
    return peak
