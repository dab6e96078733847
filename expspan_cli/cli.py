"""The `expspan` command line: one Typer app; each command module in `commands/` parses options and calls
one library function. User errors (ExpspanError) become one red line and exit code 2."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from expspan_cli.commands import bench, evaluate, prepare, report, train
from expspan_cli.errors import ExpspanError

app = typer.Typer(
    name="expspan",
    help="Long-context fine-tuning of hybrid state-space models: SE-Attn, HyLoRA and their baselines, measured.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(bench.app, name="bench")
app.add_typer(prepare.app, name="prepare")
app.add_typer(evaluate.app, name="eval")
train.register(app)  # pretrain, finetune, export
report.register(app)  # reproduce, report


@app.callback()
def _root() -> None:
    """Long-context fine-tuning of hybrid state-space models: SE-Attn, HyLoRA and their baselines, measured."""


@app.command()
def version() -> None:
    """Print the versions of expspan and the libraries it runs on."""
    from expspan_cli.runs import versions

    for name, ver in versions().items():
        typer.echo(f"{name} {ver}")


def main() -> None:
    try:
        app()
    except ExpspanError as err:
        console = Console(stderr=True)
        console.print(f"[bold red]error:[/] {err.message}", highlight=False, soft_wrap=True)
        if err.hint:
            console.print(f"[dim]hint: {err.hint}[/]", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
