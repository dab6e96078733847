"""The README's CLI reference, generated from the Typer app: every option with one line of meaning, its choices and
its default (a test checks the README holds exactly this text).

Regenerate: python -m expspan_cli.clidoc --write README.md
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


def _choices(param: Any) -> tuple[str, ...]:
    import typing

    annotation = getattr(param.get_runtime_param(), "annotation", None) if hasattr(param, "get_runtime_param") \
        else None
    for option in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(option) is typing.Literal:
            return typing.get_args(option)
    return ()


def _meaning(param: Any) -> str:
    """The help's first sentence: one line of meaning."""
    text = " ".join((getattr(param, "help", None) or "").split())
    head = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return head.rstrip(".")


def _option(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}`: {_meaning(param) or 'argument'}" if getattr(param, "help", None) \
            else f"`{param.name.upper()}`"
    names = " / ".join(param.opts + param.secondary_opts)
    facts = []
    if _choices(param):
        facts.append(" \\| ".join(_choices(param)))
    if param.required:
        facts.append("required")
    elif param.default is not None and param.default is not False and param.default not in ((), []) \
            and not callable(param.default):
        facts.append(f"default {param.default}")
    meaning = _meaning(param)
    return f"`{names}`" + (f" ({'; '.join(facts)})" if facts else "") + (f": {meaning}" if meaning else "")


def cli_reference(app: Any = None) -> str:
    """Every command with its one-line help, and each argument and option with its meaning, choices and default,
    as Markdown."""
    import typer

    if app is None:
        from expspan_cli.cli import app
    root = typer.main.get_command(app)
    lines = [BEGIN, ""]
    for name, command in _commands(root, "expspan"):
        summary = (command.help or "").strip().split("\n")[0]
        params = [p for p in command.params if p.name != "help"]
        lines.append(f"- **`{name}`**: {summary}")
        lines += [f"  - {_option(p)}" for p in params]
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
