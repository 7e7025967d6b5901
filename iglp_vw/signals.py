"""Feedback as a vector of signals, read per user segment (``IGLP(feedback_model="signals")``).

Production feedback is several signals at once (``click dwell:37.2 like``), most users are
seen once or twice, and how a user communicates goes with a segment of theirs (an age
band, a country) more than with their id. The decoder of :mod:`iglp_vw.decoder` keys
(user, whole combination) pairs and splits them by the sign of one or two directions; here
instead:

- **The segment** that carries the convention is found from the data: among the user
  namespace's features with few values (not an id), the one whose values best predict the
  feedback (the largest mutual information between its value and the feedback key, in
  weight under the synthetic uniform policy) (:class:`SegmentPicker`).
- **The IK's code** is the event's signals, each alone and crossed with the segment's
  value (plus the whole combination crossed with it): the IK learns which action each
  signal points to for each segment, and shares what a signal means across combinations.
- **A cell** is (segment value, the feedback's signals but the definitely-negative ones):
  the extreme-event test runs per cell, so the events that are alike but for a
  ``report`` are tested together.
- **Its sign** comes from the definitely-negative signals used as partial labels: an extreme
  cell is negative when the share of its weight that carries a definitely-negative signal
  shows that most of its events are negative (``share / alpha > 1/2``: alpha is the
  propensity of a negative event to be labelled); an event with such a signal is -1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Optional

from .vw import escape

__all__ = ["SegmentPicker", "SignalCells", "feedback_tokens"]

# A user feature with more distinct values than this is an id, not a segment.
MAX_SEGMENT_VALUES = 64
# An extreme cell is negative when this share of its events is estimated negative
# (the labelled share over alpha, the labelling propensity).
NEGATIVE_LEVEL = 0.25
# The segment is chosen again every this many events (and first after them).
PICK_EVERY = 2000


def feedback_tokens(fb_key: str) -> list:
    """The signals of a feedback key (namespace markers dropped), e.g. ``['click', 'dwell:b5']``."""
    return [t for t in fb_key.split() if not t.startswith("|")]


class SegmentPicker:
    """Which user feature carries the convention: mutual information of its value with the
    feedback key, in importance weight. ``value(user_key)`` is the chosen feature's
    ``name=value`` token of a user (``""`` before the first choice, or without one)."""

    def __init__(self):
        self.counts: dict = {}  # feature name -> {value -> {fb key -> weight}}, or None once it is an id
        self.chosen: Optional[str] = None
        self.events = 0

    def update(self, user: str, fb_key: str, weight: float) -> None:
        for token in user.split():
            name, eq, value = token.partition("=")
            if not eq:
                continue
            table = self.counts.get(name, {})
            if table is None:
                continue
            row = table.get(value)
            if row is None:
                if len(table) >= MAX_SEGMENT_VALUES:
                    self.counts[name] = None  # an id
                    continue
                row = table[value] = defaultdict(float)
                self.counts[name] = table
            row[fb_key] += weight
        self.events += 1
        if self.events % PICK_EVERY == 0:
            self.chosen = self._pick()

    def _pick(self) -> Optional[str]:
        best, best_mi = None, 0.0
        for name, table in self.counts.items():
            if not table or len(table) < 2:
                continue
            mi = _mutual_information(table)
            if mi > best_mi:
                best, best_mi = name, mi
        return best

    def value(self, user: str) -> str:
        if self.chosen is None:
            return ""
        prefix = self.chosen + "="
        for token in user.split():
            if token.startswith(prefix):
                return token
        return ""

    def get_state(self) -> dict:
        return {"chosen": self.chosen, "events": self.events,
                "counts": {n: (None if t is None else {v: dict(r) for v, r in t.items()}) for n, t in self.counts.items()}}

    @classmethod
    def from_state(cls, state: dict) -> "SegmentPicker":
        self = cls()
        self.chosen = state["chosen"]
        self.events = int(state["events"])
        for name, table in state["counts"].items():
            self.counts[str(name)] = None if table is None else {
                str(v): defaultdict(float, {str(k): float(w) for k, w in r.items()}) for v, r in table.items()}
        return self


def _mutual_information(table: dict) -> float:
    """I(value; feedback key) of a {value: {key: weight}} table, in nats."""
    total = sum(sum(r.values()) for r in table.values())
    if total <= 0:
        return 0.0
    by_key: dict = defaultdict(float)
    for row in table.values():
        for key, w in row.items():
            by_key[key] += w
    mi = 0.0
    for row in table.values():
        n_v = sum(row.values())
        for key, w in row.items():
            if w > 0:
                mi += w / total * math.log(w * total / (n_v * by_key[key]))
    # Small-sample bias of the plug-in estimate ((cells - 1) / 2N): values x keys seen once add none.
    cells = sum(len(r) for r in table.values())
    return mi - (cells - len(table) - len(by_key) + 1) / (2 * total)


def _coarse(token: str) -> str:
    """A numeric signal's bucket made twice as wide for the cells (``dwell:b6``, ``dwell:b7`` ->
    ``dwell:b6-7``): a cell needs events enough to be tested, the IK's code keeps the detail."""
    name, colon, bucket = token.rpartition(":")
    if colon and bucket.lstrip("-").startswith("b") and bucket.lstrip("-")[1:].isdigit():
        sign = "-" if bucket.startswith("-") else ""
        low = int(bucket.lstrip("-")[1:]) // COARSE * COARSE
        return f"{name}:{sign}b{low}-{low + COARSE - 1}"
    return token


