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


# ---------------------------------------------------------------- daily use: what the CLI says
import gzip  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402
import pytest  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"


def _commands(cmd=main, prefix=""):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{prefix} {name}".strip())
    else:
        yield prefix, cmd


def test_help_is_whole_and_every_option_says_what_it_does():
    listing = CliRunner().invoke(main, ["--help"]).output.split("Commands:")[1]
    assert "..." not in listing and "(sec.)" not in listing and "evaluate  Off-policy evaluation" in listing
    for name, cmd in _commands():
        missing = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not p.help]
        assert not missing, f"{name}: {missing}"


@pytest.mark.parametrize("cb_args, message", [
    ("--cb_explore_adf --bogus_flag", "--cb-args: flag '--bogus_flag'"),
    ("--cb_explore_adf --epsilon abc", "--cb-args: VW refuses '--cb_explore_adf --epsilon abc'"),
    ("--cb_adf", "--cb-args: --cb_adf does not explore"),
])
def test_cb_arguments_are_judged_before_any_event(tmp_path, cb_args, message):
    result = CliRunner().invoke(main, ["replay", str(DATA / "example.dsjson"), "--model-dir", str(tmp_path / "m"),
                                       "--cb-args", cb_args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "m" / "cb.model").exists()


def test_messages_use_the_cli_words(tmp_path):
    result = CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(tmp_path / "m"),
                                       "--alpha", "0.5"])
    assert result.exit_code == 2
    assert "--states 2 means --alpha 1" in result.output and "use --states 3" in result.output
    assert "`" not in result.output


def test_replay_says_its_cb_arguments_and_warns_of_a_wrong_user_namespace(tmp_path):
    result = CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(tmp_path / "m"),
                                       "--user-namespace", "user"])
    assert result.exit_code == 0, result.output
    assert "CB: VW --cb_explore_adf --epsilon 0.05 -q UA --cubic UUA -q xA --cubic xxA" in result.output
    assert "no event's context has the user namespace 'user' (context namespaces seen: 'User', 'x')" in result.output
    ok = CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(tmp_path / "n")])
    assert "user namespace" not in ok.output


def test_predict_rows_join_back_and_label_writes_gzip(tmp_path):
    runner = CliRunner()
    model = tmp_path / "m"
    assert runner.invoke(main, ["replay", str(DATA / "example.dsjson"), "--model-dir", str(model)]).exit_code == 0
    result = runner.invoke(main, ["predict", str(DATA / "example.dsjson"), "--model-dir", str(model)])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows[1]["event_id"] == "e2" and rows[0]["event_id"].endswith("example.dsjson:1")
    assert all(r["action_id"] == str(r["action"]) for r in rows)  # the example's ids are 0..3 in order
    # the same through standard input, and as gzipped CSV
    piped = runner.invoke(main, ["predict", "-", "--model-dir", str(model)], input=(DATA / "example.dsjson").read_text())
    assert [json.loads(line)["pmf"] for line in piped.output.splitlines()] == [r["pmf"] for r in rows]
    assert json.loads(piped.output.splitlines()[0])["file"] == "-"
    out = tmp_path / "p.csv.gz"
    assert runner.invoke(main, ["predict", str(DATA / "example.dsjson"), "--model-dir", str(model), "--format", "csv",
                                "--out", str(out)]).exit_code == 0
    assert gzip.decompress(out.read_bytes()).decode().startswith("event_id,file,line,action,action_id,prob,pmf")
    labelled = tmp_path / "l.dsjson.gz"
    result = runner.invoke(main, ["label", str(DATA / "example.dsjson"), "--model-dir", str(model), "--out",
                                  str(labelled)])
    assert result.exit_code == 0 and "final model, frozen" in result.output
    assert labelled.read_bytes()[:2] == b"\x1f\x8b" and len(gzip.decompress(labelled.read_bytes()).splitlines()) == 3


def test_replay_reads_standard_input(tmp_path):
    result = CliRunner().invoke(main, ["replay", "-", "--model-dir", str(tmp_path / "m")],
                                input=(DATA / "example.txt").read_text())
    assert result.exit_code == 0 and "events: 3 " in result.output
