"""Eq. 4 of the IGL-P paper: the inferred reward from the inverse-kinematics probability."""

from __future__ import annotations

import math
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


class GroupTest:
    """Eq. 3 applied to groups of events with evidence: the extreme-event test IGL-P uses.

    Each group (a decoder code: the events of (user, feedback) pairs that mean the same)
    keeps the importance-weighted mean of P̂(a|x,y)/P̂(a|x) over its last ~``window``
    units of weight, and over ~10 x ``window`` (a uniform-policy event weighs 1: under an
    ε-greedy policy the greedy events weigh ~0.1 and the window spans more of them, so the
    mean keeps the same amount of information whatever the policy). A group turns extreme
    when either mean exceeds ``threshold`` by ``confidence`` standard errors (with at least
    ``MIN_EVIDENCE`` effective events), and stays extreme until both fall below it by as
    much: a sequential test with hysteresis. The short horizon reacts fast, the long one
    gathers persistent moderate evidence. Before any group is confidently extreme
    nothing is inferred, so a few noisy early ratios cannot make the CB greedy on
    arbitrary actions, and a mean that wobbles once the policy is greedy does not
    switch inference off (measured in ``docs/ik-design.md``).

    **Mixed groups.** When users cannot be told apart (each seen once, some of them
    speaking against the majority's convention), no group is pure: the majority
    convention's group holds rewarded events and contrarians' unrewarded ones, and its
    mean ratio stays below ``threshold`` even for a perfect IK. If after ``patience``
    events no group is extreme but some group is confidently *informative* (its mean
    ratio above ``1 + (threshold - 1) / 10``: its events point at particular actions,
    which under the rare-reward assumption are the rewarded ones), an event of the most
    informative such group is inferred rewarded when its action is the IK's best guess
    (its ratio the highest of the candidates', and above that level). For a Bayes-optimal
    IK those are exactly the majority's rewarded events: precision 1, recall 1 - the
    contrarians' share. (The soft reward ``clip((ratio - 1) / (threshold - 1), 0, 1)`` of
    Zhang et al., NeurIPS 2024, used before, also rewarded the contrarians' unrewarded
    events whose ratio was a little above 1: precision 0.46-0.60 against 0.93, measured in
    ``docs/ik-design.md``.)

    >>> test = GroupTest(threshold=2.0, window=50, confidence=2.0)
    >>> for _ in range(30):
    ...     test.update("g0", 4.0, 1.0)
    ...     test.update("g1", 1.0, 1.0)
    >>> test.strength("g0", 4.0), test.strength("g1", 1.0)
    (1.0, 0.0)
    """

    MIN_EVIDENCE = 10.0

    def __init__(self, threshold: float = 2.0, window: int = 50, confidence: float = 2.0, patience: int = 5000):
        self.threshold = float(threshold)
        self.window = int(window)
        self.confidence = float(confidence)
        self.patience = int(patience)
        self._informative = 1.0 + (self.threshold - 1.0) / 10.0
        self._log_decay = math.log1p(-1.0 / self.window)
        self._log_decay_long = math.log1p(-1.0 / (10 * self.window))
        # code -> [Σw r, Σw, Σw r², Σw², extreme (0/1), informative (0/1)], decayed per unit weight
        self._stats: dict = {}
        self.events = 0

    def extreme(self, code: str) -> bool:
        """Whether ``code``'s group is extreme now (before this event's update)."""
        s = self._stats.get(code)
        return bool(s and s[4])

    @property
    def any_extreme(self) -> bool:
        return any(s[4] for s in self._stats.values())

    def strength(self, code: str, ratio: float, top=True) -> float:
        """The inferred |reward| of an event of ``code``'s group with this ratio: 1 in an
        extreme group; in the most informative group (mixed-group mode), 1 if the played
        action is the IK's best guess (``top``, a bool or a callable asked only then: its
        ratio is the highest of the candidates') and its ratio above the informative level;
        else 0."""
        s = self._stats.get(code)
        if not s:
            return 0.0
        if s[4]:
            return 1.0
        if s[5] and self.mixed and code == self._most_informative():
            return float(ratio > self._informative and (top() if callable(top) else bool(top)))
        return 0.0

    def soft_strength(self, code: str) -> float:
        """A confidently informative group's long-horizon mean ratio as a reward in [0, 1]:
        ``clip((mean - 1) / (threshold - 1), 0, 1)`` (Zhang et al., NeurIPS 2024's Lipschitz
        reward, per group rather than per event); 0 for a group that is not informative."""
        s = self._stats.get(code)
        if not s or not s[5] or not s[7]:
            return 0.0
        return min(max((s[6] / s[7] - 1.0) / (self.threshold - 1.0), 0.0), 1.0)

    @property
    def mixed(self) -> bool:
        """Mixed-group mode: ``patience`` events seen, no group extreme, an informative one."""
        return self.events >= self.patience and not self.any_extreme and any(s[5] for s in self._stats.values())

    def _most_informative(self) -> str:
        """The informative group whose mean ratio is highest (mixed-group mode uses that one only)."""
        best, best_mean = None, -1.0
        for code, s in self._stats.items():
            if s[5] and s[1] > 0 and s[0] / s[1] > best_mean:
                best, best_mean = code, s[0] / s[1]
        return best

    def update(self, code: str, ratio: float, weight: float) -> None:
        """Add one event's ratio P̂(a|x,y)/P̂(a|x) with its importance weight, and re-test the group."""
        self.events += 1
        s = self._stats.get(code)
        if s is None:
            s = self._stats[code] = [0.0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0]
        # Written out (this runs once per event). Each horizon: the weighted mean ratio, the effective
        # number of events (Σw)²/Σw², and `confidence` standard errors; Eq. 3 against each level.
        wr, ww = weight * ratio, weight * weight
        wrr = wr * ratio
        d = math.exp(self._log_decay * weight)
        s[0], s[1], s[2], s[3] = s[0] * d + wr, s[1] * d + weight, s[2] * d + wrr, s[3] * d + ww
        d = math.exp(self._log_decay_long * weight)
        s[6], s[7], s[8], s[9] = s[6] * d + wr, s[7] * d + weight, s[8] * d + wrr, s[9] * d + ww
        horizons = []
        for base in (0, 6):
            mean = s[base] / s[base + 1]
            n_eff = s[base + 1] * s[base + 1] / s[base + 3]
            margin = self.confidence * math.sqrt(max(s[base + 2] / s[base + 1] - mean * mean, 0.0) / n_eff)
            horizons.append((mean, n_eff, margin))
        (m0, n0, e0), (m1, n1, e1) = horizons
        least = self.MIN_EVIDENCE
        for flag, level in ((4, self.threshold), (5, self._informative)):
            if s[flag]:  # stays unless confidently below on both horizons (Eq. 3 on the upper bounds)
                s[flag] = int(m0 + e0 > level or m1 + e1 > level)
            else:  # turns on when confidently above on either (Eq. 3 on a lower bound)
                s[flag] = int((n0 >= least and m0 - e0 > level) or (n1 >= least and m1 - e1 > level))

    def ratios(self) -> dict:
        """Each group's current mean ratio."""
        return {c: (s[0] / s[1] if s[1] else float("nan")) for c, s in sorted(self._stats.items())}

    def get_state(self) -> dict:
        return {"events": self.events, "groups": {code: list(s) for code, s in self._stats.items()}}

    def set_state(self, state: dict) -> None:
        stats = {}
        for code, s in state["groups"].items():
            if len(s) != 10:
                raise ValueError(f"group {code!r}: expected 10 statistics, got {len(s)}")
            stats[str(code)] = [float(v) for v in s[:4]] + [int(s[4]), int(s[5])] + [float(v) for v in s[6:]]
        self._stats = stats
        self.events = int(state["events"])
