"""Write a simulator's rounds as a logged trace (VW text ADF or DSJSON) for offline replay."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from typing import Optional

import numpy as np

from ..learner import sample_pmf
from ..vw import adf_lines, cb_label, format_namespaces

__all__ = ["write_log", "write_policy_log", "LOGGING_POLICIES"]

LOGGING_POLICIES = ("uniform", "naive", "model")


def write_log(
    sim,
    path,
    fmt: str = "text",
    policy: str = "uniform",
    seed: int = 0,
    limit: Optional[int] = None,
    truth=None,
    epsilon: float = 0.2,
    model_dir=None,
) -> int:
    """Play a logging policy through ``sim`` and write each round as a logged event.

    ``policy``: ``"uniform"`` (probability 1/K) or ``"naive"`` (an ε-greedy VW CB
    fed the naive reward, "good word = 1", as a hand-engineered recommender would
    be; ``epsilon`` its exploration), or ``"model"``: a saved IGL-P policy
    (``model_dir``), frozen (a learned policy deployed, for off-policy evaluation). The logged cost is the naive one (−1 for a
    good word), the feedback the word (text: ``|Feedback word=w42``; DSJSON:
    ``"o": [{"v": {"word": "w42"}}]``). ``truth``: optional CSV path that gets the
    hidden label, user type and true reward of each event (never in the log).
    A ``.gz`` path is written gzipped. Returns the number of events written.
    """
    if fmt not in ("text", "dsjson"):
        raise ValueError(f"`fmt` must be 'text' or 'dsjson', got {fmt!r}")
    if policy not in LOGGING_POLICIES:
        raise ValueError(f"`policy` must be one of {LOGGING_POLICIES}, got {policy!r}")
    rng = np.random.default_rng(seed + 7)
    k = sim.num_actions
    logger = None
    if policy == "naive":
        from ..baselines import RewardCB

        logger = RewardCB(k, sim.naive_reward, f"--cb_explore_adf --epsilon {epsilon}", seed=seed)
    elif policy == "model":
        from ..learner import IGLP

        if model_dir is None:
            raise ValueError("policy='model' needs `model_dir`")
        logger = IGLP.load(model_dir)
    action_texts = [format_namespaces(a) for a in sim.actions]
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    truth_fh = open(truth, "w", newline="") if truth else None
    truth_writer = csv.writer(truth_fh) if truth_fh else None
    if truth_writer:
        truth_writer.writerow(["event", "line", "label", "user", "bizarro", "action", "reward"])
    n = 0
    line = 1
    try:
        with opener(path, "wt") as out:
            for rnd in sim:
                if limit is not None and n >= limit:
                    break
                if logger is None:
                    action, prob = int(rng.integers(k)), 1.0 / k
                    pmf = [1.0 / k] * k
                else:
                    pmf = logger.predict(rnd["context"], rnd["actions"])
                    action, prob = sample_pmf(rng, pmf)
                feedback, reward = sim.feedback(rnd, action, rng)
                cost = -sim.naive_reward(rnd["context"], feedback)
                if logger is not None and policy == "naive":
                    logger.learn(rnd["context"], rnd["actions"], action, prob, feedback)
                if fmt == "text":
                    ctx = format_namespaces(rnd["context"])
                    fb = format_namespaces(feedback)
                    lines = adf_lines(f"{ctx} {fb}".strip(), action_texts, action, cb_label(cost, prob))
                    out.write("\n".join(lines) + "\n\n")
                    written = len(lines) + 1
                else:
                    order = [action] + [i for i in range(k) if i != action]
                    obj = {
                        "_label_cost": cost,
                        "_label_probability": prob,
                        "_label_Action": action + 1,
                        "_labelIndex": action,
                        "o": [{"v": feedback["Feedback"]}],
                        "a": [i + 1 for i in order],
                        "c": {**rnd["context"], "_multi": rnd["actions"]},
                        "p": [pmf[i] for i in order],
                    }
                    out.write(json.dumps(obj, separators=(",", ":")) + "\n")
                    written = 1
                if truth_writer:
                    truth_writer.writerow([n, line, rnd["label"], rnd["user"], int(rnd["bizarro"]), action, reward])
                line += written
                n += 1
    finally:
        if truth_fh:
            truth_fh.close()
    return n


def write_policy_log(sim, learner, path, seed: int = 0, cost=None, truth=None, learn: bool = True) -> int:
    """Play ``learner`` (``predict``/``learn``) on-policy through ``sim`` and log it as VW text ADF.

    Each event carries the sampled action's probability, the feedback in a ``Feedback``
    namespace of the shared line (none when the user said nothing) and ``cost(context,
    feedback)`` as the cost (0 without it). ``learn=False`` keeps the policy frozen.
    ``truth``: optional CSV path with each event's first line, user, hidden group, action
    and latent reward (``sim.feedback`` returns it second).
    """
    rng = np.random.default_rng(seed + 7)
    action_texts = [format_namespaces(a) for a in sim.actions]
    truth_fh = open(truth, "w", newline="") if truth else None
    writer = csv.writer(truth_fh) if truth_fh else None
    if writer:
        writer.writerow(["event", "line", "user", "group", "action", "reward"])
    n, line = 0, 1
    try:
        with open(path, "w") as out:
            for rnd in sim:
                pmf = learner.predict(rnd["context"], rnd["actions"])
                action, prob = sample_pmf(rng, pmf)
                feedback, reward = sim.feedback(rnd, action, rng)
                if learn:
                    learner.learn(rnd["context"], rnd["actions"], action, prob, feedback)
                c = cost(rnd["context"], feedback) if cost else 0.0
                fb = format_namespaces(feedback) if feedback else ""
                shared = f"{format_namespaces(rnd['context'])} {fb}".strip()
                lines = adf_lines(shared, action_texts, action, cb_label(-c, prob))
                out.write("\n".join(lines) + "\n\n")
                if writer:
                    writer.writerow([n, line, rnd.get("user"), rnd.get("group"), action, reward])
                line += len(lines) + 1
                n += 1
    finally:
        if truth_fh:
            truth_fh.close()
    return n
