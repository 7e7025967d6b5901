"""Off-policy evaluation (OPE) of a policy on a logged trace, per feedback signal.

Two steps, both public:

1. :func:`events_frame` scores each logged event: one row per event with the logged
   action and its logging probability ``prob``, the evaluated policy's pmf over the
   event's candidates (``policy="pmf"``: the learned CB's own exploration pmf, the
   policy as it would be deployed and would log next, the default; ``"greedy"``: all
   mass on its best candidate; or pmfs you pass in), ``pi_action`` = π(logged action|x),
   the importance weight ``weight = pi_action / prob``, the event's signal values, and
   the reward IGL-P infers for it with the final model (``inferred_reward``).
2. :func:`estimate` turns a frame into estimates. For each signal s with value y
   (``click`` → 1 when present, ``dwell:37.2`` → 37.2, ``word=w42`` → 1; 0 when absent;
   ``none`` marks events without feedback; ``inferred reward`` is ρ̂):

   - ``logging_rate``: mean of y (the logging policy's value);
   - ``ips``: mean of w·y; ``snips``: Σ w·y / Σ w;
   - ``dr``: doubly robust, mean of Σ_a π(a|x) q̂(x, a) + w (y − q̂(x, a_logged)), with q̂
     the per-action mean of y by default, or any scikit-learn regressor (``reward_model``)
     fitted on the log (hashed context features, crossed with the candidate's position);
   - ``lift`` = snips / logging_rate (the paper's Table 1) and ``delta`` = snips − logging_rate;
   - a bootstrap ``1 − alpha`` interval for each (``*_low``, ``*_high``): events resampled
     ``n_bootstrap`` times with ``random_state`` (obp's names), q̂ kept fixed.

:func:`evaluate` does both from a model directory and log paths. Logs without
probabilities, or with probabilities outside (0, 1], are refused by the readers with an
error naming file and line; events without a label are skipped.
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

__all__ = ["evaluate", "events_frame", "estimate", "feedback_signals", "signal_values", "read_pmfs", "verdict",
           "pmf_matrix", "signal_array", "reward_estimates", "plot_lifts"]

NONE_SIGNAL = "none"
INFERRED = "inferred reward"
ESTIMATES = ("ips", "snips", "dr", "lift", "delta")


def feedback_signals(feedback: str) -> set:
    """The signals of one event's feedback text: its feature names (``name=value`` kept whole).

    >>> sorted(feedback_signals("|Feedback click like:1"))
    ['click', 'like']
    >>> feedback_signals("|Feedback none")
    {'none'}
    """
    return set(_text_values(feedback))


def _features(text: str):
    """``(name, value)`` of each feature of VW text (namespaces skipped; no value: 1)."""
    for token in text.split():
        if token.startswith("|"):
            continue
        name, colon, value = token.partition(":")
        try:
            v = float(value) if colon else 1.0
        except ValueError:
            v = 1.0
        yield name, (v if np.isfinite(v) else 1.0)


def _text_values(feedback: str) -> dict:
    if feedback == NO_FEEDBACK:
        return {NONE_SIGNAL: 1.0}
    out: dict = {}
    for name, v in _features(feedback):
        out[name] = out.get(name, 0.0) + v
    return out or {NONE_SIGNAL: 1.0}


def signal_values(event) -> dict:
    """An event's signals and their values, named alike for text and DSJSON logs.

    Text ``|Feedback word=w42 dwell:37.2 like`` and DSJSON ``"o": [{"v": {"word": "w42",
    "dwell": 37.2, "like": 1}}]`` both give ``{"word=w42": 1, "dwell": 37.2, "like": 1}``
    (a string value is part of the name, a number is the value); an outcome marked
    ``"_definitely_bad": true`` adds ``_definitely_bad``; no feedback is ``{"none": 1}``.
    """
    raw = event.raw
    outcomes = raw.get("o") if isinstance(raw, dict) else None
    if not isinstance(outcomes, list) or not outcomes:
        return _text_values(event.feedback)
    out: dict = {}

    def add(name, v):
        out[name] = out.get(name, 0.0) + v

    for outcome in outcomes:
        if not isinstance(outcome, dict):
            continue
        values = outcome.get("v")
        items = values.items() if isinstance(values, dict) else ([("v", values)] if values is not None else [])
        for key, value in items:
            if isinstance(value, bool):
                if value:
                    add(str(key), 1.0)
            elif isinstance(value, (int, float)):
                add(str(key), float(value) if np.isfinite(value) else 1.0)
            elif isinstance(value, str):
                add(f"{key}={value}", 1.0)
            else:
                add(str(key), 1.0)
        if outcome.get("_definitely_bad") is True:
            add("_definitely_bad", 1.0)
    return out or {NONE_SIGNAL: 1.0}


def _load(model) -> IGLP:
    return model if isinstance(model, IGLP) else IGLP.load(model)


def events_frame(
    model,
    paths: Sequence,
    *,
    policy: str = "pmf",
    pmfs=None,
    group_by: Optional[str] = None,
    feedback_namespace: str = "Feedback",
    infer: bool = True,
    on_bad_line: str = "fail",
) -> pd.DataFrame:
    """One row per labelled event: what every estimate is computed from.

    Parameters
    ----------
    model
        A model directory or an :class:`IGLP` (``None`` with ``pmfs`` and ``infer=False``).
    policy
        ``"pmf"`` (default): the learned CB's pmf, exploration included: the policy as it
        runs, and the one whose log a replay would learn from next. ``"greedy"``: its most
        probable candidate with probability 1 (ties: the first).
    pmfs
        Your own policy instead: one pmf per labelled event, in log order (an array, a list
        of lists, or a DataFrame/Series with a ``pmf`` column such as ``predict``'s output).
    group_by
        A context namespace whose features name the event's group (column ``group``).
    infer
        Add ``inferred_reward``: ρ̂ from the model, frozen (not learning).
    on_bad_line
        ``"fail"``: a malformed event raises its :class:`~iglp_vw.logs.LogError`; ``"skip"``:
        it is left out, counted in ``frame.attrs["bad_lines"]`` (the first few in
        ``frame.attrs["errors"]``).

    Columns: ``file, line, event_id, group, action, prob, n_actions, pmf, pi_action, weight,
    signals`` (dict of signal values), ``context`` (VW text) and ``inferred_reward``.
    """
    if policy not in ("pmf", "greedy"):
        raise ValueError(f"`policy` must be 'pmf' or 'greedy', got {policy!r}")
    given = _given_pmfs(pmfs)
    learner = _load(model) if (model is not None) else None
    if learner is None and (given is None or infer):
        raise ValueError("a model is needed (or pmfs and infer=False)")
    rows = []
    stream = LogStream([Path(p) for p in paths], None, feedback_namespace, on_bad_line=on_bad_line)
    for event in stream:
        if event.action is None:  # no logged action: nothing to evaluate
            continue
        i = len(rows)
        if given is not None:
            if i >= len(given):
                raise ValueError(f"{len(given)} pmfs given, the logs have more labelled events")
            pmf = np.asarray(given[i], float)
            if len(pmf) != len(event.actions) or (pmf < 0).any() or not np.isclose(pmf.sum(), 1.0, atol=1e-4):
                raise ValueError(f"pmf {i} ({event.path}:{event.line}): {len(pmf)} probabilities summing to "
                                 f"{pmf.sum():.4g} for {len(event.actions)} candidates")
        else:
            err = check_action_count(event.path, event.line, len(event.actions), learner.num_actions)
            if err is not None:
                raise err
            pmf = np.asarray(learner.predict(event.context, event.actions), float)
            if policy == "greedy":
                pmf = np.eye(len(pmf))[int(np.argmax(pmf))]
        row = {
            "file": event.path, "line": event.line,
            "event_id": event.event_id if event.event_id is not None else f"{event.path}:{event.line}",
            "group": namespace_of(event.context, group_by) if group_by else "all",
            "action": event.action, "prob": event.prob, "n_actions": len(event.actions), "pmf": pmf,
            "pi_action": float(pmf[event.action]), "signals": signal_values(event),
        }
        if infer:
            row["inferred_reward"] = learner.infer_reward(event.context, len(event.actions), event.action,
                                                          event.prob, event.feedback, actions=event.actions)
        row["context"] = str(event.context)  # VW text (what a reward model reads)
        rows.append(row)
    if not rows:
        raise ValueError(f"no labelled events in {', '.join(map(str, paths))}")
    if given is not None and len(given) != len(rows):
        raise ValueError(f"{len(given)} pmfs given for {len(rows)} labelled events")
    frame = pd.DataFrame(rows)
    frame["weight"] = frame.pi_action / frame.prob
    frame.attrs["bad_lines"], frame.attrs["errors"] = stream.bad_lines, list(stream.errors)
    return frame


def _given_pmfs(pmfs):
    if pmfs is None:
        return None
    if isinstance(pmfs, pd.DataFrame):
        pmfs = pmfs["pmf"]
    if isinstance(pmfs, pd.Series):
        pmfs = pmfs.tolist()
    out = []
    for p in (pmfs if not isinstance(pmfs, np.ndarray) else list(pmfs)):
        if isinstance(p, str):  # predict --format csv: "0.25;0.75"
            p = [float(v) for v in p.split(";")]
        out.append(p)
    return out


def read_pmfs(path) -> list:
    """pmfs from ``iglp-vw predict`` output (JSON lines, or CSV with a ``pmf`` column of ``;``-joined
    numbers), or any JSON-lines / CSV file with such a column, in row order."""
    import json

    path = Path(path)
    with open(path) as fh:
        head = fh.read(1)
    if head == "{":
        out = []
        with open(path) as fh:
            for i, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        out.append([float(v) for v in json.loads(line)["pmf"]])
                    except (ValueError, KeyError, TypeError) as err:
                        raise ValueError(f"{path}:{i}: pmf: {err}") from None
        return out
    table = pd.read_csv(path)
    if "pmf" not in table:
        raise ValueError(f"{path}: no 'pmf' column")
    return _given_pmfs(table)


def signals_seen(frame: pd.DataFrame) -> pd.Series:
    """How many events carry each signal, most frequent first."""
    return pd.Series([s for ss in frame.signals for s in ss]).value_counts()


def estimate(
    frame: pd.DataFrame,
    signals: Optional[Sequence[str]] = None,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    reward_model=None,
    by_group: bool = False,
    max_signals: int = 20,
) -> pd.DataFrame:
    """Estimates per (group, signal) from :func:`events_frame`'s rows.

    ``signals``: default the ``max_signals`` most frequent; ``inferred reward`` comes first
    whenever the frame has it (given signals or not); an unknown name is a
    :class:`ValueError` listing the ones seen.
    ``by_group``: the overall rows (group ``"all"``) then one block per group. Returns
    columns ``group, signal, n, logging_rate`` and for each of ``ips, snips, dr, lift,
    delta`` the estimate with ``_low``/``_high`` bounds of its ``1 - alpha`` interval.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1), got {alpha!r}")
    seen = signals_seen(frame)
    has_inferred = "inferred_reward" in frame
    if signals is None:
        signals = ([INFERRED] if has_inferred else []) + list(seen.index[:max_signals])
    else:
        signals = ([INFERRED] if has_inferred else []) + [s for s in signals if s != INFERRED]
        unknown = [s for s in signals if s not in seen.index and not (s == INFERRED and has_inferred)]
        if unknown:
            listed = ", ".join(f"{s} ({n:,})" for s, n in seen.head(30).items())
            more = f" and {len(seen) - 30} more" if len(seen) > 30 else ""
            raise ValueError(f"no event has the signal(s) {', '.join(map(repr, unknown))}; signals seen (events): "
                             f"{listed}{more}")
    rng = np.random.default_rng(random_state)
    pi = pmf_matrix(frame)
    a = frame.action.to_numpy(int)
    ys = {s: signal_array(frame, s) for s in signals}
    q_hat = {s: _reward_model(reward_model, frame, pi, a, y) for s, y in ys.items()}
    groups = frame.group.to_numpy(object)
    blocks = [("all", np.arange(len(frame)))]
    if by_group:
        blocks += [(g, np.flatnonzero(groups == g)) for g in sorted(set(groups), key=str)]
    rows = []
    for group, idx in blocks:
        gpi, ga, gp = pi[idx], a[idx], frame.prob.to_numpy(float)[idx]
        n = len(idx)
        columns, points = [gpi[np.arange(n), ga] / gp], {}
        for s, y in ys.items():
            w, d = _terms(gpi, ga, gp, y[idx], q_hat[s][idx])
            points[s] = _point(w, y[idx], d)
            columns += [y[idx], w * y[idx], d]
        sums = _bootstrap_sums(rng, n, n_bootstrap, columns)
        for j, signal in enumerate(ys):
            logging, ips, snips, dr = points[signal]
            row = {"group": group, "signal": signal, "n": n, "logging_rate": logging,
                   "ips": ips, "snips": snips, "dr": dr,
                   "lift": snips / logging if logging > 0 else float("nan"), "delta": snips - logging}
            if sums is not None:
                sw, sy, swy, sd = sums[0], sums[1 + 3 * j], sums[2 + 3 * j], sums[3 + 3 * j]
                with np.errstate(divide="ignore", invalid="ignore"):
                    boot = {"ips": swy / n, "snips": swy / sw, "dr": sd / n,
                            "lift": np.where(sy > 0, (swy / sw) / (sy / n), np.nan), "delta": swy / sw - sy / n}
            for name in ESTIMATES:
                low = high = float("nan")
                if sums is not None and not (name == "lift" and not logging > 0):
                    values = boot[name][np.isfinite(boot[name])]
                    if len(values):
                        low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
                row[f"{name}_low"], row[f"{name}_high"] = low, high
            rows.append(row)
    order = ["group", "signal", "n", "logging_rate"] + [c for name in ESTIMATES for c in (name, f"{name}_low", f"{name}_high")]
    return pd.DataFrame(rows)[order]


