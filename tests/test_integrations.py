"""IGLP inside the tools its users run: a coba grounded experiment, end to end."""

import numpy as np
import pytest

coba = pytest.importorskip("coba")

from iglp_vw.integrations.coba import IGLPLearner  # noqa: E402


def _grounded(digits, seed, n=4000, users=10):
    from coba import Environments
    from coba.pipes import ListSource

    X, y = digits
    idx = np.random.default_rng(seed).integers(len(X), size=n)
    # a ListSource: coba reads an environment twice (a peek, then the run)
    source = ListSource(list(zip(X[idx].round(2).tolist(), y[idx].tolist())))
    return Environments.from_supervised(source, label_type="c").grounded(users, users // 2, 100, 50, seed=seed)


def test_coba_grounded_experiment_learns(digits):
    from coba import Experiment, SequentialIGL
    from coba.learners import RandomLearner

    result = Experiment(_grounded(digits, seed=1), [IGLPLearner(seed=1), RandomLearner()], SequentialIGL()).run(
        quiet=True, processes=1)
    table = result.interactions.to_pandas()
    last = {lid: g.sort_values("index").reward.iloc[-800:].mean() for lid, g in table.groupby("learner_id")}
    assert len(table) == 8000
    assert last[0] > 0.7 and last[1] < 0.2  # IGL-P learns the true reward from words alone; random does not
    learners = result.learners.to_pandas()
    assert learners.family.iloc[0] == "IGL-P (iglp-vw)"


def test_coba_adapter_maps_values_and_draws_its_own_actions():
    learner = IGLPLearner(seed=3)
    actions = ["red", (0, 1), 7]  # any values, any count
    action, prob, kwargs = learner.predict((42, 0.5, 1.0), actions)
    assert action in actions and prob == pytest.approx(1 / 3)
    learner.learn((42, 0.5, 1.0), action, (17,), prob, **kwargs)
    assert learner.learner.n_learned == 1
    assert learner.score({"userid": 42, "a": 1.0}, actions, 7) == pytest.approx(1 / 3)
    # the same seed draws the same actions, whatever coba's own sampler does
    again = IGLPLearner(seed=3)
    assert again.predict((42, 0.5, 1.0), actions)[0] == action
