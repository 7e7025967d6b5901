"""Baselines with the learner's interface: ``predict``, ``act``, ``learn`` (returns the reward used).

- :class:`RewardCB`: a contextual bandit fed a given reward function of
  (context, feedback): the *oracle* when that function decodes the true reward,
  the *naive* CB when it is a hand-made mapping (e.g. "a good word is reward 1").
- :class:`Uniform`: plays uniformly at random.
- :class:`VWNativeIGL`: VW's own ``--experimental_igl`` reduction, fed DSJSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .base import Estimator
from .cb import WorkspaceCB
from .learner import DEFAULT_CB_ARGS
from .vw import Features, cb_arguments, escape, format_namespaces, split_args

__all__ = ["RewardCB", "Uniform", "VWNativeIGL"]


class RewardCB(Estimator):
    """``--cb_explore_adf`` learning cost ``-reward(context, feedback)``.

    Parameters
    ----------
    num_actions
        Number of actions (kept for a common signature).
    reward
        ``(context, feedback) -> float``.
    cb_args
        As for :class:`~iglp_vw.IGLP` (auto context x action interactions when none given).
    seed
        VW ``--random_seed`` and the sampling of :meth:`act`.
    """

    def __init__(self, num_actions: int, reward: Callable, cb_args: str = DEFAULT_CB_ARGS, seed: int = 0):
        if not callable(reward):
            raise TypeError(f"`reward` must be a callable (context, feedback) -> float, got {reward!r}")
        self.num_actions = num_actions
        self.reward = reward
        self.cb_args = cb_args
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._cb = None

    def _texts(self, context, actions):
        ctx = format_namespaces(context, "context")
        acts = [format_namespaces(a, f"actions[{i}]") for i, a in enumerate(actions)]
        if self._cb is None:
            self._cb = WorkspaceCB(cb_arguments(self.cb_args, ctx, acts, self.seed))
        return ctx, acts

    def predict(self, context: Features, actions: Sequence[Features]) -> list:
        ctx, acts = self._texts(context, actions)
        return self._cb.predict(ctx, acts)

    def learn(self, context, actions, action: int, prob: float, feedback) -> float:
        r = float(self.reward(context, feedback))
        ctx, acts = self._texts(context, actions)
        self._cb.learn(ctx, acts, action, -r, prob)
        return r

    def _write(self, directory: Path) -> None:
        if self._cb is not None:
            self._cb.save(directory / "cb.model")
            (directory / "cb_args.txt").write_text(self._cb.args)

    def _restore(self, directory: Path) -> None:
        if (directory / "cb_args.txt").exists():
            self._cb = WorkspaceCB((directory / "cb_args.txt").read_text(), directory / "cb.model")


class Uniform(Estimator):
    """Plays uniformly at random; learns nothing."""

    def __init__(self, num_actions: int, seed: int = 0):
        self.num_actions = num_actions
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def predict(self, context, actions) -> list:
        return [1.0 / len(actions)] * len(actions)

    def learn(self, context, actions, action, prob, feedback) -> float:
        return 0.0


def _json_namespaces(features) -> dict:
    """API namespaces to VW JSON namespaces (strings stay categorical, numbers numeric), names and
    values escaped as for text (:func:`iglp_vw.vw.escape`)."""
    if not isinstance(features, dict):
        raise TypeError("VWNativeIGL takes dict features, not VW text")
    out = {}
    for ns, feats in features.items():
        # format_namespaces checks every value (finite numbers, known types) and raises if not.
        format_namespaces({ns: feats})
        out[escape(str(ns))] = {
            escape(str(k)): (escape(v) if isinstance(v, str) else (v.item() if isinstance(v, np.generic) else v))
            for k, v in feats.items()
        }
    return out


class VWNativeIGL(Estimator):
    """VW's ``--experimental_igl`` (2 states unless feedback carries ``_definitely_bad``).

    Events go to VW as DSJSON lines with the outcome ``"o"`` placed *before*
    ``"c"`` (VW crashes on the other order). pyvw cannot wrap IGL examples, so
    this drives the low-level calls directly and always finishes what it parsed.
    """

    DEFAULT_ARGS = "--cb_explore_adf --epsilon 0.05 --coin"

    def __init__(self, num_actions: int, vw_args: str = DEFAULT_ARGS, seed: int = 0):
        self.num_actions = num_actions
        self.vw_args = vw_args
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._ws = None

    def _workspace(self, context, actions):
        if self._ws is None:
            ctx, acts = format_namespaces(context), [format_namespaces(a) for a in actions]
            args = cb_arguments(self.vw_args, ctx, acts, self.seed, prefix="--dsjson --experimental_igl")
            from vowpalwabbit import pyvw

            self._args = args
            self._ws = pyvw.Workspace(arg_list=split_args(args))
        return self._ws

    def _write(self, directory: Path) -> None:
        if self._ws is not None:
            self._ws.save(str(directory / "igl.model"))
            (directory / "igl_args.txt").write_text(self._args)

    def _restore(self, directory: Path) -> None:
        if (directory / "igl_args.txt").exists():
            from vowpalwabbit import pyvw

            self._args = (directory / "igl_args.txt").read_text()
            self._ws = pyvw.Workspace(arg_list=["--dsjson", "--quiet", "--preserve_performance_counters",
                                                "-i", str(directory / "igl.model")])

    def _run(self, event: dict, learn: bool, context, actions):
        ws = self._workspace(context, actions)
        exs = ws._parse(json.dumps(event))
        try:
            (ws.learn_multi if learn else ws.predict_multi)(exs)
            return list(exs[0].get_action_scores())
        finally:
            ws._finish_example_multi_ex(exs)

    @staticmethod
    def _context(context, actions):
        c = _json_namespaces(context)
        c["_multi"] = [_json_namespaces(a) for a in actions]
        return c

    def predict(self, context, actions) -> list:
        k = len(actions)
        event = {"c": self._context(context, actions), "a": list(range(k)), "p": [1.0 / k] * k}
        return self._run(event, False, context, actions)

    def learn(self, context, actions, action: int, prob: float, feedback) -> float:
        k = len(actions)
        others = [i for i in range(k) if i != action]
        rest = (1.0 - prob) / max(1, k - 1)
        event = {
            "_label_cost": 0,
            "_label_probability": prob,
            "_labelIndex": action,
            "o": [_json_namespaces(feedback or {})],  # must come before "c"
            "a": [action] + others,
            "c": self._context(context, actions),
            "p": [prob] + [rest] * (k - 1),
        }
        self._run(event, True, context, actions)
        return float("nan")
