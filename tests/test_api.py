"""The API contract of issue 3, driven exactly as outside code will drive it."""

import math
import warnings

import numpy as np
import pytest

from iglp_vw import IGLP
from iglp_vw.learner import InferenceWarning


def test_contract(context, actions):
    learner = IGLP(num_actions=10, states=2, seed=0)
    pmf = learner.predict(context, actions)
    assert isinstance(pmf, list) and len(pmf) == 10
    assert math.isclose(sum(pmf), 1.0, rel_tol=1e-5)
    rho = learner.learn(context, actions, action=3, prob=pmf[3], feedback={"Feedback": {"word": "w42"}})
    assert rho in (0.0, 1.0)
    index, prob = learner.act(context, actions)
    assert 0 <= index < 10 and prob == pytest.approx(learner.predict(context, actions)[index])


def test_vw_text_is_accepted_and_equivalent(context, actions):
    as_dicts, as_text = IGLP(10, seed=1), IGLP(10, seed=1)
    text_ctx = "|User id=u17 |x f0:0.31 f5:1"
    text_actions = [f"|Action id={k}" for k in range(10)]
    for t in range(30):
        fb = {"Feedback": {"word": f"w{t % 3}"}}
        r1 = as_dicts.learn(context, actions, t % 10, 0.1, fb)
        r2 = as_text.learn(text_ctx, text_actions, t % 10, 0.1, f"|Feedback word=w{t % 3}")
        assert r1 == r2
    assert as_dicts.predict(context, actions) == as_text.predict(text_ctx, text_actions)


def test_input_not_mutated(context, actions):
    import copy

    before = copy.deepcopy((context, actions))
    learner = IGLP(10)
    learner.learn(context, actions, 0, 0.5, {"Feedback": {"like": True}})
    assert (context, actions) == before


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_actions": 1}, ValueError, "num_actions"),
        ({"num_actions": 10, "states": 4}, ValueError, "states"),
        ({"num_actions": 10, "states": 3, "alpha": 0}, ValueError, "alpha"),
        ({"num_actions": 10, "states": 2, "alpha": 0.5}, ValueError, "states=2"),
        ({"num_actions": 10, "states": 2, "definitely_negative": {"dislike"}}, ValueError, "states=2"),
        ({"num_actions": 10, "threshold": 1.0}, ValueError, "threshold"),
        ({"num_actions": 10, "extreme_test": "x"}, ValueError, "extreme_test"),
        ({"num_actions": 10, "states": 3, "definitely_negative": 5}, TypeError, "definitely_negative"),
        ({"num_actions": 10, "cb_args": "--cb_explore_adf --no_such_flag"}, ValueError, "--no_such_flag"),
        ({"num_actions": 10, "ik_args": "--invert_hash /tmp/x"}, ValueError, "--invert_hash"),
        ({"num_actions": 10, "cb_args": "--cb_explore_adf -f /tmp/x"}, ValueError, "'-f'"),
        ({"num_actions": 10, "cb_args": "--cb_explore_adf --epsilon"}, ValueError, "takes 1 value"),
        ({"num_actions": 10 ** 6}, ValueError, "num_actions"),
        ({"num_actions": 10, "extreme_test": "either"}, ValueError, "extreme_test"),
    ],
)
def test_invalid_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        IGLP(**kwargs)


@pytest.mark.parametrize(
    "call, match",
    [
        (dict(action=10, prob=0.1), "action"),
        (dict(action=-1, prob=0.1), "action"),
        (dict(action=0, prob=0.0), "prob"),
        (dict(action=0, prob=1.5), "prob"),
        (dict(action=0, prob=float("nan")), "prob"),
    ],
)
def test_invalid_learn_arguments(context, actions, call, match):
    learner = IGLP(10)
    with pytest.raises(ValueError, match=match):
        learner.learn(context, actions, feedback={"Feedback": {"w": "a"}}, **call)


