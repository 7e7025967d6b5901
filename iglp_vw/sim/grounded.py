"""The paper's grounded simulation (sec. 4.1) from any classification data set.

Each round draws one row (x, label) and a user id out of N. The learner sees the
row's features and the user id, plays an action (a class), and gets back one
word id out of M. The latent reward is 1 iff the action is the label. Unknown to
the learner, the users are "normal" or "bizarro" and the words "good" or "bad":
normal users say a uniformly drawn good word iff the reward is 1 (a bad word
otherwise); bizarro users the opposite.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .play import play
import pandas as pd

DATASETS = ("digits", "synthetic50k", "covertype")


def load_dataset(name: str, seed: int = 0, path: Optional[str] = None):
    """``(X, y)`` for a named data set, features scaled to roughly unit range.

    ``digits``: scikit-learn's bundled 8x8 digits (1,797 rows, 10 classes).
    ``synthetic50k``: ``make_classification`` with 50,000 rows, 10 classes.
    ``covertype``: read from ``path`` (UCI ``covtype.data`` or ``.data.gz``, 54
    features then the class 1..7); no download happens at run time.
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        return data.data / 16.0, data.target.astype(int)
    if name == "synthetic50k":
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=50_000,
            n_features=20,
            n_informative=12,
            n_redundant=4,
            n_classes=10,
            n_clusters_per_class=1,
            class_sep=1.5,
            random_state=seed,
        )
        return X / np.abs(X).max(axis=0), y.astype(int)
    if name == "covertype":
        if path is None:
            raise ValueError("`covertype` needs `path` to a local covtype.data(.gz) file (no download at run time)")
        p = Path(path)
        if not p.exists():
            raise ValueError(f"covertype file {p} does not exist")
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt") as fh:
            frame = pd.read_csv(fh, header=None)
        if frame.shape[1] != 55:
            raise ValueError(f"{p}: expected 55 comma-separated columns (54 features, class), got {frame.shape[1]}")
        labels = frame.iloc[:, -1]
        if not labels.between(1, 7).all():
            raise ValueError(f"{p}: column 55 (class) must be 1..7, line {int((~labels.between(1, 7)).idxmax()) + 1}")
        X = frame.iloc[:, :-1].to_numpy(float)
        X = X / np.maximum(np.abs(X).max(axis=0), 1e-12)
        return X, frame.iloc[:, -1].to_numpy(int) - 1
    raise ValueError(f"`name` must be one of {DATASETS}, got {name!r}")


