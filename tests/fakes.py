"""Stand-ins for the VW workspaces, for the suite's fast path (``python -m pytest -m fast``).

The logic that is ours (the decoder, the group test, the reward, the diagnostics, the input
checks) runs on these in milliseconds, as coba tests its mediator with a mocked learner;
the tests of what VW learns use the real workspaces. Both stand-ins keep the interface of
the classes they replace (:class:`iglp_vw.cb.WorkspaceCB`, :class:`iglp_vw.ik.InverseKinematics`).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np


class FakeCB:
    """A CB that plays uniformly and remembers what it was taught (its VW arguments too)."""

    def __init__(self, args: str, model_file=None):
        self.args = args
        self.learned: list = []
        if model_file is not None:
            self.learned = json.loads(Path(model_file).read_text())["learned"]

    def predict(self, shared, actions) -> list:
        return [1.0 / len(actions)] * len(actions)

    def learn(self, shared, actions, index, cost, prob) -> None:
        self.learned.append([index, cost, prob])

    def save(self, path) -> None:
        Path(path).write_text(json.dumps({"args": self.args, "learned": self.learned}))

    def close(self) -> None:
        pass


class CountingIK:
    """P̂(a | x, s) by counting importance-weighted actions per (context text, group code),
    Laplace-smoothed, and a uniform prior P̂(a | x): exact for few distinct contexts."""

    def __init__(self, num_actions=None, extra_args=None, seed: int = 0, _counts=None, **_):
        self.num_actions, self.extra_args, self.seed = num_actions, extra_args, seed
        self.counts = defaultdict(lambda: defaultdict(float), {c: defaultdict(float, {int(a): w for a, w in v.items()})
                                                              for c, v in (_counts or {}).items()})

    def _k(self, action_texts) -> int:
        return len(action_texts) if action_texts else int(self.num_actions)

    def predict(self, context_text, code, action_texts=()):
        k = self._k(action_texts)
        seen = self.counts[f"{context_text} {code}"]
        weights = np.array([1.0 + seen.get(a, 0.0) for a in range(k)])
        return weights / weights.sum(), np.full(k, 1.0 / k)

    def learn(self, context_text, code, action, weight, action_texts=()):
        out = self.predict(context_text, code, action_texts)
        self.counts[f"{context_text} {code}"][action] += weight
        return out

    def prepare(self, context_text, action_texts=()) -> None:
        pass

    def save(self, ik_path, prior_path) -> None:
        Path(ik_path).write_text(json.dumps({c: dict(v) for c, v in self.counts.items()}))
        Path(prior_path).write_text("{}")

    @classmethod
    def load(cls, num_actions, extra_args, seed, ik_path, prior_path, **_) -> "CountingIK":
        return cls(num_actions, extra_args, seed, _counts=json.loads(Path(ik_path).read_text()))
