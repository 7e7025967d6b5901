import pytest

from iglp_vw.reward import inferred_reward, is_extreme


@pytest.mark.parametrize(
    "p, prior, dn, alpha, threshold, expected",
    [
        (0.10, 0.10, False, 1.0, 2.0, 0.0),  # at the prior: r = 0
        (0.20, 0.10, False, 1.0, 2.0, 0.0),  # exactly twice: still 0 (Eq. 3 is <=)
        (0.21, 0.10, False, 1.0, 2.0, 1.0),  # more than twice: extreme, positive
        (0.21, 0.10, True, 1.0, 2.0, -1.0),  # 3 states, alpha 1
        (0.90, 0.10, True, 0.25, 2.0, -4.0),  # -1/alpha
        (0.90, 0.10, True, 0.25, 10.0, 0.0),  # threshold configurable
        (0.05, 0.01, False, 1.0, 2.0, 1.0),  # a learned prior below 1/K
        (0.15, 0.10, True, 0.5, 2.0, 0.0),  # DN fires but not extreme: 0
    ],
)
def test_eq4(p, prior, dn, alpha, threshold, expected):
    assert inferred_reward(p, prior, dn, alpha, threshold) == expected


def test_two_states_is_alpha_one_without_oracle():
    for p in (0.05, 0.2, 0.21, 0.9):
        assert inferred_reward(p, 0.1) == inferred_reward(p, 0.1, definitely_negative=False, alpha=1.0)
        assert inferred_reward(p, 0.1) == float(is_extreme(p, 0.1))
