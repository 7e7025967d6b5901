"""The logic that is ours, on fake workspaces (tests/fakes.py): the suite's fast path.

``python -m pytest -m fast -n 0`` runs these and every other test that needs no VW
in seconds; a test marked fast that starts a VW workspace fails (tests/conftest.py).
"""
import numpy as np
import pandas as pd
import pytest


def _stream(n, seed=0, dislike=False):
    """Uniform logging over 3 items; every user likes item 0: a click when it is shown (90%);
    with ``dislike``, half the users say nothing then but dislike item 2 (90%)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        u = int(rng.integers(20))
        user = f"u{u}"
        action = int(rng.integers(3))
        if dislike and u % 2:
            feedback = "|Feedback dislike" if action == 2 and rng.random() < 0.9 else None
        elif action == 0 and rng.random() < 0.9:
            feedback = {"Feedback": {"click": 1}}
        else:
            feedback = None
        yield {"User": {"id": user}}, [{"A": {"id": j}} for j in range(3)], action, 1 / 3, feedback


def test_the_group_test_infers_the_reward_of_a_click_that_says_which_item_was_shown(no_vw):
    model = no_vw(3, seed=0)
    rhos, clicks = [], []
    for ctx, acts, a, p, fb in _stream(3000):
        rhos.append(model.learn(ctx, acts, a, p, fb))
        clicks.append(fb is not None)
    late = slice(1500, None)
    rho, click = np.array(rhos)[late], np.array(clicks)[late]
    assert (rho[click] == 1).mean() > 0.95  # clicks: +1
    assert (rho[~click] == 0).mean() > 0.95  # nothing: 0


def test_three_states_turn_a_definitely_negative_signal_into_minus_one_over_alpha(no_vw):
    model = no_vw(3, seed=0, states=3, alpha=0.5, definitely_negative={"dislike"})
    out = [(model.learn(*e), e[4]) for e in _stream(4000, dislike=True)][2000:]
    disliked = [rho for rho, fb in out if fb and "dislike" in str(fb)]
    clicked = [rho for rho, fb in out if fb and "click" in str(fb)]
    assert np.mean(np.array(disliked) == -2.0) > 0.9 and np.mean(np.array(clicked) == 1.0) > 0.9


def test_nothing_inferred_is_said_at_once_and_a_late_namespace_is_named(no_vw):
    model = no_vw(3, seed=0)
    for i, (ctx, acts, a, p, _) in enumerate(_stream(30)):
        if i >= 10:
            ctx["x"] = {"f": 1}
        model.learn(ctx, acts, a, p, None)
    notes = model.diagnostics()
    assert any(n.startswith("no reward inferred yet after 30 events") for n in notes)
    assert any("context namespace 'x' (first at event 11)" in n and "-q xA --cubic xxA" in n for n in notes)


def test_save_and_load_go_on_where_the_learner_was(no_vw, tmp_path):
    events = list(_stream(2000))
    whole = no_vw(3, seed=0)
    expected = [whole.learn(*e) for e in events]
    first = no_vw(3, seed=0)
    got = [first.learn(*e) for e in events[:1000]]
    first.save(tmp_path / "m")
    from iglp_vw import IGLP

    loaded = IGLP.load(tmp_path / "m")
    got += [loaded.learn(*e) for e in events[1000:]]
    assert got == expected and sum(expected) > 200


def test_learn_many_names_the_bad_row_and_takes_nan_as_no_feedback(no_vw):
    rows = [dict(zip(("context", "actions", "action", "prob", "feedback"), e)) for e in _stream(50)]
    for r in rows:
        r["feedback"] = np.nan if r["feedback"] is None else r["feedback"]
    rows[30]["action"] = 7
    model = no_vw(3, seed=0)
    with pytest.raises(ValueError, match=r"^row 30: "):
        model.learn_many(pd.DataFrame(rows))
    assert model.n_learned == 30