def test_bad_features_get_clear_errors(actions):
    learner = IGLP(10)
    with pytest.raises(TypeError, match=r"context\['x'\]\['f'\]"):
        learner.predict({"x": {"f": {"nested": 1}}}, actions)
    with pytest.raises(TypeError, match=r"context\['x'\]\['f'\]\[0\]"):
        learner.predict({"x": {"f": [[1, 2]]}}, actions)  # a list of lists
    with pytest.raises(ValueError, match="must be finite"):
        learner.predict({"x": {"f": float("inf")}}, actions)
    with pytest.raises(ValueError, match="more than num_actions"):
        learner.predict({"x": {"f": 1.0}}, actions + actions)
    with pytest.raises(ValueError, match="start with"):
        learner.predict("User id=1", actions)


def test_three_states_definitely_negative_oracles(context, actions):
    by_set = IGLP(10, states=3, alpha=0.5, definitely_negative={"dislike"})
    by_fn = IGLP(10, states=3, alpha=0.5, definitely_negative=lambda x, y: "dislike" in str(y))
    assert by_set._dn(context, {}, "|Feedback reaction=dislike")
    assert by_set._dn(context, {}, "|Feedback dislike")
    assert not by_set._dn(context, {}, "|Feedback like")
    assert by_fn._dn(context, {"Feedback": {"reaction": "dislike"}}, "")


def test_params_and_repr():
    learner = IGLP(5, seed=3)
    assert learner.params["seed"] == 3 and learner.params["num_actions"] == 5
    assert repr(learner).startswith("IGLP(num_actions=5")
    assert IGLP(**{**learner.params, "definitely_negative": None}).params == learner.params


