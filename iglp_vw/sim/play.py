"""On-policy play of any learner through any simulator that has ``feedback(round, action, rng)``."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["play", "draw"]


def draw(table: dict, rng: np.random.Generator):
    """One key of ``table`` (key -> probability, summing to at most 1), or ``None`` for the rest."""
    u = rng.random()
    acc = 0.0
    for key, p in table.items():
        acc += p
        if u < acc:
            return key
    return None


def play(learner, sim, seed: int = 0, limit: Optional[int] = None, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Rounds of ``act`` / ``feedback`` / ``learn``; one row per round.

    Columns: ``t``, ``action``, ``prob``, ``reward`` (the latent reward ``sim.feedback``
    returns second), ``learned`` (what ``learn`` returned: ρ̂ for IGL-P, the hand-made
    reward for a baseline) and the round's keys named in ``keep``.
    """
    rng = np.random.default_rng(seed + 2)
    rows = []
    for t, rnd in enumerate(sim):
        if limit is not None and t >= limit:
            break
        action, prob = learner.act(rnd["context"], rnd["actions"])
        feedback, reward = sim.feedback(rnd, action, rng)
        learned = learner.learn(rnd["context"], rnd["actions"], action, prob, feedback)
        rows.append({"t": t, "action": action, "prob": prob, "reward": reward, "learned": learned,
                     **{k: rnd[k] for k in keep}})
    return pd.DataFrame(rows)
