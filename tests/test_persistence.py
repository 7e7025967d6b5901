import json
import subprocess
import sys

import numpy as np
import pytest

from iglp_vw import IGLP
from iglp_vw.sim import run

from .conftest import small_sim


def _play(learner, rounds, sim, start):
    rng = np.random.default_rng(start)
    out = []
    for t, rnd in enumerate(sim):
        if t < start:
            continue
        if t >= start + rounds:
            break
        a, p = learner.act(rnd["context"], rnd["actions"])
        fb, _ = sim.feedback(rnd, a, rng)
        out.append((a, p, learner.learn(rnd["context"], rnd["actions"], a, p, fb)))
    return out


def test_continued_training_after_reload_matches_uninterrupted(digits, tmp_path):
    sim = small_sim(digits, passes=2)
    straight = IGLP(10, seed=5, decoder_args={"refit_every": 100})
    first = _play(straight, 1800, sim, 0)
    rest_straight = _play(straight, 900, sim, 1800)

    resumed = IGLP(10, seed=5, decoder_args={"refit_every": 100})
    assert _play(resumed, 1800, sim, 0) == first
    resumed.save(tmp_path / "ckpt")
    reloaded = IGLP.load(tmp_path / "ckpt")
    assert _play(reloaded, 900, sim, 1800) == rest_straight
    assert sum(r for _, _, r in rest_straight) > 0  # the stretch compared actually learned something

    straight.save(tmp_path / "a")
    reloaded.save(tmp_path / "b")
    state_a = json.loads((tmp_path / "a" / "state.json").read_text())
    state_b = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state_a["decoder"] == state_b["decoder"] and state_a["rng"] == state_b["rng"]
    assert state_a["group_stats"] == state_b["group_stats"]
    for name in ("cb.model", "ik.model", "ik_prior.model"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_saved_cb_model_loads_in_plain_vw(tmp_path, context, actions):
    learner = IGLP(10, seed=0)
    for t in range(20):
        learner.learn(context, actions, t % 10, 0.1, {"Feedback": {"w": str(t % 2)}})
    learner.save(tmp_path)
    data = tmp_path / "events.txt"
    data.write_text("shared |User id=u17 |x f0:0.31 f5:1\n" + "\n".join(f"|Action id={k}" for k in range(10)) + "\n\n")
    proc = subprocess.run(
        [sys.executable, "-m", "vowpalwabbit", "-i", str(tmp_path / "cb.model"), "-t", "-d", str(data), "--quiet",
         "-p", str(tmp_path / "pred.txt")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "pred.txt").read_text().strip().count(":") == 10


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="not an IGLP model directory"):
        IGLP.load(tmp_path)
    learner = IGLP(3, states=3, definitely_negative=lambda x, y: False)
    learner.save(tmp_path / "m")
    with pytest.raises(ValueError, match="callable"):
        IGLP.load(tmp_path / "m")
    assert IGLP.load(tmp_path / "m", definitely_negative=lambda x, y: True).states == 3


def test_seeded_runs_are_identical_and_seeds_matter(digits):
    sim = small_sim(digits, passes=1)
    a = run(IGLP(10, seed=1), sim, seed=1, limit=600)
    b = run(IGLP(10, seed=1), sim, seed=1, limit=600)
    c = run(IGLP(10, seed=2), sim, seed=1, limit=600)
    assert a.equals(b)
    assert not a.action.equals(c.action)
