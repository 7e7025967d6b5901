"""Any action set by default: candidates that change from round to round, in number and in
order, with no number of actions given up front (the paper's footnote 2)."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from iglp_vw import IGLP
from iglp_vw.baselines import RewardCB, Uniform
from iglp_vw.cli import main
from iglp_vw.logs import format_text_event, read_events
from iglp_vw.replay import replay
from iglp_vw.sim import GroundedSimulation
from iglp_vw.sim.logging import write_log


def _changing_rounds(sim, seed):
    """Each round offers a random subset (5 to 10) of the classes, the label among them, in a
    random order; an action is known by its features (its class id), not its position."""
    rng = np.random.default_rng(seed)
    for rnd in sim:
        size = int(rng.integers(5, 11))
        others = [k for k in rng.permutation(sim.num_actions) if k != rnd["label"]][: size - 1]
        classes = [int(k) for k in rng.permutation([rnd["label"], *others])]
        yield rnd, classes, [sim.actions[k] for k in classes]


def _play(learner, sim, seed):
    rng = np.random.default_rng(seed + 2)
    rewards = []
    for rnd, classes, actions in _changing_rounds(sim, seed):
        index, prob = learner.act(rnd["context"], actions)
        feedback, reward = sim.feedback(rnd, classes[index], rng)
        learner.learn(rnd["context"], actions, index, prob, feedback)
        rewards.append(reward)
    return np.mean(rewards[int(0.8 * len(rewards)):])


def test_on_policy_with_action_sets_of_changing_size_and_order(digits):
    X, y = digits
    sim = GroundedSimulation(X, y, n_users=50, n_words=20, passes=4, seed=3)
    iglp = _play(IGLP(seed=3), sim, 3)  # no num_actions
    oracle = _play(RewardCB(None, sim.true_reward, seed=3), sim, 3)
    uniform = _play(Uniform(None, seed=3), sim, 3)
    assert iglp > uniform + 0.4 and iglp > 0.8 * oracle, (iglp, oracle, uniform)


def test_a_log_whose_action_count_varies_replays(tmp_path):
    """VW's own kind of ADF log: 3 actions, then 2, then 4 (and an event without a label)."""
    log = tmp_path / "varying.txt"
    log.write_text(
        "shared |s s_1\n0:1:0.5 |a a_1 b_1\n|a a_2 b_2\n|a a_3 b_3\n\n"
        "|a b_1 c_1\n0:0:0.5 |a b_2 c_2\n\n"
        "shared |s s_2\n|a a:3 b:-1\n0:-2:0.25 |a a:0.5 b:1\n|a a:-1 b:-0.5\n|a a:2 b:-1\n\n"
        "|a a_1\n|a a_3\n\n"
    )
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "events: 3" in result.output and "events without a label" in result.output
    learner = IGLP.load(tmp_path / "m")
    assert learner.num_actions is None
    for n in (2, 3, 4, 7):
        pmf = learner.predict("|s s_1", [f"|a a_{k}" for k in range(n)])
        assert len(pmf) == n and abs(sum(pmf) - 1) < 1e-4
    predicted = CliRunner().invoke(main, ["predict", str(log), "--model-dir", str(tmp_path / "m")])
    assert [len(json.loads(line)["pmf"]) for line in predicted.output.splitlines()] == [3, 2, 4, 2]


def _shuffled_copy(src: Path, dst: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with open(dst, "w") as out:
        for event in read_events(src):
            order = rng.permutation(len(event.actions))
            shuffled = event.replace(actions=[event.actions[i] for i in order],
                                     action=int(np.flatnonzero(order == event.action)[0]))
            out.write(format_text_event(shuffled, feedback_namespace=None))


def _greedy_accuracy(model, log, truth):
    import pandas as pd

    learner = IGLP.load(model)
    labels = pd.read_csv(truth).set_index("line").label
    hits = []
    for event in read_events(log):
        pmf = learner.predict(event.context, event.actions)
        chosen = event.actions[int(np.argmax(pmf))]
        hits.append(chosen.endswith(f"id={labels[event.line]}"))
    return np.mean(hits)


def test_the_same_log_shuffled_gives_an_equally_good_policy(digits, tmp_path):
    X, y = digits
    sim = GroundedSimulation(X, y, n_users=20, n_words=10, passes=2, seed=5)
    write_log(sim, tmp_path / "log.txt", seed=5, truth=tmp_path / "truth.csv")
    _shuffled_copy(tmp_path / "log.txt", tmp_path / "shuffled.txt", seed=5)
    fixed = replay([tmp_path / "log.txt"], tmp_path / "a")
    shuffled = replay([tmp_path / "shuffled.txt"], tmp_path / "b")
    assert abs(fixed.shares()["+"] - shuffled.shares()["+"]) < 0.02
    a = _greedy_accuracy(tmp_path / "a", tmp_path / "log.txt", tmp_path / "truth.csv")
    b = _greedy_accuracy(tmp_path / "b", tmp_path / "log.txt", tmp_path / "truth.csv")
    assert a > 0.6 and b > 0.6 and abs(a - b) < 0.05, (a, b)


def test_the_slot_ik_still_needs_its_number_of_slots():
    with pytest.raises(ValueError, match="give num_actions"):
        IGLP(ik_model="slot")
    learner = IGLP(4, ik_model="slot")
    with pytest.raises(ValueError, match="more than num_actions=4"):
        learner.predict("|x a", [f"|A a{k}" for k in range(5)])