class GroundedSimulation:
    """Rounds of the grounded simulation over ``passes`` shuffled passes of ``(X, y)``.

    Parameters
    ----------
    X, y
        Features (n, d) and integer labels in [0, K).
    n_users, n_words
        N user ids and M word ids.
    bizarro_share, good_share
        Share of bizarro users and of good words (0.5 in the paper).
    passes
        Shuffled passes over the rows.
    seed
        Seeds user types, word types, row order, user draws and word draws.
    segments
        0: users carry only an id. ``S > 0``: each user also belongs to one of ``S``
        segments (a ``country`` feature of the ``User`` namespace, user ``u`` in
        ``c{u % S}``), and the convention is the segment's: users of odd segments are
        bizarro (``bizarro_share`` is then ignored).
    """

    def __init__(self, X, y, n_users=100, n_words=100, bizarro_share=0.5, good_share=0.5, passes=1, seed=0,
                 segments=0):
        X = np.asarray(X, float)
        y = np.asarray(y, int)
        if len(X) != len(y):
            raise ValueError(f"`X` and `y` must have the same length, got {len(X)} and {len(y)}")
        if not 0 <= bizarro_share <= 1 or not 0 < good_share < 1:
            raise ValueError(
                f"`bizarro_share` must be in [0, 1] and `good_share` in (0, 1), got {bizarro_share}, {good_share}"
            )
        self.n_users, self.n_words, self.passes, self.seed = int(n_users), int(n_words), int(passes), seed
        self.segments = int(segments)
        self.num_actions = int(y.max()) + 1
        rng = np.random.default_rng(seed)
        n_bizarro = int(round(bizarro_share * n_users))
        self.bizarro = np.zeros(n_users, bool)
        self.bizarro[rng.permutation(n_users)[:n_bizarro]] = True
        if self.segments:
            self.bizarro = (np.arange(n_users) % self.segments) % 2 == 1
        n_good = max(1, min(n_words - 1, int(round(good_share * n_words))))
        self.good = np.zeros(n_words, bool)
        self.good[rng.permutation(n_words)[:n_good]] = True
        self._good_ids = np.flatnonzero(self.good)
        self._bad_ids = np.flatnonzero(~self.good)
        self._X, self._y = X, y
        self._rows = [{f"f{j}": float(v) for j, v in enumerate(row) if v != 0.0} for row in X]
        self.actions = [{"Action": {"id": str(k)}} for k in range(self.num_actions)]
        self._word_of = {f"w{i}": i for i in range(n_words)}

    def __len__(self) -> int:
        return self.passes * len(self._y)

    def set_conventions(self, bizarro=None, good=None, words=None) -> None:
        """Change who speaks which convention (``bizarro``: one bool per user), which words
        are good (``good``: one bool per word) or which words are in use (``words``: one bool
        per word, at least one good and one bad in use): the drift worlds of
        :mod:`iglp_vw.sim.drift`."""
        if bizarro is not None:
            bizarro = np.asarray(bizarro, bool)
            if bizarro.shape != (self.n_users,):
                raise ValueError(f"`bizarro` must hold {self.n_users} values, got shape {bizarro.shape}")
            self.bizarro = bizarro.copy()
        if good is not None:
            good = np.asarray(good, bool)
            if good.shape != (self.n_words,):
                raise ValueError(f"`good` must hold {self.n_words} values, got shape {good.shape}")
            self.good = good.copy()
        used = np.ones(self.n_words, bool) if words is None else np.asarray(words, bool)
        if used.shape != (self.n_words,) or not (used & self.good).any() or not (used & ~self.good).any():
            raise ValueError("`words` must hold one bool per word, with a good and a bad word in use")
        self._good_ids = np.flatnonzero(self.good & used)
        self._bad_ids = np.flatnonzero(~self.good & used)

    def __iter__(self) -> Iterator[dict]:
        """Yield rounds: ``context``, ``actions``, ``label``, ``user`` and ``bizarro`` (hidden)."""
        rng = np.random.default_rng(self.seed + 1)
        for _ in range(self.passes):
            order = rng.permutation(len(self._y))
            users = rng.integers(self.n_users, size=len(order))
            for i, u in zip(order, users):
                user = {"id": f"u{u}", "country": f"c{u % self.segments}"} if self.segments else {"id": f"u{u}"}
                yield {
                    "context": {"User": user, "x": self._rows[i]},
                    "actions": self.actions,
                    "label": int(self._y[i]),
                    "user": int(u),
                    "bizarro": bool(self.bizarro[u]),
                }

    def feedback(self, round_: dict, action: int, rng: np.random.Generator):
        """``(feedback, reward)`` for playing ``action`` in ``round_``."""
        reward = int(action == round_["label"])
        says_good = bool(reward) != round_["bizarro"]
        pool = self._good_ids if says_good else self._bad_ids
        word = int(pool[rng.integers(len(pool))])
        return {"Feedback": {"word": f"w{word}"}}, reward

    # Reward functions a baseline CB can be given (same signature as an oracle).
    def true_reward(self, context: dict, feedback: dict) -> float:
        """The latent reward, decoded with the hidden user and word types (the oracle)."""
        user = int(context["User"]["id"][1:])
        word = self._word_of[feedback["Feedback"]["word"]]
        return float(self.good[word] != self.bizarro[user])

    def naive_reward(self, context: dict, feedback: dict) -> float:
        """A good word is a reward for everyone (ignores who said it)."""
        return float(self.good[self._word_of[feedback["Feedback"]["word"]]])


def run(learner, sim: GroundedSimulation, seed: int = 0, limit: Optional[int] = None) -> pd.DataFrame:
    """Play ``learner`` on-policy through ``sim``; one flat row per round.

    The learner needs ``act(context, actions) -> (index, prob)`` and
    ``learn(context, actions, action, prob, feedback) -> inferred reward``.
    """
    frame = play(learner, sim, seed=seed, limit=limit, keep=("user", "bizarro"))
    return frame.rename(columns={"learned": "inferred_reward"})
