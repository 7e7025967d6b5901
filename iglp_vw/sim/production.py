"""A production-like recommender log: a catalogue, long-tail users, styles bound to segments.

What a feed, a video or a shop app logs, with the reward hidden:

- **Catalogue.** ``n_items`` items, each with an ``id``, a ``genre`` and a 6-d embedding
  (``e0`` .. ``e5``, as an upstream model would give), and a Zipf popularity. Each event
  offers 5 to 12 candidates drawn from the catalogue (popular items more often), in random
  order, so candidate sets change from event to event.
- **Users.** ``n_users`` ids with Zipf activity (most ids are seen once or twice), each with
  segment features (``age`` band, ``country``, ``platform``) in the ``User`` namespace and
  a 6-d taste profile (``p0`` .. ``p5``) in the ``x`` namespace.
- **Latent reward.** r = +1 when the item's embedding points along the user's taste (the
  top ~10% of (user, item) pairs), -1 when it points against it (the bottom ~10%), else 0.
- **Communication styles**, each the dominant style of one age band (``style_share`` of its
  users; the rest get a style at random), each giving several signals per event:

  ===============  =================================================================
  ``engaged``      clicks, likes and watches long what it enjoys; dislikes the rest
  ``skimmer``      clicks on nearly everything and leaves fast; saves what it enjoys,
                   hides what it does not
  ``hatewatcher``  likes what it enjoys from the feed but watches briefly; clicks and
                   watches to the end what it dislikes (and shares it), and says so
                   with ``report`` only some of the time: a click/dwell formula
                   rewards exactly what it dislikes
  ``quiet``        few signals: a click and a long watch when it enjoys an item
  ===============  =================================================================

  The feedback is a VW namespace ``|Feedback click dwell:37.2 like``: present signals
  ``click``, ``like``, ``share``, ``save``, ``dislike``, ``hide``, ``report`` and the watch
  time ``dwell`` in seconds (only after a click). ``dislike``, ``hide`` and ``report`` are
  definitely negative: given only when r = -1.
- **Logging policy.** A popularity heuristic (softmax of the candidates' log popularity,
  unrelated to the reward) with ``explore`` uniform exploration; its probabilities are
  logged.

``ProductionWorld(seed)`` is the world; :meth:`ProductionWorld.rounds` yields events,
:meth:`ProductionWorld.feedback` the user's answer, and :func:`write_production_log` a
logged trace (VW text ADF or DSJSON) with a truth file. :func:`formula_reward` is the
hand-made reward a team would write: ``click + like + share + save + [dwell > 30] -
2 (dislike + hide + report)``.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from ..vw import adf_lines, cb_label, format_namespaces

__all__ = ["ProductionWorld", "STYLES", "SIGNALS", "NEGATIVE_SIGNALS", "formula_reward", "click_reward",
           "write_production_log"]

STYLES = ("engaged", "skimmer", "hatewatcher", "quiet")
SIGNALS = ("click", "like", "share", "save", "dislike", "hide", "report")
NEGATIVE_SIGNALS = ("dislike", "hide", "report")
AGES = ("18-24", "25-34", "35-49", "50+")
# Age band -> its dominant style (the rest of the band's users get a style at random).
_DOMINANT = {"18-24": "skimmer", "25-34": "engaged", "35-49": "hatewatcher", "50+": "quiet"}
COUNTRIES = ("us", "in", "br", "de", "jp", "ng")
PLATFORMS = ("ios", "android", "web")
DIM = 6

# style -> reward (+1, 0, -1) -> (P(signal) for each of SIGNALS, median dwell in seconds after a click)
_EMIT = {
    "engaged": {
        1: ((0.90, 0.50, 0.10, 0.05, 0.00, 0.00, 0.00), 90.0),
        0: ((0.25, 0.02, 0.00, 0.01, 0.00, 0.00, 0.00), 15.0),
        -1: ((0.35, 0.00, 0.00, 0.00, 0.40, 0.10, 0.00), 6.0),
    },
    "skimmer": {
        1: ((0.80, 0.05, 0.15, 0.50, 0.00, 0.00, 0.00), 25.0),
        0: ((0.60, 0.01, 0.00, 0.02, 0.00, 0.00, 0.00), 8.0),
        -1: ((0.60, 0.00, 0.00, 0.00, 0.00, 0.30, 0.00), 4.0),
    },
    "hatewatcher": {
        1: ((0.50, 0.60, 0.00, 0.05, 0.00, 0.00, 0.00), 20.0),
        0: ((0.15, 0.01, 0.00, 0.01, 0.00, 0.00, 0.00), 10.0),
        -1: ((0.90, 0.00, 0.20, 0.00, 0.00, 0.00, 0.25), 120.0),
    },
    "quiet": {
        1: ((0.50, 0.00, 0.00, 0.10, 0.00, 0.00, 0.00), 60.0),
        0: ((0.10, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00), 20.0),
        -1: ((0.10, 0.00, 0.00, 0.00, 0.00, 0.05, 0.00), 5.0),
    },
}


def _signals(feedback) -> dict:
    if not feedback:
        return {}
    fb = feedback.get("Feedback", feedback) if isinstance(feedback, dict) else {}
    return fb if isinstance(fb, dict) else {}


def formula_reward(context, feedback) -> float:
    """The hand-made reward: ``click + like + share + save + [dwell > 30] - 2 (dislike + hide + report)``."""
    s = _signals(feedback)
    good = sum(1.0 for k in ("click", "like", "share", "save") if k in s) + float(s.get("dwell", 0.0) > 30)
    return good - 2.0 * sum(1.0 for k in NEGATIVE_SIGNALS if k in s)


def click_reward(context, feedback) -> float:
    """A click is a reward: what a CTR-optimising recommender learns."""
    return float("click" in _signals(feedback))


class ProductionWorld:
    """The world: catalogue, users, their tastes and styles (all drawn from ``seed``).

    Parameters
    ----------
    n_items, n_users
        Catalogue size and number of user ids.
    style_share
        Share of an age band's users who have its dominant style.
    zipf
        Exponent of the users' activity (and of the items' popularity).
    min_candidates, max_candidates
        Candidate set sizes, uniform in between.
    explore
        The logging policy's uniform exploration.
    seed
        Seeds the world; the events' stream has its own seed (:meth:`rounds`).
    """

    def __init__(self, n_items=400, n_users=20_000, style_share=0.8, zipf=1.1, min_candidates=5, max_candidates=12,
                 explore=0.25, seed=0):
        if not 0 <= style_share <= 1:
            raise ValueError(f"`style_share` must be in [0, 1], got {style_share!r}")
        if not 2 <= min_candidates <= max_candidates <= n_items:
            raise ValueError("need 2 <= min_candidates <= max_candidates <= n_items")
        if not 0 < explore <= 1:
            raise ValueError(f"`explore` must be in (0, 1], got {explore!r}")
        self.n_items, self.n_users, self.seed = int(n_items), int(n_users), int(seed)
        self.min_candidates, self.max_candidates, self.explore = int(min_candidates), int(max_candidates), float(explore)
        rng = np.random.default_rng([seed, 101])
        self.item_emb = rng.normal(size=(n_items, DIM))
        self.item_genre = rng.integers(12, size=n_items)
        ranks = rng.permutation(n_items) + 1.0
        self.item_pop = ranks ** -zipf
        self.item_pop /= self.item_pop.sum()
        self.taste = rng.normal(size=(n_users, DIM)) / np.sqrt(DIM)
        self.age = rng.integers(len(AGES), size=n_users)
        self.country = rng.integers(len(COUNTRIES), size=n_users)
        self.platform = rng.integers(len(PLATFORMS), size=n_users)
        dominant = np.array([STYLES.index(_DOMINANT[a]) for a in AGES])[self.age]
        keep = rng.random(n_users) < style_share
        self.style = np.where(keep, dominant, rng.integers(len(STYLES), size=n_users))
        activity = (rng.permutation(n_users) + 1.0) ** -zipf
        self.activity = activity / activity.sum()
        # Reward thresholds: the top / bottom 10% of (user, item) scores.
        scores = (self.taste[rng.integers(n_users, size=20_000)] * self.item_emb[rng.integers(n_items, size=20_000)]).sum(1)
        self.hi, self.lo = np.quantile(scores, [0.9, 0.1])
        self.items = [self._item(i) for i in range(n_items)]
        self.item_texts = [format_namespaces(item) for item in self.items]
        self._emit = {(s, r): (np.array(p), d) for s, by_r in _EMIT.items() for r, (p, d) in by_r.items()}

    def _item(self, i: int) -> dict:
        emb = {f"e{j}": round(float(v), 3) for j, v in enumerate(self.item_emb[i])}
        return {"Action": {"id": f"i{i}", "genre": f"g{int(self.item_genre[i])}", **emb}}

    def context(self, u: int) -> dict:
        return {
            "User": {"id": f"u{u}", "age": AGES[self.age[u]], "country": COUNTRIES[self.country[u]],
                     "platform": PLATFORMS[self.platform[u]]},
            "x": {f"p{j}": round(float(v), 3) for j, v in enumerate(self.taste[u])},
        }

    def reward(self, u: int, items) -> np.ndarray:
        """The latent reward (+1 / 0 / -1) of each item for user ``u``."""
        s = self.item_emb[np.asarray(items)] @ self.taste[u]
        return np.where(s > self.hi, 1, np.where(s < self.lo, -1, 0))

    def rounds(self, n: int, seed: int = 0) -> Iterator[dict]:
        """``n`` events: ``context``, ``actions`` (features), ``items``, ``user``, ``style``, ``rewards``
        (hidden: each candidate's latent reward) and ``pmf`` (the logging policy's)."""
        rng = np.random.default_rng([self.seed, 202, seed])
        users = rng.choice(self.n_users, size=n, p=self.activity)
        sizes = rng.integers(self.min_candidates, self.max_candidates + 1, size=n)
        weights = np.sqrt(self.item_pop)
        weights = weights / weights.sum()
        for u, k in zip(users, sizes):
            items = rng.choice(self.n_items, size=int(k), replace=False, p=weights)
            pop = np.log(self.item_pop[items])
            pmf = np.exp(pop - pop.max())
            pmf = (1 - self.explore) * pmf / pmf.sum() + self.explore / k
            yield {
                "context": self.context(int(u)),
                "actions": [self.items[i] for i in items],
                "action_texts": [self.item_texts[i] for i in items],
                "items": items,
                "user": int(u),
                "style": STYLES[self.style[u]],
                "rewards": self.reward(int(u), items),
                "pmf": pmf / pmf.sum(),
            }

    def feedback(self, round_: dict, action: int, rng: np.random.Generator):
        """``(feedback, reward)`` for showing candidate ``action``: the signals as a ``Feedback``
        namespace (``None`` when the user did nothing) and the latent reward."""
        r = int(round_["rewards"][action])
        probs, dwell = self._emit[(round_["style"], r)]
        fired = rng.random(len(SIGNALS)) < probs
        out: dict = {}
        for name, on in zip(SIGNALS, fired):
            if on:
                out[name] = True
        if "click" in out:
            out["dwell"] = round(float(dwell * np.exp(0.6 * rng.normal())), 1)
        if not out:
            return None, r
        fb = {k: (1 if v is True else v) for k, v in out.items()}
        return {"Feedback": fb}, r


def write_production_log(world: ProductionWorld, path, events: int, fmt: str = "text", seed: int = 0,
                         truth=None) -> int:
    """Log ``events`` events of the popularity policy in ``world`` (VW text ADF or DSJSON).

    The logged cost is ``-formula_reward`` (what the team's current recommender learns).
    ``truth``: CSV with each event's first ``line``, ``user``, ``style``, ``age``, ``action``,
    the logged action's ``reward`` and ``best`` (the best candidate's reward). A ``.gz`` path
    is written gzipped. Returns the number of events.
    """
    if fmt not in ("text", "dsjson"):
        raise ValueError(f"`fmt` must be 'text' or 'dsjson', got {fmt!r}")
    rng = np.random.default_rng([world.seed, 303, seed])
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    truth_fh = open(truth, "w", newline="") if truth else None
    writer = csv.writer(truth_fh) if truth_fh else None
    if writer:
        writer.writerow(["event", "line", "user", "style", "age", "action", "reward", "best"])
    n, line = 0, 1
    try:
        with opener(path, "wt") as out:
            for rnd in world.rounds(events, seed=seed):
                pmf = rnd["pmf"]
                action = int(rng.choice(len(pmf), p=pmf))
                prob = float(pmf[action])
                feedback, reward = world.feedback(rnd, action, rng)
                cost = -formula_reward(rnd["context"], feedback)
                if fmt == "text":
                    shared = format_namespaces(rnd["context"])
                    if feedback:
                        shared = f"{shared} {format_namespaces(feedback)}"
                    lines = adf_lines(shared, rnd["action_texts"], action, cb_label(cost, prob))
                    out.write("\n".join(lines) + "\n\n")
                    written = len(lines) + 1
                else:
                    out.write(_dsjson(rnd, action, prob, cost, feedback) + "\n")
                    written = 1
                if writer:
                    u = rnd["user"]
                    writer.writerow([n, line, u, rnd["style"], AGES[world.age[u]], action, reward,
                                     int(rnd["rewards"].max())])
                line += written
                n += 1
    finally:
        if truth_fh:
            truth_fh.close()
    return n


def _dsjson(rnd, action, prob, cost, feedback) -> str:
    k = len(rnd["pmf"])
    order = [action] + [i for i in range(k) if i != action]
    outcomes = []
    for name, value in (_signals(feedback) or {}).items():
        o: dict = {"v": {name: value}}
        if name in NEGATIVE_SIGNALS:
            o["_definitely_bad"] = True
        outcomes.append(o)
    obj = {
        "_label_cost": cost,
        "_label_probability": prob,
        "_label_Action": action + 1,
        "_labelIndex": action,
        "o": outcomes,
        "a": [i + 1 for i in order],
        "c": {**rnd["context"], "_multi": rnd["actions"]},
        "p": [float(rnd["pmf"][i]) for i in order],
    }
    return json.dumps(obj, separators=(",", ":"))
