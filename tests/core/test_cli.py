import subprocess
import sys

from typer.testing import CliRunner

from auditstream.cli import app

runner = CliRunner()


def test_top_level_help_lists_areas():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("bench", "report", "db"):
        assert command in result.output


def test_console_script_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "auditstream.cli", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "auditstream" in proc.stdout
