"""Progress bars for evaluation: items done, a rate in the unit that matters (tokens/s, samples/s), elapsed, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from expspan_cli.progress import progress


class RateColumn(ProgressColumn):
    """`field` per second, from the task's field (or its completed count when field is None)."""

    def __init__(self, unit: str, field: str | None = None):
        super().__init__()
        self.unit, self.field = unit, field

    def render(self, task: Task) -> Text:
        done = task.fields.get(self.field, 0) if self.field else task.completed
        rate = done / task.elapsed if task.elapsed else 0.0
        return Text(f"{rate:,.1f} {self.unit}/s", style="progress.data.speed")


def eval_progress(unit: str, field: str | None = None, disable: bool = False) -> Progress:
    return progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                    RateColumn(unit, field), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=disable)
