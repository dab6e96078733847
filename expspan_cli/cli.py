"""The `expspan` command line: one Typer app; each command module in `commands/` parses options and calls
one library function. User errors (ExpspanError) become one red line and exit code 2."""

from __future__ import annotations

import errno
import sys

import typer
from rich.console import Console
from rich.markup import escape
# typer ships its own copy of click; its usage errors are what a bad option value or a missing argument raises
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from expspan_cli.commands import bench, evaluate, prepare, report, train
from expspan_cli.errors import ExpspanError

app = typer.Typer(
    name="expspan",
    help="Long-context fine-tuning of hybrid state-space models: SE-Attn, HyLoRA and their baselines, measured.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: brackets in option help ([default: ...]) are text, not markup
    pretty_exceptions_enable=False,
)
app.add_typer(bench.app, name="bench")
app.add_typer(prepare.app, name="prepare")
app.add_typer(evaluate.app, name="eval")
train.register(app)  # pretrain, finetune, export
report.register(app)  # reproduce, report


def _print_version(value: bool) -> None:
    if value:
        from expspan_cli import __version__

        typer.echo(f"expspan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print expspan's version and exit.")) -> None:
    """Long-context fine-tuning of hybrid state-space models: SE-Attn, HyLoRA and their baselines, measured."""


@app.command()
def version() -> None:
    """Print the versions of expspan and the libraries it runs on."""
    from expspan_cli.runs import versions

    for name, ver in versions().items():
        typer.echo(f"{name} {ver}")


def _fail(message: str, hint: str | None = None) -> None:
    console = Console(stderr=True)
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        console.print(f"[dim]hint: {escape(hint)}[/]", highlight=False, soft_wrap=True)
    sys.exit(2)


def _disk_full(err: BaseException | None) -> bool:
    while err is not None:
        if getattr(err, "errno", None) == errno.ENOSPC or "No space left on device" in str(err) \
                or "os error 28" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def main() -> None:
    """The console entry point: every mistake a user can make ends as one red line (and a hint), exit code 2."""
    try:
        code = app(standalone_mode=False)
    except ExpspanError as err:
        _fail(err.message, err.hint)
    except NoArgsIsHelpError:  # the help was printed
        sys.exit(2)
    except UsageError as err:  # a bad option value, a missing argument, a choice not offered
        path = err.ctx.command_path if err.ctx is not None else "expspan"
        _fail(" ".join(err.format_message().split()), hint=f"see `{path} --help`")
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
    except typer.Abort:
        sys.exit(130)
    except PermissionError as err:
        _fail(f"permission denied: {err.filename or err}", hint="check the path's permissions")
    except Exception as err:
        if _disk_full(err):  # libraries report it as OSError, RuntimeError or their own errors
            _fail("no space left on the device; the output being written was removed",
                  hint="free some disk space, or write to another disk")
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
