"""One contract, run over every learner (river's `check_estimator` habit): shapes, seeding,
cloning, pickling and deepcopy of a trained learner, inputs left alone."""

import copy
import math
import pickle

import pytest

from iglp_vw import IGLP
from iglp_vw.base import Learner
from iglp_vw.baselines import RewardCB, Uniform, VWNativeIGL


def _reward(context, feedback):
    return float((feedback or {}).get("Feedback", {}).get("word") == "w1")


LEARNERS = {
    "IGLP": lambda seed: IGLP(4, seed=seed, decoder_args={"refit_every": 20}),
    "IGLP features IK": lambda seed: IGLP(4, seed=seed, ik_model="features"),
    "IGLP 3 states": lambda seed: IGLP(4, states=3, alpha=0.5, definitely_negative={"w2"}, seed=seed),
    "RewardCB": lambda seed: RewardCB(4, _reward, seed=seed),
    "Uniform": lambda seed: Uniform(4, seed=seed),
    "VWNativeIGL": lambda seed: VWNativeIGL(4, seed=seed),
}


def _rounds(n, start=0):
    for t in range(start, start + n):
        context = {"User": {"id": f"u{t % 5}"}, "x": {"f": (t % 7) / 7.0}}
        actions = [{"Action": {"id": str(k)}} for k in range(4)]
        yield context, actions, {"Feedback": {"word": f"w{t % 3}"}}


def _play(learner, n, start=0):
    out = []
    for context, actions, feedback in _rounds(n, start):
        pmf = learner.predict(context, actions)
        index, prob = learner.act(context, actions)
        value = learner.learn(context, actions, index, prob, feedback)
        out.append((tuple(round(p, 6) for p in pmf), index, round(prob, 6), "nan" if value != value else value))
    return out


@pytest.fixture(params=list(LEARNERS), ids=list(LEARNERS))
def make(request):
    return LEARNERS[request.param]


def test_shapes(make):
    learner = make(0)
    assert isinstance(learner, Learner)
    for context, actions, feedback in _rounds(30):
        pmf = learner.predict(context, actions)
        assert isinstance(pmf, list) and len(pmf) == len(actions) and math.isclose(sum(pmf), 1.0, rel_tol=1e-4)
        index, prob = learner.act(context, actions)
        assert isinstance(index, int) and 0 <= index < len(actions) and prob == pytest.approx(pmf[index], abs=1e-6)
        assert isinstance(learner.learn(context, actions, index, prob, feedback), float)


def test_seeded_runs_are_identical(make):
    assert _play(make(3), 60) == _play(make(3), 60)


def test_params_and_clone(make):
    learner = make(1)
    _play(learner, 10)
    clone = learner.clone()
    assert repr(clone) == repr(learner) and clone.params.keys() == learner.params.keys()
    assert _play(clone, 40) == _play(make(1), 40)  # untrained, same parameters
    assert _play(type(learner)(**learner.params), 5) == _play(make(1), 5)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_trained_learner_copies_and_keeps_learning_identically(make, how):
    learner = make(2)
    _play(learner, 80)
    twin = pickle.loads(pickle.dumps(learner)) if how == "pickle" else copy.deepcopy(learner)
    assert _play(twin, 60, start=80) == _play(learner, 60, start=80)


def test_inputs_are_not_mutated(make):
    learner = make(0)
    for context, actions, feedback in _rounds(10):
        before = copy.deepcopy((context, actions, feedback))
        index, prob = learner.act(context, actions)
        learner.learn(context, actions, index, prob, feedback)
        assert (context, actions, feedback) == before


def test_iglp_params_round_trip_with_a_callable_oracle():
    def angry(context, feedback):
        return "angry" in str(feedback)

    learner = IGLP(4, states=3, alpha=0.5, definitely_negative=angry, seed=1)
    assert IGLP(**learner.params).definitely_negative is angry
    assert _play(learner.clone(), 20) == _play(IGLP(4, states=3, alpha=0.5, definitely_negative=angry, seed=1), 20)
