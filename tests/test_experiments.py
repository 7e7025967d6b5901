"""Each experiment script's headline, asserted loosely on a smaller seeded run (real subprocesses)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _run(script, *args):
    proc = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_fig2_embedding_separates_hidden_types(tmp_path):
    _run("fig2_grounded.py", "--out", tmp_path, "--passes", 2, "--users", 20, "--words", 10, "--seed", 1)
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("learner")
    assert summary.user_type_separation.iloc[0] >= 0.9 and summary.word_type_separation.iloc[0] >= 0.9
    assert summary.reward_last20["IGL-P(2)"] > summary.reward_last20["naive CB"] + 0.3
    for name in ("embedding.png", "curves.png", "embedding.csv", "curves.csv"):
        assert (tmp_path / name).stat().st_size > 0


def test_table1_three_states_avoid_the_dislike_pathology(tmp_path):
    _run("table1_image.py", "--out", tmp_path, "--rounds", 25000, "--users", 150, "--bootstrap", 200, "--seed", 1)
    t = pd.read_csv(tmp_path / "table1.csv").set_index(["algorithm", "signal"])
    assert t.lift["IGL-P(2)", "dislike"] > 2.0  # 2 states: dislikes up
    assert t.lift["IGL-P(3)", "dislike"] < 0.5 * t.lift["IGL-P(2)", "dislike"]
    assert t.lift_low["IGL-P(3)", "dislike"] < 1.5
    assert t["true_r-1"]["IGL-P(3)", "click"] < t["true_r-1"]["IGL-P(2)", "click"]
    assert (tmp_path / "table1.png").stat().st_size > 0


def test_fig4_igl_p3_is_even_across_reader_groups(tmp_path):
    _run("fig4_news.py", "--out", tmp_path, "--rounds", 15000, "--seed", 1)
    t = pd.read_csv(tmp_path / "fig4.csv")
    spread = t.groupby("algorithm")[["r+1", "r-1"]].agg(lambda v: v.max() - v.min())
    worst = t.groupby("algorithm")["r-1"].max()
    assert spread.loc["IGL-P(3)", "r-1"] < 0.5 * spread.loc["CB-emoji", "r-1"]
    assert worst["IGL-P(3)"] < 0.3 < worst["CB-emoji"] and worst["CB-comment"] > 0.3
    assert t[t.algorithm == "IGL-P(3)"]["r+1"].min() > 0.4
    assert (tmp_path / "fig4.png").stat().st_size > 0
