"""IGL-P as a `coba <https://github.com/VowpalWabbit/coba>`_ learner.

    from coba import Environments, Experiment
    from iglp_vw.integrations.coba import IGLPLearner

    envs = Environments.from_supervised(X, y, label_type="c").grounded(100, 50, 100, 50, seed=1)
    Experiment(envs, [IGLPLearner(seed=0)]).run()

coba's grounded evaluator hands the learner contexts with the user id in front (a tuple
``(userid, *features)``, a dict with ``userid``, or the id alone) and, in ``learn``, the
user's *feedback* (a word) in place of the reward; :class:`IGLPLearner` turns these into
IGLP's namespaces (``User``, ``x``, ``Action``, ``Feedback``), draws the action itself with
its own seeded generator (coba's sampler is seeded in a way that couples with the
environment's user draws) and passes the action list and the chosen index from
``predict`` to ``learn`` through coba's kwargs. Any action values work (indices, strings,
one-hot tuples), in any number and order per interaction. coba is not needed to import
this module: coba calls learners by duck typing (``pip install 'iglp-vw[coba]'`` to run it).
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Mapping, Optional

from ..learner import IGLP

__all__ = ["IGLPLearner"]


class IGLPLearner:
    """A coba learner running :class:`~iglp_vw.IGLP` (keyword arguments are IGLP's).

    ``user``: where the user id is: ``"auto"`` (coba's grounded layout: the first element
    of a tuple context, the ``userid`` key of a dict, or the context itself when it is a
    single value) or ``None`` (no user: every context is one unknown user).
    """

    def __init__(self, user: Optional[str] = "auto", **iglp_params: Any):
        if user not in ("auto", None):
            raise ValueError(f"`user` must be 'auto' or None, got {user!r}")
        self.user = user
        self.iglp_params = dict(iglp_params)
        self.learner = IGLP(**self.iglp_params)

    @property
    def params(self) -> Mapping[str, Any]:
        """coba's learner columns: the family and IGLP's arguments that differ from the defaults."""
        defaults = {k: p.default for k, p in inspect.signature(IGLP).parameters.items()}
        changed = {k: v for k, v in self.learner.params.items() if k != "cb" and v != defaults.get(k)}
        return {"family": "IGL-P (iglp-vw)", **{k: _plain(v) for k, v in changed.items()}}

    # -------------------------------------------------------------- coba's calls
    def predict(self, context, actions):
        ctx = self._context(context)
        acts = [_action(a) for a in actions]
        pmf = self.learner.predict(ctx, acts)
        index, prob = self.learner.sample(pmf)
        return actions[index], prob, {"iglp": (ctx, acts, index)}

    def learn(self, context, action, reward, probability, iglp=None) -> None:
        if iglp is None:  # called without a predict of ours (a logged interaction)
            raise ValueError("IGLPLearner.learn needs the kwargs its predict returned")
        ctx, acts, index = iglp
        self.learner.learn(ctx, acts, index, probability, _feedback(reward))

    def score(self, context, actions, action):
        pmf = self.learner.predict(self._context(context), [_action(a) for a in actions])
        return pmf[list(actions).index(action)]

    # -------------------------------------------------------------- conversions
    def _context(self, context) -> dict:
        user, features = None, context
        if self.user == "auto":
            if isinstance(context, dict) and "userid" in context:
                user = context["userid"]
                features = {k: v for k, v in context.items() if k != "userid"}
            elif isinstance(context, (tuple, list)) and context:
                user, features = context[0], context[1:]
                if len(features) == 1 and isinstance(features[0], (tuple, list, dict)):
                    features = features[0]
            elif not isinstance(context, (tuple, list, dict)):
                user, features = context, None
        out = {}
        if user is not None:
            out["User"] = {"id": str(user)}
        x = _features(features)
        if x:
            out["x"] = x
        return out


def _features(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): (v if isinstance(v, (numbers.Number, str)) else str(v)) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return {f"f{i}": (v if isinstance(v, (numbers.Number, str)) else str(v)) for i, v in enumerate(value)}
    return {"f0": value if isinstance(value, (numbers.Number, str)) else str(value)}


def _action(value) -> dict:
    if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Number) for v in value):
        return {"Action": {f"a{i}": v for i, v in enumerate(value)}}  # one-hot or dense features
    if isinstance(value, dict):
        return {"Action": _features(value)}
    return {"Action": {"id": str(value)}}


def _feedback(value) -> dict:
    if isinstance(value, (tuple, list)):  # coba's grounded feedback: a word id, (17,): categorical
        return {"Feedback": {"word": "_".join(map(str, value))}}
    if isinstance(value, bool):
        return {"Feedback": {"signal": int(value)}}
    if isinstance(value, numbers.Number):  # a bare number is a value (bucketed by the decoder)
        return {"Feedback": {"value": value}}
    return {"Feedback": {"word": str(value)}}


def _plain(v):
    return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