def pmf_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The policy's pmfs as an (events, most candidates) array, padded with 0 (obp's
    ``action_dist`` is this with a trailing axis: ``pmf_matrix(frame)[:, :, None]``)."""
    width = int(frame.n_actions.max())
    pi = np.zeros((len(frame), width))
    for i, pmf in enumerate(frame.pmf):
        pi[i, : len(pmf)] = pmf
    return pi


def signal_array(frame: pd.DataFrame, signal: str) -> np.ndarray:
    """One signal's value per event (0 where absent; ``"inferred reward"``: ρ̂): obp's ``reward``."""
    if signal == INFERRED and "inferred_reward" in frame:
        return frame.inferred_reward.to_numpy(float)
    return np.fromiter((ss.get(signal, 0.0) for ss in frame.signals), float, len(frame))


def reward_estimates(frame: pd.DataFrame, signal: str, reward_model=None) -> np.ndarray:
    """DR's q̂(x, a) for every event and candidate position, an (events, candidates) array (obp's
    ``estimated_rewards_by_reg_model`` with a trailing axis): the per-action mean of the
    signal, or ``reward_model`` (a scikit-learn regressor) fitted on the frame."""
    return _reward_model(reward_model, frame, pmf_matrix(frame), frame.action.to_numpy(int),
                         signal_array(frame, signal))


def _reward_model(model, frame, pi, a, y) -> np.ndarray:
    """q̂(x, a) for every event and candidate position: per-action mean, or a fitted regressor."""
    n, width = pi.shape
    if model is None:
        overall = y.mean()
        q = np.array([y[a == c].mean() if (a == c).any() else overall for c in range(width)])
        return np.tile(q, (n, 1))
    from sklearn.base import clone
    from sklearn.feature_extraction import FeatureHasher

    hasher = FeatureHasher(n_features=2 ** 12, input_type="dict")
    contexts = list(frame["context"]) if "context" in frame else [""] * n

    def features(i, c):
        tokens = {f"a{c}": 1.0}
        for name, v in _features(contexts[i]):
            tokens[name] = v
            tokens[f"a{c}^{name}"] = v
        return tokens

    fitted = clone(model)
    X = hasher.transform(features(i, a[i]) for i in range(n))
    try:
        fitted.fit(X, y)
    except TypeError:  # a regressor that wants dense input
        X = X.toarray()
        fitted.fit(X, y)
    dense = isinstance(X, np.ndarray)
    q = np.zeros((n, width))
    for c in range(width):
        Xc = hasher.transform(features(i, c) for i in range(n))
        q[:, c] = fitted.predict(Xc.toarray() if dense else Xc)
    return q


def _terms(pi, a, p, y, q):
    """Per event: the importance weight w = π(a|x)/p and DR's term Σ_a π(a|x) q̂(x, a) + w (y − q̂(x, a_logged));
    ``q`` per event and candidate, or per candidate (one q̂ for every event)."""
    rows = np.arange(len(a))
    q = np.broadcast_to(q, pi.shape)
    w = pi[rows, a] / p
    return w, (pi * q).sum(axis=1) + w * (y - q[rows, a])


def _point(w, y, d):
    """(logging rate, ips, snips, dr) from the weights, the signal's values and DR's terms."""
    snips = (w * y).sum() / w.sum() if w.sum() > 0 else float("nan")
    return y.mean(), (w * y).mean(), snips, d.mean()


def _estimates(pi, a, p, y, q):
    """(logging rate, ips, snips, dr) for one signal's values ``y``."""
    w, d = _terms(pi, a, p, y, q)
    return _point(w, y, d)


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
    n_bootstrap: int = 1000,
    random_state: int = 0,
    feedback_namespace: str = "Feedback",
    max_signals: int = 20,
    *,
    alpha: float = 0.05,
    policy: str = "pmf",
    pmfs=None,
    reward_model=None,
    return_frame: bool = False,
    n_boot: Optional[int] = None,
    seed: Optional[int] = None,
    on_bad_line: str = "fail",
):
    """:func:`events_frame` then :func:`estimate`: the table of estimates (and the frame, with
    ``return_frame=True``). ``n_boot``/``seed``: older names of ``n_bootstrap``/``random_state``.
    With ``group_by``, the overall rows come first, then each group's."""
    n_bootstrap = n_boot if n_boot is not None else n_bootstrap
    random_state = seed if seed is not None else random_state
    frame = events_frame(model_dir, paths, policy=policy, pmfs=pmfs, group_by=group_by,
                         feedback_namespace=feedback_namespace, infer=model_dir is not None, on_bad_line=on_bad_line)
    table = estimate(frame, signals, alpha=alpha, n_bootstrap=n_bootstrap, random_state=random_state,
                     reward_model=reward_model, by_group=group_by is not None, max_signals=max_signals)
    return (table, frame) if return_frame else table


