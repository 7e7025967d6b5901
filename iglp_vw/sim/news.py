"""A news-recommendation simulator for the paper's Fig. 4 (sec. 4.2), with our own numbers.

The paper's simulator is built on Facebook posts of three outlets (not bundled here). This
one keeps its structure: readers of three outlets (``fox``, ``huffpost``, ``time``) are the
context (outlet and reader id visible); the action set is a curated selection of K articles
with a post type and a text-embedding-like vector as features; each outlet's readers have a
latent reward r in {-1, 0, +1} per article (2 liked, 2 disliked, the rest neutral); and
they react with one of ``like, love, haha, wow, sad, angry, comment, share`` or nothing,
from a table that depends on the outlet and r only (numbers ours, chosen so that the
outlets express themselves differently, as the paper's Fig. 3 shows):

==========  ================================  ============  ================================
outlet      r = +1                            r = 0         r = -1
==========  ================================  ============  ================================
fox         like .35 love .15 share .10       like .05      angry .30 haha .15 comment .25
            comment .05
huffpost    love .30 like .20 wow .10         like .04      sad .30 angry .10 comment .10
            share .05
time        wow .25 comment .20 love .10      wow .03       comment .20 angry .10 sad .05
            share .10
==========  ================================  ============  ================================

By default the action set is the same catalogue in the same order every round, as the
default IK (``--oaa K``) needs; ``shuffle=True`` reorders it every round.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .play import draw

OUTLETS = ("fox", "huffpost", "time")
REACTIONS = ("like", "love", "haha", "wow", "sad", "angry", "comment", "share")
EMOJI = ("love", "haha", "wow", "sad", "angry")
POST_TYPES = ("link", "video", "photo", "status", "event")

FEEDBACK = {
    "fox": {1: {"like": 0.35, "love": 0.15, "share": 0.10, "comment": 0.05}, 0: {"like": 0.05},
            -1: {"angry": 0.30, "haha": 0.15, "comment": 0.25}},
    "huffpost": {1: {"love": 0.30, "like": 0.20, "wow": 0.10, "share": 0.05}, 0: {"like": 0.04},
                 -1: {"sad": 0.30, "angry": 0.10, "comment": 0.10}},
    "time": {1: {"wow": 0.25, "comment": 0.20, "love": 0.10, "share": 0.10}, 0: {"wow": 0.03},
             -1: {"comment": 0.20, "angry": 0.10, "sad": 0.05}},
}


class NewsSimulation:
    """Rounds of news recommendation to readers of three outlets.

    Parameters
    ----------
    n_articles
        K, the curated selection (action set).
    readers_per_outlet
        Reader ids per outlet (visible in the context as ``User``).
    rounds
        Rounds yielded by iteration.
    seed
        Seeds the articles, the latent rewards and the rounds.
    shuffle
        Present the articles in a new order every round (positions then mean nothing:
        only an IK on the articles' features, ``IGLP(ik_model="features")``, can learn).
    """

    def __init__(self, n_articles: int = 12, readers_per_outlet: int = 50, rounds: int = 30000, seed: int = 0,
                 shuffle: bool = False):
        rng = np.random.default_rng(seed)
        self.num_actions, self.readers, self.rounds, self.seed = n_articles, readers_per_outlet, rounds, seed
        self.shuffle = shuffle
        # Latent reward per (outlet, article): 2 liked, 2 disliked, the rest neutral; outlets differ.
        self.reward = np.zeros((len(OUTLETS), n_articles), int)
        for o in range(len(OUTLETS)):
            order = rng.permutation(n_articles)
            self.reward[o, order[:2]] = 1
            self.reward[o, order[2:4]] = -1
        lean = rng.normal(size=(n_articles, 6))
        types = rng.integers(len(POST_TYPES), size=n_articles)
        self.actions = [
            {"Post": {"type": POST_TYPES[types[k]]}, "Text": {f"e{j}": round(float(lean[k, j]), 4) for j in range(6)}}
            for k in range(n_articles)
        ]

    def __len__(self) -> int:
        return self.rounds

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng(self.seed + 1)
        for _ in range(self.rounds):
            o = int(rng.integers(len(OUTLETS)))
            reader = int(rng.integers(self.readers))
            order = rng.permutation(self.num_actions) if self.shuffle else np.arange(self.num_actions)
            yield {
                "context": {"User": {"id": f"{OUTLETS[o]}-{reader}"}, "Outlet": {"name": OUTLETS[o]}},
                "actions": [self.actions[i] for i in order] if self.shuffle else self.actions,
                "outlet": OUTLETS[o],
                "outlet_index": o,
                "order": order,
            }

    def latent_reward(self, round_: dict, action: int) -> int:
        return int(self.reward[round_["outlet_index"], round_["order"][action]])

    def feedback(self, round_: dict, action: int, rng: np.random.Generator):
        """``(feedback, latent reward)``: ``{"Feedback": {reaction: True}}``, or ``{}`` for none."""
        r = self.latent_reward(round_, action)
        reaction = draw(FEEDBACK[round_["outlet"]][r], rng)
        return ({"Feedback": {reaction: True}} if reaction else {}), r

    @staticmethod
    def emoji_reward(context: dict, feedback: dict) -> float:
        """CB-emoji: an emoji reaction is worth 5 likes."""
        fb = feedback.get("Feedback", {})
        return float(fb.get("like", 0)) + 5.0 * sum(fb.get(e, 0) for e in EMOJI)

    @staticmethod
    def comment_reward(context: dict, feedback: dict) -> float:
        """CB-comment: comments are the reward ("meaningful social interactions")."""
        return float(feedback.get("Feedback", {}).get("comment", 0))
