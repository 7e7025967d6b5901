"""Days of the grounded simulation whose conventions change: the worlds of daily retraining.

Each day is a fresh shuffled pass (or several) over the same dataset, with the same users
and words; what changes from one day to the next is the scenario's:

- ``"swap"``: from ``change_day`` on, a share of the users (half by default) speak the
  other convention (normal <-> bizarro), a sudden change.
- ``"gradual"``: each day from day 2, a further share of the users (10% by default) swap,
  for good.
- ``"meaning"``: from ``change_day`` on, a share of the words (20% by default) mean the
  opposite for everyone (a signal changing meaning).
- ``"new-signal"``: until ``change_day`` a share of the words (20% by default) is never
  used; from then on they are (a new button).
- ``"stable"``: nothing changes.

>>> world = DriftWorld("swap", n_users=10, seed=0)
>>> int((world.day(1).bizarro != world.day(2).bizarro).sum()), len(world.day(1))
(5, 8985)
"""

from __future__ import annotations

import numpy as np

from .grounded import GroundedSimulation, load_dataset

__all__ = ["DriftWorld", "SCENARIOS"]

SCENARIOS = ("swap", "gradual", "meaning", "new-signal", "stable")
_DEFAULT_SHARE = {"swap": 0.5, "gradual": 0.1, "meaning": 0.2, "new-signal": 0.2, "stable": 0.0}


class DriftWorld:
    """The grounded simulation day by day, under one of :data:`SCENARIOS`.

    Parameters
    ----------
    scenario
        What changes (see the module's docstring).
    dataset, passes
        The grounded dataset and how many shuffled passes over it make one day
        (digits x 5: 8,985 events a day).
    n_users, n_words
        Users and words, as in :class:`~iglp_vw.sim.GroundedSimulation` (half bizarro,
        half good words on day 1).
    share
        The share of users or words that change (the scenario's default when ``None``).
    change_day
        The first day that differs from day 1 (``"swap"``, ``"meaning"``, ``"new-signal"``).
    seed
        Seeds day 1's conventions, which users or words change, and each day's rounds.
    """

    def __init__(self, scenario: str = "swap", dataset: str = "digits", passes: int = 5, n_users: int = 100,
                 n_words: int = 100, share=None, change_day: int = 2, seed: int = 0):
        if scenario not in SCENARIOS:
            raise ValueError(f"`scenario` must be one of {SCENARIOS}, got {scenario!r}")
        self.scenario = scenario
        self.share = _DEFAULT_SHARE[scenario] if share is None else float(share)
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"`share` must be in [0, 1], got {share}")
        self.change_day, self.seed, self.passes = int(change_day), int(seed), int(passes)
        self.n_users, self.n_words = int(n_users), int(n_words)
        self._X, self._y = load_dataset(dataset, seed=seed)
        first = GroundedSimulation(self._X, self._y, n_users, n_words, passes=passes, seed=seed)
        self._bizarro, self._good = first.bizarro.copy(), first.good.copy()
        rng = np.random.default_rng([seed, 25])
        self._user_order = rng.permutation(self.n_users)
        self._word_order = rng.permutation(self.n_words)

    def conventions(self, day: int) -> tuple:
        """``(bizarro, good, words in use)`` on ``day`` (1-based)."""
        if day < 1:
            raise ValueError(f"`day` must be >= 1, got {day}")
        bizarro, good, used = self._bizarro.copy(), self._good.copy(), np.ones(self.n_words, bool)
        changed = day >= self.change_day
        if self.scenario == "swap" and changed:
            bizarro[self._user_order[: int(round(self.share * self.n_users))]] ^= True
        elif self.scenario == "gradual":
            n = min(self.n_users, int(round(self.share * self.n_users)) * (day - 1))
            bizarro[self._user_order[:n]] ^= True
        elif self.scenario in ("meaning", "new-signal"):
            # The words that change: as many good as bad ones, so each pool keeps words in use.
            n = int(round(self.share * self.n_words))
            words = np.concatenate([self._word_order[self._good[self._word_order]][: n // 2],
                                    self._word_order[~self._good[self._word_order]][: n - n // 2]])
            if self.scenario == "meaning" and changed:
                good[words] ^= True
            elif self.scenario == "new-signal" and not changed:
                used[words] = False
        return bizarro, good, used

    def day(self, day: int) -> GroundedSimulation:
        """Day ``day``'s rounds (its own order and user draws) under that day's conventions."""
        sim = GroundedSimulation(self._X, self._y, self.n_users, self.n_words, passes=self.passes,
                                 seed=self.seed * 1000 + day)
        bizarro, good, used = self.conventions(day)
        sim.set_conventions(bizarro=bizarro, good=good, words=used)
        return sim
