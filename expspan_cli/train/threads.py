"""CPU threads that follow the machine's load: a tiny model trained with as many OpenMP threads as cores runs
12-40x slower once another process takes part of one core (the threads wait on each other at every barrier),
while one thread fewer keeps most of its speed (benchmarks/threads-cpu-2cores.json). So training measures, every
few seconds, how many cores other processes kept busy and uses the cores left, never more than it started with."""

from __future__ import annotations

import math
import os
import time

import torch

# A thread is given up once others keep a quarter of a core busy: a barrier that waits on a preempted thread costs
# far more than the thread earns (at 2 cores, one busy process: 1 thread 9.4K tok/s, 2 threads 4.9K).
SHARE = 0.25
INTERVAL_S = 5.0


def _busy_seconds() -> float | None:
    """CPU seconds every process has used since boot (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def threads_for(cores: int, others: float, cap: int) -> int:
    """Threads to use on `cores` cores when other processes keep `others` cores busy, at most `cap`."""
    return max(1, min(cap, cores - math.ceil(max(0.0, others - SHARE))))


class ThreadGovernor:
    """Call `update()` often (every step); it re-decides the thread count every `interval` seconds from the cores
    other processes used in that time (all processes' CPU time minus this one's)."""

    def __init__(self, interval: float = INTERVAL_S, cores: int | None = None):
        self.interval, self.cores = interval, cores or os.cpu_count() or 1
        self.cap = torch.get_num_threads()
        self.threads = self.cap
        self.others: float | None = None
        self._mark = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float | None, float]:
        return time.monotonic(), _busy_seconds(), _own_seconds()

    def update(self) -> int:
        now = self._sample()
        wall = now[0] - self._mark[0]
        if wall < self.interval or now[1] is None or self._mark[1] is None:
            return self.threads
        self.others = max(0.0, ((now[1] - self._mark[1]) - (now[2] - self._mark[2])) / wall)
        self._mark = now
        threads = threads_for(self.cores, self.others, self.cap)
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
        return threads