COARSE = 3


class SignalCells:
    """The IK's code, the cell and the cell's sign for events whose feedback is signals.

    ``is_negative(token)``: whether a feedback token is a definitely-negative signal.
    """

    def __init__(self, is_negative, alpha: float = 1.0):
        self.is_negative = is_negative
        self.alpha = float(alpha)
        self.picker = SegmentPicker()
        self.negative: dict = {}  # cell -> [weight, weight with a definitely-negative signal]

    def describe(self, user: str, fb_key: str):
        """``(code, cell, negative)``: the IK's code text, the test's cell, whether the event
        carries a definitely-negative signal."""
        seg = self.picker.value(user)
        tokens = feedback_tokens(fb_key)
        plain = [t for t in tokens if not self.is_negative(t)]
        negative = len(plain) < len(tokens)
        safe = [escape(t.replace(":", "=")) for t in tokens] or ["none"]
        code = safe[:]
        if seg:
            s = escape(seg)
            code += [f"{t}^{s}" for t in safe]
            code.append(f"k^{escape('+'.join(safe))}^{s}")
        cell = f"{seg}|{' '.join(_coarse(t) for t in plain)}"
        return " ".join(code), cell, negative

    def count(self, cell: str, negative: bool, weight: float) -> None:
        """Count an event's weight in its cell (after its reward is inferred)."""
        s = self.negative.get(cell)
        if s is None:
            s = self.negative[cell] = [0.0, 0.0]
        s[0] += weight
        s[1] += weight * negative

    def cell_is_negative(self, cell: str) -> bool:
        s = self.negative.get(cell)
        if not s or s[0] <= 0:
            return False
        return s[1] / s[0] / self.alpha > NEGATIVE_LEVEL

    def get_state(self) -> dict:
        return {"picker": self.picker.get_state(), "negative": self.negative}

    def set_state(self, state: dict) -> None:
        self.picker = SegmentPicker.from_state(state["picker"])
        self.negative = {str(c): [float(v[0]), float(v[1])] for c, v in state["negative"].items()}


# ``feedback_model="auto"`` (the command line's default) takes the signals model when at least
# this share of the first events with feedback carry several signals at once.
SEVERAL_SIGNALS_SHARE = 0.2


def choose_feedback_model(feedbacks) -> tuple:
    """``(model, share)``: ``"signals"`` when at least :data:`SEVERAL_SIGNALS_SHARE` of the given
    feedback values (VW text; ``None`` or the no-feedback marker are passed over) carry two
    signals or more (``|Feedback click:1 dwell:37.2``), else ``"decoder"`` (one word, one
    reaction per event: the decoder's groups of (user, value) pairs); ``share`` is that share.

    >>> choose_feedback_model(["|Feedback click:1 dwell:37.2", "|Feedback click:1", None])
    ('signals', 0.5)
    >>> choose_feedback_model(["|Feedback word=w3", "|Feedback word=w7"])
    ('decoder', 0.0)
    """
    from .vw import feedback_key

    seen = several = 0
    for fb in feedbacks:
        if fb is None:
            continue
        tokens = set(feedback_tokens(feedback_key(str(fb)))) - {"none"}
        if not tokens:
            continue
        seen += 1
        several += len(tokens) > 1
    share = several / seen if seen else 0.0
    return ("signals" if seen and share >= SEVERAL_SIGNALS_SHARE else "decoder"), share
