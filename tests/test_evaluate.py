import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from iglp_vw.cli import main
from iglp_vw.evaluate import _bootstrap_sums, _estimates, evaluate, feedback_signals
from iglp_vw.replay import replay
from iglp_vw.sim import GroundedSimulation
from iglp_vw.sim.logging import write_log

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def model(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("ope")
    X, y = digits
    write_log(GroundedSimulation(X, y, n_users=20, n_words=10, passes=1, seed=1), out / "train.txt", seed=1)
    replay([out / "train.txt"], out / "model")
    return out


def test_estimators_on_hand_made_numbers():
    pi = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.5, 0.5]])
    a = np.array([0, 1, 0, 1])
    p = np.array([0.5, 0.5, 0.5, 0.5])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    q = np.array([1.0, 0.0])  # per-action mean of y
    logging, ips, snips, dr = _estimates(pi, a, p, y, q)
    w = np.array([1.8, 0.2, 0.2, 1.0])
    assert logging == 0.5
    assert ips == pytest.approx((w * y).mean()) and snips == pytest.approx((w * y).sum() / w.sum())
    assert dr == pytest.approx(np.mean([0.9, 0.9, 0.1, 0.5]))  # q is exact here: DR = Σ π q̂
    sums = _bootstrap_sums(np.random.default_rng(0), 4, 120, [w, y])
    assert sums[0].shape == (120,) and sums[1].min() >= 0 and sums[1].max() <= 4


def test_signals_of_feedback():
    assert feedback_signals("|Feedback click |v like:1 _definitely_bad") == {"click", "like", "_definitely_bad"}
    assert feedback_signals("|Feedback none") == {"none"}


def test_policy_evaluated_on_its_own_log_has_lift_one(model, digits, tmp_path):
    """A log written by the learned policy itself: every signal's lift is 1 and its interval holds 1."""
    X, y = digits
    sim = GroundedSimulation(X, y, n_users=20, n_words=10, passes=1, seed=9)
    write_log(sim, tmp_path / "self.txt", policy="model", model_dir=model / "model", seed=9)
    table = evaluate(model / "model", [tmp_path / "self.txt"], n_boot=300)
    assert len(table) == 10  # the 10 words
    assert np.allclose(table.lift, 1.0, atol=1e-6)
    assert ((table.lift_low <= 1.0 + 1e-9) & (table.lift_high >= 1.0 - 1e-9)).all()
    assert np.allclose(table.ips, table.logging_rate, atol=1e-6)


def test_uniform_log_lifts_have_intervals_and_groups(model, digits, tmp_path):
    X, y = digits
    sim = GroundedSimulation(X, y, n_users=20, n_words=10, passes=1, seed=9)
    write_log(sim, tmp_path / "u.txt", seed=9)
    table = evaluate(model / "model", [tmp_path / "u.txt"], n_boot=300, group_by="User", signals=["word=w1"])
    assert set(table.signal) == {"word=w1"} and table.group.nunique() == 20
    finite = table.dropna(subset=["lift"])
    assert (finite.lift_low <= finite.lift).all() and (finite.lift <= finite.lift_high).all()
    assert (finite.lift_high > finite.lift_low).any()  # real resampling, not a point


def test_cli_evaluate_with_plot_and_csv(model, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--model-dir", str(model / "model"), str(model / "train.txt"),
                                       "--out", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png"),
                                       "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    assert "lift_low" in result.output and (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "t.csv")) == 10


@pytest.mark.parametrize(
    "text, message",
    [
        ("shared |User id=u1 |Feedback w\n0:0 |Action id=0\n|Action id=1\n\n", ":2: probability: label '0:0' has no"),
        ("shared |User id=u1 |Feedback w\n0:0:1.5 |Action id=0\n|Action id=1\n\n", ":2: probability: 1.5 is outside"),
    ],
)
def test_evaluate_refuses_logs_without_valid_probabilities(model, tmp_path, text, message):
    log = tmp_path / "bad.txt"
    log.write_text(text)
    result = CliRunner().invoke(main, ["evaluate", "--model-dir", str(model / "model"), str(log)])
    assert result.exit_code == 2 and f"{log}{message}" in result.output


def test_evaluate_refuses_dsjson_without_probability(model, tmp_path):
    obj = json.loads((DATA / "example.dsjson").read_text().splitlines()[0])
    del obj["_label_probability"]
    log = tmp_path / "bad.json"
    log.write_text(json.dumps(obj) + "\n")
    result = CliRunner().invoke(main, ["evaluate", "--model-dir", str(model / "model"), str(log)])
    assert result.exit_code == 2 and f"{log}:1: _label_probability: missing" in result.output