def _trace(learner, sim, rounds, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for t, rnd in enumerate(sim):
        if t >= rounds:
            break
        a, p = learner.act(rnd["context"], rnd["actions"])
        fb, _ = sim.feedback(rnd, a, rng)
        rho = learner.learn(rnd["context"], rnd["actions"], a, p, fb)
        out.append((a, rho, dict(learner.last), fb["Feedback"]["word"]))
    return out


def test_three_states_label_definitely_negative_extremes_minus_one_over_alpha(digits):
    from .conftest import small_sim

    bad_words = {f"w{i}" for i in range(5)}
    learner = IGLP(10, states=3, alpha=0.5, definitely_negative=bad_words, seed=0)
    trace = _trace(learner, small_sim(digits, passes=2), 3594)
    extremes = [(rho, last, w) for _, rho, last, w in trace if last["extreme"]]
    assert len(extremes) > 50
    for rho, last, word in extremes:
        assert rho == (-2.0 if word in bad_words else 1.0) and last["definitely_negative"] == (word in bad_words)
    assert all(rho == 0.0 for _, rho, last, _ in trace if not last["extreme"])
    assert {-2.0, 1.0} <= {rho for rho, _, _ in extremes}


def test_three_states_with_alpha_one_and_no_oracle_is_two_state_igl(digits, tmp_path):
    """Eq. 4 with alpha = 1 and no oracle embeds 2-state IGL: same rewards, same models."""
    from .conftest import small_sim

    two = IGLP(10, states=2, seed=0)
    three = IGLP(10, states=3, alpha=1.0, seed=0, decoder_args={"dims": 1})  # the same 1-bit groups
    a, b = _trace(two, small_sim(digits, passes=1), 1500), _trace(three, small_sim(digits, passes=1), 1500)
    assert [(x[0], x[1]) for x in a] == [(x[0], x[1]) for x in b]
    two.save(tmp_path / "2")
    three.save(tmp_path / "3")
    for name in ("cb.model", "ik.model", "ik_prior.model"):
        assert (tmp_path / "2" / name).read_bytes() == (tmp_path / "3" / name).read_bytes()


def test_definitely_positive_oracle(context, actions):
    from iglp_vw.reward import reward_from_test

    only_dp = IGLP(10, states=3, definitely_positive={"love"})
    both = IGLP(10, states=3, definitely_negative={"angry"}, definitely_positive={"love"})
    assert only_dp.params["definitely_positive"] == {"love"} and both.params["definitely_negative"] == {"angry"}
    assert reward_from_test(True, False, 1.0, True, False) == 1.0  # marked positive
    assert reward_from_test(True, False, 1.0, False, False) == -1.0  # mirror of Eq. 4
    assert reward_from_test(True, False, 1.0, False, True) == 0.0  # both oracles, unmarked: ambiguous
    assert reward_from_test(True, True, 0.5, True, True) == -2.0  # negative mark wins
    with pytest.raises(ValueError, match="states=2"):
        IGLP(10, states=2, definitely_positive={"love"})


def test_action_feature_ik_learns_where_positions_mean_nothing():
    """News articles in a new order every round: the slot IK is at chance, the features IK learns."""
    from iglp_vw.sim.news import NewsSimulation
    from iglp_vw.sim.play import play

    from iglp_vw.learner import InferenceWarning

    shares = {}
    for ik in ("slot", "features"):
        sim = NewsSimulation(rounds=16000, seed=2, shuffle=True)
        learner = IGLP(12, states=3, alpha=0.5, definitely_negative={"angry"}, seed=2, ik_model=ik)
        if ik == "slot":  # positions mean nothing here: nothing is inferred, and the learner says so
            with pytest.warns(InferenceWarning, match="no reward inferred"):
                frame = play(learner, sim, seed=2)
        else:
            frame = play(learner, sim, seed=2)
        tail = frame[frame.t >= 8000]
        shares[ik] = ((tail.reward == 1).mean(), (tail.reward == -1).mean())
    assert shares["slot"][0] < 0.25  # 2 of 12 articles are liked: chance is 0.17
    assert shares["features"][0] > 0.45 and shares["features"][1] < shares["slot"][1]


def test_action_feature_ik_continues_exactly_after_reload(tmp_path):
    from iglp_vw.sim.news import NewsSimulation

    sim = NewsSimulation(rounds=1200, seed=3, shuffle=True)
    rounds = list(sim)
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    straight = IGLP(12, states=3, alpha=0.5, definitely_negative={"angry"}, seed=1, ik_model="features")
    resumed = IGLP(12, states=3, alpha=0.5, definitely_negative={"angry"}, seed=1, ik_model="features")
    for t, rnd in enumerate(rounds):
        for learner, rng in ((straight, rng_a), (resumed, rng_b)):
            a, p = learner.act(rnd["context"], rnd["actions"])
            fb, _ = sim.feedback(rnd, a, rng)
            learner.learn(rnd["context"], rnd["actions"], a, p, fb)
        if t == 600:
            resumed.save(tmp_path / "ckpt")
            resumed = IGLP.load(tmp_path / "ckpt")
    straight.save(tmp_path / "a")
    resumed.save(tmp_path / "b")
    for name in ("cb.model", "ik.model", "ik_prior.model", "state.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def _events(n=300, seed=0, numpy_values=False):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n):
        user = int(rng.integers(5))
        a = int(rng.integers(3))
        good = a == user % 3
        value = np.int64(user) if numpy_values else user
        rows.append({"context": {"User": {"id": f"u{user}"}, "x": {"n": value, "tags": ["a", f"t{user}"]}},
                     "actions": [{"Action": {"id": str(k)}} for k in range(3)],
                     "action": a, "prob": 1 / 3,
                     "feedback": {"Feedback": {"word": f"w{int(good) * 2 + int(rng.integers(2))}"}}})
    return rows


def test_learn_many_on_a_dataframe_equals_the_loop_and_numpy_values_learn_like_python_ones(tmp_path):
    import pandas as pd

    events = _events()
    loop = IGLP(seed=0)
    rhos = [loop.learn(e["context"], e["actions"], e["action"], e["prob"], e["feedback"]) for e in events]
    batch = IGLP(seed=0)
    got = batch.learn_many(pd.DataFrame(events))
    assert np.array_equal(got, np.asarray(rhos))
    numpy = IGLP(seed=0)
    assert np.array_equal(numpy.learn_many(_events(numpy_values=True)), got)  # np.int64 values, dicts
    for learner, name in ((loop, "loop"), (batch, "batch"), (numpy, "numpy")):
        learner.save(tmp_path / name)
    for f in ("cb.model", "ik.model", "ik_prior.model"):
        assert (tmp_path / "loop" / f).read_bytes() == (tmp_path / "batch" / f).read_bytes() \
            == (tmp_path / "numpy" / f).read_bytes(), f
    pmfs = batch.predict_many(pd.DataFrame(events[:5])[["context", "actions"]])
    assert pmfs == [loop.predict(e["context"], e["actions"]) for e in events[:5]]
    with pytest.raises(ValueError, match="no column"):
        batch.learn_many(pd.DataFrame(events)[["context", "actions"]])


def test_learn_many_with_the_ik_in_a_process_of_its_own_equals_the_loop(tmp_path):
    """learn_many moves the IK to a forked process for long batches (here forced on 1,500 events,
    some of whose users are new): the same ρ̂ and models as the loop, the IK back in this process
    afterwards (learning goes on identically), and a bad event stops it with the learner as
    after the events before it."""
    events = _events(1500, seed=4)
    for e in events[::7]:
        e["context"]["User"]["id"] += "-new"  # users seen once: the IK's interactions from the full context
    loop = IGLP(seed=0)
    for e in events:  # as learn_many does on a list: the CB's interactions cross all its namespaces
        loop.see_namespaces(e["context"], e["actions"])
    rhos = [loop.learn(e["context"], e["actions"], e["action"], e["prob"], e["feedback"]) for e in events]
    batch = IGLP(seed=0)
    got = batch.learn_many(events, ik_process=True)
    assert np.array_equal(got, np.asarray(rhos)) and (got != 0).sum() > 300
    more = _events(100, seed=5)
    for learner in (loop, batch):
        learner.learn_many(more, ik_process=False)
    loop.save(tmp_path / "loop")
    batch.save(tmp_path / "batch")
    for f in ("cb.model", "ik.model", "ik_prior.model", "state.json"):
        assert (tmp_path / "loop" / f).read_bytes() == (tmp_path / "batch" / f).read_bytes(), f

    bad = _events(200, seed=6)
    bad[150]["prob"] = 0.0
    stopped = IGLP(seed=0)
    with pytest.raises(ValueError, match="prob"):
        stopped.learn_many(bad, ik_process=True)
    assert stopped.n_learned == 150
    before = IGLP(seed=0)
    for e in bad:  # learn_many saw every row's namespaces first
        before.see_namespaces(e["context"], e["actions"])
    before.learn_many(bad[:150], ik_process=False)
    stopped.save(tmp_path / "stopped")
    before.save(tmp_path / "before")
    for f in ("cb.model", "ik.model", "ik_prior.model", "state.json"):
        assert (tmp_path / "stopped" / f).read_bytes() == (tmp_path / "before" / f).read_bytes(), f


def test_free_text_feedback_is_named_in_the_diagnostics():
    """Unique comments as feedback values (free text) cannot be grouped and blur the others'
    convention (scripts/free_text_feedback.py): the diagnostics say so, and only then."""
    words = _events(900, seed=7)
    comments = _events(900, seed=7)
    for t, e in enumerate(comments[::3]):
        e["feedback"] = {"Feedback": {"comment": f"loved it {t}"}}
    said = {}
    for name, events in (("words", words), ("comments", comments)):
        learner = IGLP(seed=0, patience=300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InferenceWarning)  # the same messages, checked below
            learner.learn_many(events, ik_process=False)
        said[name] = [m for m in learner.diagnostics() if "seen about once" in m]
    assert said["words"] == []
    assert len(said["comments"]) == 1 and "300 values" in said["comments"][0], said
