"""Grounded simulation benchmark: IGL-P(2) against CBs fed the true reward, over seeds.

For each data set and seed, runs IGL-P and the oracle (a CB with IGL-P's own CB arguments
fed the TRUE reward) on-policy and reports the last-20% true reward. With ``--seeds N``
it prints, per data set, the distribution of IGL-P's ratio to the same seed's oracle:
mean, median, worst, and the number of stalls (ratio < 0.5), and the absolute rewards.
More learners (other oracles, naive, uniform, VW's native IGL) with ``--learners``.

    python scripts/bench_grounded.py --seeds 30 --datasets digits            # issue 10 bars
    python scripts/bench_grounded.py --seeds 30 --datasets digits --passes 3
    python scripts/bench_grounded.py --seeds 12 --datasets synthetic50k
    python scripts/bench_grounded.py --learners iglp oracle naive uniform vw-igl   # one seed, all
    python scripts/bench_grounded.py --igl ik_args="-l 1" --igl confidence=1.0  # IGLP arguments

Jobs run in parallel over the cores with joblib.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from iglp_vw import IGLP
from iglp_vw.baselines import RewardCB, Uniform, VWNativeIGL
from iglp_vw.learner import DEFAULT_CB_ARGS
from iglp_vw.sim import GroundedSimulation, load_dataset, run

ORACLE_CB_ARGS = {
    "oracle": None,  # IGL-P's own CB arguments
    "oracle(eps-cubic)": "--cb_explore_adf --epsilon 0.05 -q :: --cubic xxA",
    "oracle(squarecb)": "--cb_explore_adf --squarecb -q :: --cubic xxA",
    "oracle(squarecb-g100)": "--cb_explore_adf --squarecb --gamma_scale 100 -q :: --cubic xxA",
}
STALL = 0.5  # a run below half the oracle's reward has not learned


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def make_learner(name, num_actions, sim, seed, igl_kwargs, cb_args):
    if name == "iglp":
        return IGLP(num_actions, seed=seed, cb_args=cb_args, **igl_kwargs)
    if name.startswith("oracle"):
        return RewardCB(num_actions, sim.true_reward, ORACLE_CB_ARGS[name] or cb_args, seed=seed)
    if name == "naive":
        return RewardCB(num_actions, sim.naive_reward, cb_args, seed=seed)
    if name == "uniform":
        return Uniform(num_actions, seed=seed)
    if name == "vw-igl":
        return VWNativeIGL(num_actions, seed=seed)
    raise ValueError(name)


def one_job(dataset, name, seed, args, igl_kwargs):
    X, y = load_dataset(dataset, seed=seed, path=args.covertype)
    passes = args.passes if dataset == "digits" else 1
    sim = GroundedSimulation(
        X, y, n_users=args.users, n_words=args.words, bizarro_share=args.bizarro_share,
        good_share=args.good_share, passes=passes, seed=seed,
    )
    learner = make_learner(name, sim.num_actions, sim, seed, igl_kwargs, args.cb_args)
    start = time.perf_counter()
    trace = run(learner, sim, seed=seed, limit=args.limit)
    elapsed = time.perf_counter() - start
    tail = trace[trace.t >= int(0.8 * len(trace))]
    return {
        "dataset": dataset,
        "learner": name,
        "seed": seed,
        "reward": tail.reward.mean(),
        "normal": tail[~tail.bizarro].reward.mean(),
        "bizarro": tail[tail.bizarro].reward.mean(),
        "rounds": len(trace),
        "seconds": round(elapsed, 1),
    }


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per data set: IGL-P's ratio to the same seed's oracle, as a distribution over seeds."""
    rows = []
    for dataset, part in table.groupby("dataset", sort=False):
        wide = part.pivot(index="seed", columns="learner", values="reward")
        ratio = wide["iglp"] / wide["oracle"]
        rows.append({
            "dataset": dataset, "seeds": len(ratio), "iglp mean": wide["iglp"].mean(), "oracle mean": wide["oracle"].mean(),
            "ratio mean": ratio.mean(), "ratio median": ratio.median(), "ratio worst": ratio.min(),
            "worst seed": int(ratio.idxmin()), f"stalls (<{STALL})": int((ratio < STALL).sum()),
            "iglp worst": wide["iglp"].min(),
        })
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "synthetic50k"])
    parser.add_argument("--learners", nargs="+", default=["iglp", "oracle"])
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds, from --seed on")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--passes", type=int, default=5, help="shuffled passes over digits")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--bizarro-share", type=float, default=0.5)
    parser.add_argument("--good-share", type=float, default=0.5)
    parser.add_argument("--limit", type=int, default=None, help="stop each run after this many rounds")
    parser.add_argument("--cb-args", default=DEFAULT_CB_ARGS)
    parser.add_argument("--covertype", default=None, help="path of a local covtype.data(.gz)")
    parser.add_argument("--igl", action="append", default=[], metavar="KEY=VALUE", help="IGLP keyword argument")
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--csv", default=None, help="also write the per-run table here")
    args = parser.parse_args(argv)
    igl_kwargs = {k: _parse_value(v) for k, v in (item.split("=", 1) for item in args.igl)}
    if "iglp" in args.learners and "oracle" not in args.learners:
        args.learners.append("oracle")

    seeds = range(args.seed, args.seed + args.seeds)
    jobs = [(d, name, s) for d in args.datasets for s in seeds for name in args.learners]
    start = time.perf_counter()
    rows = Parallel(n_jobs=args.jobs)(delayed(one_job)(d, name, s, args, igl_kwargs) for d, name, s in jobs)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(f"# passes={args.passes} users={args.users} words={args.words} bizarro_share={args.bizarro_share} "
          f"good_share={args.good_share} seeds={args.seed}..{args.seed + args.seeds - 1} cb_args={args.cb_args!r} "
          f"igl={igl_kwargs}  ({time.perf_counter() - start:.0f} s)")
    if args.seeds == 1:
        print(table.drop(columns="seed").round(3).to_string(index=False))
        print()
    else:
        for d in args.datasets:
            wide = table[table.dataset == d].pivot(index="seed", columns="learner", values="reward")
            print(f"{d}: " + " ".join(f"{s}:{r:.3f}" for s, r in wide["iglp"].items()))
    print(summarize(table).round(3).to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
