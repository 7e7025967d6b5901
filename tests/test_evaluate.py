import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from iglp_vw.cli import main
from iglp_vw.evaluate import (
    INFERRED, _bootstrap_sums, _estimates, estimate, evaluate, events_frame, feedback_signals, read_pmfs, signal_values,
)
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
    assert list(table.signal[:1]) == [INFERRED] and len(table) == 11  # the inferred reward, the 10 words
    assert np.allclose(table.lift, 1.0, atol=1e-6)
    assert ((table.lift_low <= 1.0 + 1e-9) & (table.lift_high >= 1.0 - 1e-9)).all()
    assert np.allclose(table.ips, table.logging_rate, atol=1e-6)


def test_uniform_log_lifts_have_intervals_and_groups(model, digits, tmp_path):
    X, y = digits
    sim = GroundedSimulation(X, y, n_users=20, n_words=10, passes=1, seed=9)
    write_log(sim, tmp_path / "u.txt", seed=9)
    table = evaluate(model / "model", [tmp_path / "u.txt"], n_boot=300, group_by="User", signals=["word=w1"])
    assert list(table.signal[:2]) == ["inferred reward", "word=w1"]  # the inferred reward first, always
    table = table[table.signal == "word=w1"]
    assert table.group.nunique() == 21
    assert table.group.iloc[0] == "all" and table.n.iloc[0] == table.n.iloc[1:].sum()  # overall rows first
    finite = table.dropna(subset=["lift"])
    assert (finite.lift_low <= finite.lift).all() and (finite.lift <= finite.lift_high).all()
    assert (finite.lift_high > finite.lift_low).any()  # real resampling, not a point


def test_cli_evaluate_with_plot_and_csv(model, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--model-dir", str(model / "model"), str(model / "train.txt"),
                                       "--out", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png"),
                                       "--bootstrap", "100"])
    assert result.exit_code == 0, result.output
    assert "lift_low" in result.output and (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "t.csv")) == 11
    assert "value under the inferred reward" in result.output and "the policy raises" in result.output


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


def _frame(pmfs, actions, probs, signals, groups=None):
    return pd.DataFrame({
        "pmf": [np.asarray(p, float) for p in pmfs], "action": actions, "prob": probs,
        "n_actions": [len(p) for p in pmfs], "signals": signals, "group": groups or ["all"] * len(actions),
        "pi_action": [p[a] for p, a in zip(pmfs, actions)],
    })


def test_estimate_by_hand_on_a_tiny_table():
    """Four events, two candidates; every number below is worked out by hand."""
    frame = _frame([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.5, 0.5]], [0, 1, 0, 1], [0.5] * 4,
                   [{"click": 1.0}, {"none": 1.0}, {"click": 1.0, "dwell": 30.0}, {"dwell": 10.0}])
    t = estimate(frame, ["click", "dwell"], n_bootstrap=0).set_index("signal")
    # w = π(a|x)/p = 1.8, 0.2, 0.2, 1.0; click y = 1, 0, 1, 0
    assert t.loc["click", "logging_rate"] == 0.5
    assert t.loc["click", "ips"] == pytest.approx((1.8 + 0.2) / 4)
    assert t.loc["click", "snips"] == pytest.approx(2.0 / 3.2)
    # q̂ per action: click 1 for action 0, 0 for action 1: DR = mean of π(0|x) = (0.9+0.9+0.1+0.5)/4
    assert t.loc["click", "dr"] == pytest.approx(0.6)
    assert t.loc["click", "lift"] == pytest.approx((2.0 / 3.2) / 0.5)
    assert t.loc["click", "delta"] == pytest.approx(2.0 / 3.2 - 0.5)
    # dwell by value: y = 0, 0, 30, 10; w·y = 0, 0, 6, 10
    assert t.loc["dwell", "logging_rate"] == 10.0 and t.loc["dwell", "ips"] == pytest.approx(4.0)
    assert t.loc["dwell", "snips"] == pytest.approx(16 / 3.2)
    # q̂(0) = 15, q̂(1) = 5: DR terms 0.9·15+0.1·5 + 1.8(0-15), 14+0.2(0-5), 0.1·15+0.9·5+0.2(30-15), 10+1.0(10-5)
    assert t.loc["dwell", "dr"] == pytest.approx(np.mean([14 - 27, 14 - 1, 6 + 3, 10 + 5]))


