"""Eq. 4 of the IGL-P paper: the inferred reward from the inverse-kinematics probability."""

from __future__ import annotations

from typing import Optional


def is_extreme(ik_probability: float, prior: float, threshold: float = 2.0) -> bool:
    """Extreme-event test (Eq. 3): the feedback says ``r != 0`` iff P̂(a|x,y) > threshold · prior.

    >>> is_extreme(0.5, 0.1), is_extreme(0.2, 0.1)
    (True, False)
    """
    return ik_probability > threshold * prior


def inferred_reward(
    ik_probability: float,
    prior: float,
    definitely_negative: bool = False,
    alpha: float = 1.0,
    threshold: float = 2.0,
) -> float:
    """ρ̂ of Eq. 4.

    ``0`` when ``ik_probability <= threshold * prior``; otherwise ``-1/alpha`` when
    the definitely-negative oracle fired, else ``+1``. With ``alpha=1`` and no
    oracle this is 2-state IGL.

    Parameters
    ----------
    ik_probability
        P̂(a|x,y), the inverse-kinematics probability of the action played.
    prior
        The prior it is compared with: P(a|x) (1/K under the synthetic uniform
        distribution, or the learned estimate P̂(a|x), see :mod:`iglp_vw.ik`).
    definitely_negative
        The oracle DN(x, y) = -1.
    alpha
        Negative labelling propensity, in (0, 1].

    >>> inferred_reward(0.5, 0.1), inferred_reward(0.5, 0.1, True, alpha=0.5), inferred_reward(0.15, 0.1)
    (1.0, -2.0, 0.0)
    """
    return reward_from_test(is_extreme(ik_probability, prior, threshold), definitely_negative, alpha)


def reward_from_test(
    extreme: bool,
    definitely_negative: bool = False,
    alpha: float = 1.0,
    definitely_positive: Optional[bool] = None,
    negative_oracle: bool = True,
) -> float:
    """Eq. 4 given the outcome of the extreme-event test (per event or per group).

    With a "definitely positive" oracle too (the paper's footnote 1, ``definitely_positive``
    not ``None``): an extreme event it marks is ``+1``; one neither oracle marks is ``-1``
    when there is no negative oracle (``negative_oracle=False``: Eq. 4 mirrored, the
    positive side labelled), and ``0`` when both oracles exist (unlabelled and ambiguous:
    the CB is not taught either way). A definitely-negative mark wins.

    >>> reward_from_test(False, True), reward_from_test(True), reward_from_test(True, True, 0.25)
    (0.0, 1.0, -4.0)
    >>> reward_from_test(True, definitely_positive=True), reward_from_test(True, definitely_positive=False)
    (1.0, 0.0)
    >>> reward_from_test(True, definitely_positive=False, negative_oracle=False)
    -1.0
    """
    if not extreme:
        return 0.0
    if definitely_negative:
        return -1.0 / alpha
    if definitely_positive is None or definitely_positive:
        return 1.0
    return 0.0 if negative_oracle else -1.0
