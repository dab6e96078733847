"""Helpers the tests share: the console entry point run in this process, as a user types a command."""

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from types import SimpleNamespace

import typer

from expspan_cli.cli import app, main


def leaf_commands() -> list:
    """(path, click command) of every command a user can run, e.g. (["eval", "pg19"], <command>)."""
    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, command
    return list(walk(typer.main.get_command(app), []))


def run_cli(*args) -> SimpleNamespace:
    """`expspan ARGS` through the console entry point (errors -> one line, exit 2): exit_code and output."""
    out, argv = io.StringIO(), sys.argv
    sys.argv, code = ["expspan", *map(str, args)], 0
    try:
        with redirect_stdout(out), redirect_stderr(out):
            main()
    except SystemExit as stop:
        code = stop.code or 0
    finally:
        sys.argv = argv
    return SimpleNamespace(exit_code=code, output=out.getvalue(), exception=None)


def refused(result, *phrases) -> None:
    """Exit 2, one error line (plus an optional hint line), no traceback, each phrase said."""
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


def qkv(length, *, batch=2, heads=3, kv_heads=None, dim=8, seed=0, dtype=None, requires_grad=False, device="cpu"):
    """Seeded random q, k, v of shape (batch, heads, length, dim); k and v with `kv_heads` heads (GQA) if given."""
    import torch

    g = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, length, dim)] + [(batch, kv_heads or heads, length, dim)] * 2
    return [torch.randn(s, generator=g, dtype=dtype or torch.float32).to(device).requires_grad_(requires_grad)
            for s in shapes]
