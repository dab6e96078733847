"""The project README: its CLI reference is the Typer app's, its first command runs the embedded default, and it
keeps the test command CI runs."""

from pathlib import Path

from expspan_cli.clidoc import cli_reference

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_cli_reference_matches_the_typer_app():
    assert cli_reference() in README, "regenerate it: python -m expspan_cli.clidoc --write README.md"


def test_reference_lists_reproduce_and_report_with_their_options():
    ref = cli_reference()
    for text in ("**`expspan reproduce`**", "`--dry-run`", "`--shard`", "`--quick`", "**`expspan report`**"):
        assert text in ref


def test_quickstart_runs_the_embedded_default_first_then_the_tests():
    blocks = README.split("```bash\n")[1:]
    assert "expspan reproduce recipes/tiny.yaml" in blocks[0].split("```")[0]
    assert ".venv/bin/pytest -q" in blocks[1].split("```")[0]
