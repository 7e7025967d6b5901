"""What every learner here shares: the :class:`Learner` protocol and the :class:`Estimator` base.

A learner plays and learns one round at a time::

    pmf = learner.predict(context, actions)          # a list of len(actions) floats
    index, prob = learner.act(context, actions)      # sampled with the learner's seeded generator
    value = learner.learn(context, actions, index, prob, feedback)   # the reward it learned from

:class:`Estimator` gives the rest, river-style: ``params`` read from the constructor's
signature (so ``type(x)(**x.params)`` and :meth:`Estimator.clone` build an equal, untrained
learner), a ``repr`` from them, :meth:`Estimator.act`, and pickling (``pickle``,
``copy.deepcopy``) of a trained learner, VW models included, through the learner's own
``_write(directory)`` / ``_restore(directory)``.
"""

from __future__ import annotations

import inspect
import math
import os
import tempfile
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["Learner", "Estimator", "sample_pmf"]


def sample_pmf(rng: np.random.Generator, pmf: Sequence[float]):
    """Draw ``(index, prob)`` from ``pmf`` with ``rng`` (one uniform draw; robust to rounding)."""
    u = rng.random() * sum(pmf)
    acc = 0.0
    for i, p in enumerate(pmf):
        acc += p
        if u < acc:
            return i, p
    i = max(range(len(pmf)), key=lambda j: pmf[j])
    return i, pmf[i]


@runtime_checkable
class Learner(Protocol):
    """A contextual-bandit learner driven one round at a time (IGL-P and every baseline)."""

    def predict(self, context, actions) -> list: ...

    def act(self, context, actions) -> tuple: ...

    def learn(self, context, actions, action: int, prob: float, feedback) -> float: ...


class Estimator:
    """Base of the learners: params from the signature, ``clone``, ``repr``, ``act``, pickling.

    Subclasses store each constructor argument under its own name, keep a seeded
    ``self._rng``, and (to be picklable once trained) implement ``_write(directory)``
    and ``_restore(directory)`` for their models.
    """

    @classmethod
    def param_names(cls) -> list:
        return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]

    @property
    def params(self) -> dict:
        """The constructor's arguments as given: ``type(self)(**self.params)`` is an untrained copy."""
        return {name: getattr(self, name) for name in self.param_names()}

    def clone(self):
        """A new, untrained learner with the same parameters."""
        return type(self)(**self.params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    def act(self, context, actions):
        """Sample an action from the pmf with the learner's seeded generator: ``(index, prob)``."""
        return sample_pmf(self._rng, self.predict(context, actions))

    # ---------------------------------------------------------------- batches
    def learn_many(self, events) -> np.ndarray:
        """:meth:`learn` on each event in order (river's name); the same models as the loop.

        ``events``: a pandas DataFrame with columns ``context, actions, action, prob`` and
        optionally ``feedback``, or an iterable of such dicts, of ``(context, actions, action,
        prob, feedback)`` tuples, or of :class:`~iglp_vw.logs.Event` (a log read by
        :func:`~iglp_vw.logs.read_events`; events without a label are skipped). Returns each
        learned event's return value (IGLP: the inferred reward).
        """
        out = []
        for where, row in _event_rows(events, learn=True, numbered=True):
            try:
                out.append(self.learn(*row))
            except (ValueError, TypeError) as err:
                raise _at(err, where) from err
        return np.asarray(out, float)

    def predict_many(self, events) -> list:
        """:meth:`predict` on each ``(context, actions)`` (same inputs as :meth:`learn_many`; only
        ``context`` and ``actions`` are read): one pmf per event."""
        return [self.predict(context, actions) for context, actions, *_ in _event_rows(events, learn=False)]

    # ---------------------------------------------------------------- pickling
    def _write(self, directory: Path) -> None:
        """Write the learner's models and state into ``directory`` (for pickling)."""

    def _restore(self, directory: Path) -> None:
        """Read back what :meth:`_write` wrote, on a freshly constructed learner."""

    def __getstate__(self):
        with tempfile.TemporaryDirectory(prefix="iglp-pickle-") as tmp:
            self._write(Path(tmp))
            files = {name: (Path(tmp) / name).read_bytes() for name in sorted(os.listdir(tmp))}
        return {"params": self.params, "files": files, "rng": self._rng.bit_generator.state}

    def __setstate__(self, state) -> None:
        self.__init__(**state["params"])
        with tempfile.TemporaryDirectory(prefix="iglp-pickle-") as tmp:
            for name, data in state["files"].items():
                (Path(tmp) / name).write_bytes(data)
            self._restore(Path(tmp))
        self._rng.bit_generator.state = state["rng"]


_EVENT_FIELDS = ("context", "actions", "action", "prob", "feedback")


def _at(err: Exception, where: str) -> Exception:
    """``err`` (a ValueError or TypeError from one event) with the event it came from first."""
    return (TypeError if isinstance(err, TypeError) else ValueError)(f"{where}: {err}")


def _no_feedback(value):
    """pandas' and numpy's missing values (NaN, None, NA) are "no feedback", as ``None`` is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _event_rows(events, learn: bool, numbered: bool = False):
    """``(context, actions, action, prob, feedback)`` per event of a DataFrame, dicts, tuples or Events;
    ``numbered``: ``(where, row)`` pairs, ``where`` naming the event for an error message (the
    DataFrame's row and index label, the position in a list, a logged event's file and line)."""
    import pandas as pd

    if isinstance(events, pd.DataFrame):
        need = _EVENT_FIELDS[:4] if learn else _EVENT_FIELDS[:2]
        missing = [c for c in need if c not in events.columns]
        if missing:
            raise ValueError(f"the DataFrame has no column(s) {missing} (columns: {list(events.columns)}; "
                             f"needed: {list(need)}, and {_EVENT_FIELDS[4]!r} if there is feedback)")
        columns = [events[c] if c in events.columns else [None] * len(events) for c in _EVENT_FIELDS]
        for i, (label, row) in enumerate(zip(events.index, zip(*columns))):
            row = row[:4] + (_no_feedback(row[4]),)
            yield ((f"row {i}" if label == i else f"row {i} (index {label!r})"), row) if numbered else row
        return
    for i, event in enumerate(events):
        where = f"event {i}"
        if hasattr(event, "context") and hasattr(event, "actions") and hasattr(event, "feedback"):  # an Event
            if learn and event.action is None:
                continue
            row = event.context, event.actions, event.action, event.prob, event.feedback
            if getattr(event, "path", None) is not None:
                where = f"event {i} ({event.path}:{event.line})"
        elif isinstance(event, dict):
            if learn and any(k not in event for k in _EVENT_FIELDS[:4]):
                raise ValueError(f"event {i}: needs keys {list(_EVENT_FIELDS[:4])}, got {sorted(event)}")
            row = tuple(event.get(k) for k in _EVENT_FIELDS)
        elif isinstance(event, (tuple, list)) and (len(event) in (4, 5) or (not learn and len(event) >= 2)):
            row = tuple(event)[:5]
            row = row + (None,) * (5 - len(row))
        else:
            raise ValueError(f"event {i}: expected a dict, a (context, actions, action, prob, feedback) tuple or an "
                             f"Event, got {type(event).__name__}")
        row = row[:4] + (_no_feedback(row[4]),)
        yield (where, row) if numbered else row
