"""Off-policy evaluation of a learned policy on a logged trace, per feedback signal.

For a policy π (a model directory) and a log with the logging policy's probability p of
each logged action, every feedback signal s (a feedback feature: ``click``, ``like``,
``word=w42``, ... and ``none`` for events without feedback) gets:

- ``logging_rate``: its observed rate in the log (the logging policy's);
- ``ips``: mean of w·y, with w = π(a|x)/p the importance weight of the logged action;
- ``snips``: self-normalised IPS, Σ w·y / Σ w;
- ``dr``: doubly robust with the cheapest reward model, the per-action mean rate q̂(a)
  fitted on the same log: mean of Σ_a π(a|x) q̂(a) + w (y − q̂(a_logged));
- ``lift`` = snips / logging_rate, the relative lift of the paper's Table 1, with a
  bootstrap 95% interval (``lift_low``, ``lift_high``; events resampled).

Optionally per user group (``group_by``: a context namespace whose features name the group).
Logs without probabilities, or with probabilities outside (0, 1], are refused by the
readers with an error naming file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .learner import IGLP
from .logs import NO_FEEDBACK, check_action_count
from .stream import LogStream
from .vw import namespace_of

__all__ = ["evaluate", "feedback_signals", "plot_lifts"]

NONE_SIGNAL = "none"


def feedback_signals(feedback: str) -> set:
    """The signals of one event's feedback text: its feature names (``name=value`` kept whole).

    >>> sorted(feedback_signals("|Feedback click like:1"))
    ['click', 'like']
    >>> feedback_signals("|Feedback none")
    {'none'}
    """
    if feedback == NO_FEEDBACK:
        return {NONE_SIGNAL}
    out = set()
    for token in feedback.split():
        if token.startswith("|"):
            continue
        out.add(token.split(":", 1)[0])
    return out or {NONE_SIGNAL}


def _collect(learner: IGLP, paths, feedback_namespace: str, group_by: Optional[str]):
    pmfs, actions, probs, signals, groups = [], [], [], [], []
    for event in LogStream(paths, None, feedback_namespace):
        if event.action is None:  # no logged action: nothing to evaluate
            continue
        err = check_action_count(event.path, event.line, len(event.actions), learner.num_actions)
        if err is not None:
            raise err
        pmfs.append(learner.predict(event.context, event.actions))
        actions.append(event.action)
        probs.append(event.prob)
        signals.append(feedback_signals(event.feedback))
        groups.append(namespace_of(event.context, group_by) if group_by else "all")
    if not actions:
        raise ValueError(f"no events in {', '.join(map(str, paths))}")
    width = max(len(p) for p in pmfs)  # action sets of any size: padded with probability 0
    pi = np.zeros((len(pmfs), width))
    for i, pmf in enumerate(pmfs):
        pi[i, : len(pmf)] = pmf
    return pi, np.asarray(actions), np.asarray(probs), signals, np.asarray(groups, dtype=object)


def _estimates(pi, a, p, y, q):
    """(logging rate, ips, snips, dr) for one signal's indicator ``y``; ``q`` per-action means."""
    w = pi[np.arange(len(a)), a] / p
    logging = y.mean()
    ips = (w * y).mean()
    snips = (w * y).sum() / w.sum() if w.sum() > 0 else float("nan")
    dr = (pi @ q + w * (y - q[a])).mean()
    return logging, ips, snips, dr


def _bootstrap_sums(rng, n: int, n_boot: int, columns, chunk: int = 50):
    """Σ over each bootstrap resample of each column: one array of ``n_boot`` sums per column.

    A resample is a vector of counts (how often each event was drawn), so each sum is a
    dot product; counts are drawn ``chunk`` resamples at a time to bound memory.
    """
    if not n_boot:
        return None
    stacked = np.vstack(columns)  # (columns, n)
    out = []
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        counts = np.stack([np.bincount(rng.integers(n, size=n), minlength=n) for _ in range(m)])
        out.append(counts @ stacked.T)  # (m, columns)
    return list(np.vstack(out).T)


def evaluate(
    model_dir,
    paths: Sequence,
    signals: Optional[Sequence[str]] = None,
    group_by: Optional[str] = None,
    n_boot: int = 1000,
    seed: int = 0,
    feedback_namespace: str = "Feedback",
    max_signals: int = 20,
) -> pd.DataFrame:
    """Per-signal (and per-group) rates under the learned policy and lift over the logging policy.

    ``signals``: which feedback signals to report (default: the ``max_signals`` most
    frequent). Returns one row per (group, signal) with ``n``, ``logging_rate``, ``ips``,
    ``snips``, ``dr``, ``lift``, ``lift_low``, ``lift_high``.
    """
    learner = IGLP.load(model_dir)
    paths = [Path(p) for p in paths]
    pi, a, p, event_signals, groups = _collect(learner, paths, feedback_namespace, group_by)
    if signals is None:
        counts = pd.Series([s for ss in event_signals for s in ss]).value_counts()
        signals = list(counts.index[:max_signals])
    rng = np.random.default_rng(seed)
    k = pi.shape[1]
    rows = []
    for group in (["all"] if group_by is None else sorted(set(groups))):
        idx = np.flatnonzero(groups == group) if group_by else np.arange(len(a))
        gpi, ga, gp = pi[idx], a[idx], p[idx]
        n = len(idx)
        w = gpi[np.arange(n), ga] / gp
        ys = {s: np.fromiter((s in event_signals[i] for i in idx), float, n) for s in signals}
        sums = _bootstrap_sums(rng, n, n_boot, [w] + [v for y in ys.values() for v in (y, w * y)])
        for j, (signal, y) in enumerate(ys.items()):
            q = np.array([y[ga == c].mean() if (ga == c).any() else y.mean() for c in range(k)])
            logging, ips, snips, dr = _estimates(gpi, ga, gp, y, q)
            lift = snips / logging if logging > 0 else float("nan")
            low = high = float("nan")
            if sums is not None and logging > 0:
                sw, sy, swy = sums[0], sums[1 + 2 * j], sums[2 + 2 * j]
                with np.errstate(divide="ignore", invalid="ignore"):
                    lifts = (swy / sw) / (sy / n)
                low, high = np.nanpercentile(lifts, [2.5, 97.5])
            rows.append({
                "group": group, "signal": signal, "n": n, "logging_rate": logging, "ips": ips,
                "snips": snips, "dr": dr, "lift": lift, "lift_low": low, "lift_high": high,
            })
    return pd.DataFrame(rows)


def plot_lifts(table: pd.DataFrame, path, title: str = "relative lift over the logging policy") -> None:
    """Bar chart of the lifts with their 95% intervals, one panel per group (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(table.group))
    fig, axes = plt.subplots(1, len(groups), figsize=(4 + 3 * len(groups), 3.5), squeeze=False)
    for ax, group in zip(axes[0], groups):
        part = table[table.group == group]
        x = np.arange(len(part))
        err = np.vstack([part.lift - part.lift_low, part.lift_high - part.lift]).clip(min=0)
        ax.bar(x, part.lift, yerr=err, capsize=4, color="tab:blue")
        ax.axhline(1.0, color="black", lw=1, ls="--")
        ax.set_xticks(x, part.signal, rotation=30, ha="right")
        ax.set_title(str(group) if len(groups) > 1 else title)
        ax.set_ylabel("lift (95% bootstrap interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
