"""Progress bars with a token rate, and warnings that print above them (both on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from expspan_cli.progress import progress

console = Console(stderr=True)


class TokenRateColumn(ProgressColumn):
    """Tokens per second, from the task's `tokens` field (the bar itself counts documents)."""

    def render(self, task: Task) -> Text:
        tokens = task.fields.get("tokens", 0)
        elapsed = task.elapsed or 0.0
        rate = tokens / elapsed if elapsed > 0 else 0.0
        return Text(f"{tokens / 1e6:,.2f}M tok {rate / 1e3:,.0f}k tok/s", style="progress.data.speed")


def token_progress() -> Progress:
    return progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("docs"),
                    TokenRateColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
