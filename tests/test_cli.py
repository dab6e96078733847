import subprocess
import sys

from typer.testing import CliRunner

from expspan_cli.cli import app


def test_version_lists_torch():
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert "torch " in result.output


def test_user_error_is_one_line_and_exit_2(tmp_path):
    # An ExpspanError raised inside a command must surface as a red line and exit code 2, without a traceback.
    code = (
        "import typer, expspan_cli.cli as c\n"
        "from expspan_cli.errors import ExpspanError\n"
        "@c.app.command()\n"
        "def boom():\n"
        "    raise ExpspanError('bad thing', hint='do better')\n"
        "c.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, "boom"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error: bad thing" in proc.stderr
    assert "hint: do better" in proc.stderr
    assert "Traceback" not in proc.stderr
