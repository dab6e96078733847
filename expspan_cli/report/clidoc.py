"""The README's CLI reference, generated from the Typer app (a test checks the README holds exactly this text).

Regenerate: python -m expspan_cli.report.clidoc --write README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- cli-reference:begin -->", "<!-- cli-reference:end -->"


def _commands(group: Any, prefix: str) -> list[tuple[str, Any]]:
    out = []
    for name in sorted(group.commands):
        command = group.commands[name]
        if hasattr(command, "commands"):  # a sub-app (typer ships its own click: duck-typed)
            out += _commands(command, f"{prefix} {name}")
        else:
            out.append((f"{prefix} {name}", command))
    return out


def _option(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}`"
    names = " / ".join(param.opts + param.secondary_opts)
    return f"`{names}`"


def cli_reference(app: Any = None) -> str:
    """Every command with its one-line help and its arguments and options, as Markdown."""
    import typer

    if app is None:
        from expspan_cli.cli import app
    root = typer.main.get_command(app)
    lines = [BEGIN, ""]
    for name, command in _commands(root, "expspan"):
        summary = (command.help or "").strip().split("\n")[0]
        params = [p for p in command.params if p.name != "help"]
        lines.append(f"- **`{name}`**: {summary}")
        if params:
            lines.append("  " + ", ".join(_option(p) for p in params))
    lines += ["", END]
    return "\n".join(lines)


def write_into(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: cli_reference(), text), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        write_into(Path(sys.argv[2]))
    else:
        print(cli_reference())
