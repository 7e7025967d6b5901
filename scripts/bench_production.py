"""IGL-P against the hand-made reward on production-like logs (``iglp_vw.sim.production``).

For each seed: a world (catalogue, long-tail users, four communication styles bound to age
bands), a log of ``--events`` events from its popularity logging policy, and then each
learner trained offline on that log:

- ``IGL-P(2)`` and ``IGL-P(3)`` (``iglp-vw replay``; IGL-P(3) with ``dislike``, ``hide`` and
  ``report`` definitely negative, ``--alpha`` as given);
- VW CBs with IGL-P's own CB arguments fed a hand-made reward: ``clicks`` (a click is 1) and
  ``formula`` (``click + like + share + save + [dwell > 30] - 2 (dislike + hide + report)``);
- the ``oracle``: the same CB fed the true reward;
- the ``logging`` policy itself.

Each policy's greedy action is scored with the true reward on ``--fresh`` new events of the
same world: overall and per style. Printed: per-seed table, then mean and worst over seeds,
IGL-P(3)'s wins against the formula and its share of the way from the logging policy to
the oracle.

    python scripts/bench_production.py --seeds 10 --events 100000
    python scripts/bench_production.py --seeds 2 --events 30000 --learners iglp3 formula oracle
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from iglp_vw import IGLP
from iglp_vw.cb import WorkspaceCB
from iglp_vw.logs import LogError, read_events
from iglp_vw.replay import replay
from iglp_vw.sim.production import (NEGATIVE_SIGNALS, STYLES, ProductionWorld, click_reward, formula_reward,
                                    write_production_log)

LEARNERS = ("iglp2", "iglp3", "clicks", "formula", "oracle", "logging")


def _feedback_dict(text: str) -> dict:
    """The signals of a ``|Feedback click:1 dwell:37.2`` text as ``{"click": 1.0, "dwell": 37.2}``."""
    out = {}
    for token in str(text).split():
        if token.startswith("|"):
            continue
        name, _, value = token.partition(":")
        out[name] = float(value) if value else 1.0
    return {"Feedback": out}


def train_cb(log: Path, truth: pd.DataFrame, cb_args: str, reward: str) -> WorkspaceCB:
    """A CB trained off-policy on the log with the given reward (``clicks``, ``formula``, ``oracle``)."""
    cb = WorkspaceCB(cb_args)
    true = dict(zip(truth.line, truth.reward))
    fn = {"clicks": click_reward, "formula": formula_reward}.get(reward)
    for event in read_events(log):
        if isinstance(event, LogError):
            raise SystemExit(str(event))
        r = true[event.line] if fn is None else fn(None, _feedback_dict(event.feedback))
        cb.learn(event.context, event.actions, event.action, -float(r), event.prob)
    return cb


def greedy_scores(world: ProductionWorld, policies: dict, fresh: int, seed: int) -> pd.DataFrame:
    """Greedy true reward of each policy on ``fresh`` new events: one row per event, a column per policy."""
    from iglp_vw.vw import format_namespaces

    rows = []
    for rnd in world.rounds(fresh, seed=10_000 + seed):
        row = {"style": rnd["style"]}
        ctx = format_namespaces(rnd["context"])
        for name, policy in policies.items():
            if name == "logging":
                row[name] = float(np.dot(rnd["pmf"], rnd["rewards"]))
                continue
            if isinstance(policy, IGLP):
                pmf = policy.predict(rnd["context"], rnd["actions"])
            else:
                pmf = policy.predict(ctx, rnd["action_texts"])
            row[name] = float(rnd["rewards"][int(np.argmax(pmf))])
        rows.append(row)
    return pd.DataFrame(rows)


def one_seed(work: Path, seed: int, events: int, fresh: int, learners, alpha: float, igl_args: dict) -> tuple:
    world = ProductionWorld(seed=seed)
    log, truth_path = work / f"log{seed}.txt", work / f"truth{seed}.csv"
    write_production_log(world, log, events, seed=seed, truth=truth_path)
    truth = pd.read_csv(truth_path)
    policies, seconds = {}, {}
    cb_args = None
    for name in learners:
        start = time.perf_counter()
        if name in ("iglp2", "iglp3"):
            params = {"seed": seed, **igl_args}
            if name == "iglp3":
                params.update(states=3, alpha=alpha, definitely_negative=set(NEGATIVE_SIGNALS))
            model = work / f"m-{name}-{seed}"
            replay([log], model, learner_params=params, overwrite=True)
            learner = IGLP.load(model)
            cb_args = cb_args or learner.cb_full_args
            policies[name] = learner
        elif name == "logging":
            policies[name] = None
        seconds[name] = time.perf_counter() - start
    if cb_args is None:  # IGL-P's CB arguments without an IGL-P run
        probe = IGLP(seed=seed)
        rnd = next(world.rounds(1))
        probe.predict(rnd["context"], rnd["actions"])
        cb_args = probe.cb_full_args
    for name in learners:
        if name in ("clicks", "formula", "oracle"):
            start = time.perf_counter()
            policies[name] = train_cb(log, truth, cb_args, name)
            seconds[name] = time.perf_counter() - start
    scores = greedy_scores(world, {n: policies[n] for n in learners}, fresh, seed)
    return scores, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--fresh", type=int, default=5_000)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=LEARNERS)
    ap.add_argument("--igl", nargs="*", default=[], metavar="KEY=VALUE", help="more IGLP arguments (Python literals)")
    args = ap.parse_args(argv)
    import ast

    igl_args = {}
    for item in args.igl:
        key, _, value = item.partition("=")
        try:
            igl_args[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            igl_args[key] = value
    learners = list(dict.fromkeys(args.learners))
    per_seed, per_style = [], []
    with tempfile.TemporaryDirectory(prefix="bench-production-") as tmp:
        for seed in range(args.seed, args.seed + args.seeds):
            scores, seconds = one_seed(Path(tmp), seed, args.events, args.fresh, learners, args.alpha, igl_args)
            overall = scores[learners].mean()
            per_seed.append({"seed": seed, **overall.to_dict()})
            style = scores.groupby("style")[learners].mean()
            style["seed"] = seed
            per_style.append(style.reset_index())
            times = "  ".join(f"{n} {s:.0f}s" for n, s in seconds.items() if s > 0.5)
            print(f"seed {seed}: " + "  ".join(f"{n} {overall[n]:.3f}" for n in learners) + f"   ({times})",
                  flush=True)
    table = pd.DataFrame(per_seed).set_index("seed")
    print("\ngreedy true reward on fresh events (+1 / 0 / -1), over seeds:")
    print(pd.DataFrame({"mean": table.mean(), "worst": table.min(), "best": table.max()}).T.round(3).to_string())
    styles = pd.concat(per_style).groupby("style")[learners].mean().reindex(list(STYLES))
    print("\nper style (mean over seeds):")
    print(styles.round(3).to_string())
    if {"iglp3", "formula"} <= set(learners):
        wins = int((table.iglp3 > table.formula).sum())
        margin = table.iglp3 - table.formula
        print(f"\nIGL-P(3) - formula: mean {margin.mean():+.3f}, worst {margin.min():+.3f}; "
              f"ahead on {wins} of {len(table)} seeds")
    if {"iglp3", "oracle", "logging"} <= set(learners):
        way = (table.iglp3 - table.logging) / (table.oracle - table.logging)
        print(f"IGL-P(3) of the way from logging to oracle: mean {way.mean():.3f}, worst {way.min():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
