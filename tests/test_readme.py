"""The README's Python snippets run."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert (tmp_path / "model_dir" / "cb.model").exists()


def test_the_readme_evaluate_figures_are_what_the_main_job_gives(tmp_path):
    """The two verdict lines the README shows for `evaluate` on the main job's model."""
    from click.testing import CliRunner

    from iglp_vw.cli import main

    text = README.read_text()
    shown = re.search(r"```\n(value under the inferred reward: .*?\n)(signals .*?\n)```", text)
    assert shown, "the README's evaluate block"
    log = README.parent / "data" / "grounded_digits.txt.gz"
    assert CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "model")]).exit_code == 0
    result = CliRunner().invoke(main, ["evaluate", "--model-dir", str(tmp_path / "model"), str(log)])
    assert result.exit_code == 0, result.output
    assert shown.group(1) in result.output and shown.group(2) in result.output
