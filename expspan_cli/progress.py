"""The one progress layer of prepare, train and eval: rich bars on a terminal; plain timestamped lines (at most one
every `LOG_EVERY_S` seconds per task, or $EXPSPAN_LOG_EVERY_S, and one when a task ends) when output goes to a
file, a pipe or a CI log."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

LOG_EVERY_S = 30.0
console = Console(stderr=True)  # where bars, warnings and notices go
# Rates and ETAs average over this window, so an ETA shows even when steps are minutes apart.
SPEED_WINDOW_S = 3600.0


class _LineProgress(Progress):
    """Progress for logs: the live display is off; each update may print the task's columns as one line."""

    def __init__(self, *columns: ProgressColumn, console: Console, every_s: float = LOG_EVERY_S):
        super().__init__(*columns, console=console, disable=True, speed_estimate_period=SPEED_WINDOW_S)
        self.every_s = every_s
        self._logged: dict[TaskID, float] = {}

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        now = time.monotonic()
        if not task.finished and now - self._logged.get(task_id, -self.every_s) < self.every_s:
            return
        if task.finished and self._logged.get(task_id) == float("inf"):
            return
        self._logged[task_id] = float("inf") if task.finished else now
        cells = [str(column(task)) for column in self.columns if not isinstance(column, BarColumn)]
        line = " ".join(c for c in cells if c.strip())
        self.console.print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", highlight=False, markup=False,
                           soft_wrap=True)


class _CurrentStderr:
    """Writes to whatever sys.stderr is now: under a live bar, rich's redirect, which prints above the bar."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _notices_above_the_bar() -> None:
    """Library notices (transformers' kernel fallbacks, deprecations) go through logging handlers that hold the
    stderr of their creation; point them at the current one, so a live bar keeps its line."""
    for name in ("", "transformers", "peft", "accelerate"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.__stderr__, sys.stderr):
                handler.setStream(_CurrentStderr())


def progress(*columns: ProgressColumn, console: Console | None = None, disable: bool = False) -> Progress:
    """A Progress with these columns: a live bar on a terminal, periodic lines elsewhere, nothing when disabled."""
    console = console or Console(stderr=True)
    if disable:
        return Progress(*columns, console=console, disable=True)
    if console.is_terminal:
        _notices_above_the_bar()
        return Progress(*columns, console=console, speed_estimate_period=SPEED_WINDOW_S)
    return _LineProgress(*columns, console=console,
                         every_s=float(os.environ.get("EXPSPAN_LOG_EVERY_S", LOG_EVERY_S)))


class RateColumn(ProgressColumn):
    """`unit` per second, counted by the task's `field` (or its completed count when field is None)."""

    def __init__(self, unit: str, field: str | None = None):
        super().__init__()
        self.unit, self.field = unit, field

    def render(self, task: Task) -> Text:
        done = task.fields.get(self.field, 0) if self.field else task.completed
        rate = done / task.elapsed if task.elapsed else 0.0
        return Text(f"{rate:,.1f} {self.unit}/s", style="progress.data.speed")


def rate_progress(unit: str, field: str | None = None, counts: str | None = None, disable: bool = False) -> Progress:
    """The bar every stage shows: description, bar, done/total (of `counts`), a rate in `unit`, elapsed, ETA."""
    return progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                    *([TextColumn(counts)] if counts else []), RateColumn(unit, field), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=disable)


def warn(message: str) -> None:
    """A warning line, printed above any live bar."""
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
