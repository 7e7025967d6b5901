"""An image-recommendation simulator for the paper's Table 1 (sec. 4.3), with our own numbers.

The paper's production data is not public; this simulator has the structure its Table 1
relies on. Each round a user (id and taste visible in the context) is shown one of K
images (features visible). The latent reward r(user, image) is +1 for the images of the
user's taste, -1 for the images of the taste they dislike, 0 otherwise (rare non-zero
rewards under uniform play). The user answers with one mutually exclusive signal,
``click``, ``like``, ``dislike`` or nothing, drawn from a table that depends on the
user's hidden *communication group* and on r only:

============  ====================  =====================  ==========================
group         r = +1                r = 0                  r = -1
============  ====================  =====================  ==========================
likers        like .6, click .3     click .05              dislike .4, click .2
clickers      click .8, like .1     click .05              click .6, dislike .15
quiet         like .25, click .15   click .02              dislike .6, click .15
============  ====================  =====================  ==========================

(the rest is no feedback). Quiet users say more about what they dislike than about what
they like: under 2 states IGL infers +1 for every extreme event, so for them it learns to
show the images they dislike. A dislike is the "definitely negative" signal of 3-state
IGL, on 15-60% of the r = -1 events depending on the group (the labelling propensity).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .play import draw

SIGNALS = ("click", "like", "dislike")
GROUPS = ("likers", "clickers", "quiet")

# P(signal | group, r) for r = +1, 0, -1; the rest of each row is "no feedback".
FEEDBACK = {
    "likers": {1: {"like": 0.6, "click": 0.3}, 0: {"click": 0.05}, -1: {"dislike": 0.4, "click": 0.2}},
    "clickers": {1: {"click": 0.8, "like": 0.1}, 0: {"click": 0.05}, -1: {"click": 0.6, "dislike": 0.15}},
    "quiet": {1: {"like": 0.25, "click": 0.15}, 0: {"click": 0.02}, -1: {"dislike": 0.6, "click": 0.15}},
}


class ImageRecSimulation:
    """Rounds of image recommendation with click / like / dislike / no feedback.

    Parameters
    ----------
    n_users
        Users; each has a taste (visible) and a communication group (hidden).
    n_images
        K images per round (the action set); ``n_tastes`` tastes, images cycle through them.
    rounds
        Rounds yielded by iteration.
    seed
        Seeds users, groups and the rounds.
    """

    def __init__(self, n_users: int = 300, n_images: int = 10, n_tastes: int = 10, rounds: int = 20000, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.n_users, self.num_actions, self.n_tastes, self.rounds, self.seed = n_users, n_images, n_tastes, rounds, seed
        self.taste = rng.integers(n_tastes, size=n_users)
        self.dislikes = (self.taste + 1 + rng.integers(n_tastes - 1, size=n_users)) % n_tastes
        self.group = rng.integers(len(GROUPS), size=n_users)
        self.image_taste = np.arange(n_images) % n_tastes
        style = rng.normal(size=(n_images, 4))
        self.actions = [
            {"Image": {"taste": f"t{self.image_taste[k]}", **{f"s{j}": round(float(style[k, j]), 4) for j in range(4)}}}
            for k in range(n_images)
        ]

    def __len__(self) -> int:
        return self.rounds

    def latent_reward(self, user: int, action: int) -> int:
        t = self.image_taste[action]
        return 1 if t == self.taste[user] else (-1 if t == self.dislikes[user] else 0)

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng(self.seed + 1)
        for u in rng.integers(self.n_users, size=self.rounds):
            u = int(u)
            yield {
                "context": {"User": {"id": f"u{u}"}, "Taste": {"t": f"t{self.taste[u]}"}},
                "actions": self.actions,
                "user": u,
                "group": GROUPS[self.group[u]],
            }

    def feedback(self, round_: dict, action: int, rng: np.random.Generator):
        """``(feedback, latent reward)``; feedback is ``{"Feedback": {signal: True}}`` or empty."""
        r = self.latent_reward(round_["user"], action)
        signal = draw(FEEDBACK[round_["group"]][r], rng)
        return ({"Feedback": {signal: True}} if signal else {}), r

    @staticmethod
    def hand_engineered_reward(context: dict, feedback: dict) -> float:
        """The production baseline's multi-task reward: click + 2 like - 2 dislike (our weights)."""
        fb = feedback.get("Feedback", {})
        return float(fb.get("click", 0)) + 2.0 * fb.get("like", 0) - 2.0 * fb.get("dislike", 0)
