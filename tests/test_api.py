"""The API contract of issue 3, driven exactly as outside code will drive it."""

import math

import pytest

from iglp_vw import IGLP


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
        ({"num_actions": 10, "cb_args": "--no_such_flag"}, None, None),
    ],
)
def test_invalid_constructor_arguments(kwargs, error, match):
    if error is None:  # VW flags are checked when the CB is built, with a clear message
        learner = IGLP(**kwargs)
        with pytest.raises(ValueError, match="VW rejected"):
            learner.predict({"x": {"a": 1.0}}, [{"A": {"i": "1"}}, {"A": {"i": "2"}}])
        return
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
        learner.predict({"x": {"f": [1, 2]}}, actions)
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
