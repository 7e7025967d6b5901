import subprocess
import sys

from click.testing import CliRunner

from iglp_vw import IGLP
from iglp_vw.cli import main


def test_grounded_command_saves_a_model(tmp_path):
    result = CliRunner().invoke(
        main, ["grounded", "--passes", "1", "--no-baselines", "--model-dir", str(tmp_path / "m"),
               "--trace", str(tmp_path / "t.csv")],
    )
    assert result.exit_code == 0, result.output
    assert "IGL-P(2)" in result.output
    assert IGLP.load(tmp_path / "m").n_learned == 1797
    assert (tmp_path / "t.csv").read_text().count("\n") == 1798


def test_bad_dataset_option_is_a_usage_error():
    result = CliRunner().invoke(main, ["grounded", "--dataset", "covertype"])
    assert result.exit_code == 2
    assert "needs `path`" in result.output


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "iglp_vw.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "grounded" in proc.stdout