def test_estimates_cover_a_known_truth_and_alpha_sets_the_width():
    """A simulated log (uniform logging over 3 actions, Bernoulli clicks with known rates) and a
    fixed policy: the value Σ π θ is inside every estimator's interval."""
    rng = np.random.default_rng(0)
    theta, pi = np.array([0.1, 0.3, 0.6]), np.array([0.2, 0.2, 0.6])
    n = 4000
    a = rng.integers(3, size=n)
    clicks = rng.random(n) < theta[a]
    frame = _frame([pi] * n, a, [1 / 3] * n, [{"click": 1.0} if c else {"none": 1.0} for c in clicks])
    truth = pi @ theta
    wide = estimate(frame, ["click"], n_bootstrap=400, random_state=1, alpha=0.05).iloc[0]
    for name in ("ips", "snips", "dr"):
        assert wide[f"{name}_low"] <= truth <= wide[f"{name}_high"], name
        assert abs(wide[name] - truth) < 0.03
    narrow = estimate(frame, ["click"], n_bootstrap=400, random_state=1, alpha=0.5).iloc[0]
    assert narrow.snips_high - narrow.snips_low < 0.6 * (wide.snips_high - wide.snips_low)
    # a scikit-learn regressor as DR's reward model
    from sklearn.linear_model import Ridge

    frame["context"] = ["|x f:1"] * n
    dr = estimate(frame, ["click"], n_bootstrap=0, reward_model=Ridge(alpha=1.0)).iloc[0]
    assert abs(dr.dr - truth) < 0.03


def test_unknown_signal_lists_the_ones_seen(model):
    with pytest.raises(ValueError, match=r"no event has the signal\(s\) 'wordw1'; signals seen .*word=w"):
        evaluate(model / "model", [model / "train.txt"], signals=["wordw1"], n_bootstrap=0)
    result = CliRunner().invoke(main, ["evaluate", "--model-dir", str(model / "model"), str(model / "train.txt"),
                                       "--signal", "wordw1"])
    assert result.exit_code == 2 and "signals seen" in result.output and "Traceback" not in result.output


def test_text_and_dsjson_signals_are_named_alike():
    from iglp_vw.logs import read_events

    text = [e for e in read_events(DATA / "example.txt") if e.action is not None]
    dsjson = [e for e in read_events(DATA / "example.dsjson") if e.action is not None]
    assert signal_values(text[0]) == signal_values(dsjson[0]) == {"word=w42": 1.0}


def test_greedy_policy_and_user_pmfs(model, tmp_path):
    frame = events_frame(model / "model", [model / "train.txt"], infer=False)
    greedy = events_frame(model / "model", [model / "train.txt"], policy="greedy", infer=False)
    assert all(sorted(p)[-1] == 1.0 and p.sum() == 1.0 for p in greedy.pmf)
    assert (greedy.pi_action != frame.pi_action).any()
    # the model's own pmfs passed back in (predict --format csv) give the same frame
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(main, ["predict", str(model / "train.txt"), "--model-dir", str(model / "model"),
                                       "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    mine = events_frame(None, [model / "train.txt"], pmfs=read_pmfs(out), infer=False)
    assert np.allclose(mine.pi_action, frame.pi_action, atol=1e-6)
    with pytest.raises(ValueError, match="pmfs given"):
        events_frame(None, [model / "train.txt"], pmfs=read_pmfs(out)[:-1], infer=False)


def test_events_frame_round_trips_through_parquet(model, tmp_path):
    pytest.importorskip("pyarrow")
    result = CliRunner().invoke(main, ["evaluate", "--model-dir", str(model / "model"), str(model / "train.txt"),
                                       "--bootstrap", "0", "--events-out", str(tmp_path / "ev.parquet")])
    assert result.exit_code == 0, result.output
    back = pd.read_parquet(tmp_path / "ev.parquet")
    frame = events_frame(model / "model", [model / "train.txt"])
    assert len(back) == len(frame) and np.allclose(back.weight, frame.weight)
    assert np.allclose(np.stack(back.pmf), np.stack(frame.pmf), atol=1e-12)
    assert [json.loads(s) for s in back.signals] == list(frame.signals)