def verdict(table: pd.DataFrame, frame: Optional[pd.DataFrame] = None, alpha: float = 0.05) -> list:
    """Plain-words lines on the overall rows: the policy's value under the inferred reward
    against logging, and which signals it raises or lowers (interval clear of no change)."""
    overall = table[table.group == "all"]
    level = f"{1 - alpha:.0%}"
    lines = []
    inferred = overall[overall.signal == INFERRED]
    if len(inferred):
        r = inferred.iloc[0]
        if r.delta_low > 0:
            word = "better than"
        elif r.delta_high < 0:
            word = "worse than"
        else:
            word = f"not distinguishable (at {level}) from"
        lines.append(f"value under the inferred reward: {r.snips:.4f} [{r.snips_low:.4f}, {r.snips_high:.4f}] vs "
                     f"{r.logging_rate:.4f} for the logging policy: {word} the logging policy")
    rest = overall[overall.signal != INFERRED]
    up = list(rest.signal[rest.lift_low > 1])
    down = list(rest.signal[rest.lift_high < 1])
    polarity = _polarity(frame) if frame is not None and "inferred_reward" in frame else {}

    def named(signals):
        shown = [f"{s}{polarity.get(s, '')}" for s in signals[:6]]
        return ", ".join(shown) + (f", ... ({len(signals)} in all)" if len(signals) > 6 else "")

    line = f"signals (lift's {level} interval clear of 1): the policy raises {len(up)} of {len(rest)}"
    line += f" ({named(up)})" if up else ""
    line += f", lowers {len(down)}" + (f" ({named(down)})" if down else "")
    lines.append(line + f", {len(rest) - len(up) - len(down)} undecided")
    if polarity:
        lines.append("(+)/(-): events with the signal had a mean inferred reward above/below 0")
    return lines


def _polarity(frame: pd.DataFrame) -> dict:
    sums: dict = {}
    for ss, rho in zip(frame.signals, frame.inferred_reward):
        for s in ss:
            total, count = sums.get(s, (0.0, 0))
            sums[s] = (total + rho, count + 1)
    return {s: "(+)" if t / c > 0.05 else "(-)" if t / c < -0.05 else "" for s, (t, c) in sums.items()}


def plot_lifts(table: pd.DataFrame, path, title: str = "relative lift over the logging policy") -> None:
    """Bar chart of the lifts with their intervals, one panel per group (matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'iglp-vw[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table[table.signal != INFERRED]
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
        ax.set_ylabel("lift (bootstrap interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
