"""Grounded simulation benchmark (issue 3 bar): IGL-P(2) vs oracle, naive, uniform, VW native IGL.

Prints, per data set, the last-20% average TRUE reward of each learner, overall and
split by normal / bizarro users, and IGL-P's ratio to the oracle (the strongest of
a few CBs fed the true reward, one of them with IGL-P's own CB arguments).

    python scripts/bench_grounded.py                       # digits (5 passes) + synthetic50k
    python scripts/bench_grounded.py --datasets digits --users 50 --bizarro-share 0.2
    python scripts/bench_grounded.py --igl extreme_test=event --igl prior=uniform   # ablations

Jobs run in parallel over the cores with joblib.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
from joblib import Parallel, delayed

from iglp_vw import IGLP
from iglp_vw.baselines import RewardCB, Uniform, VWNativeIGL
from iglp_vw.learner import DEFAULT_CB_ARGS
from iglp_vw.sim import GroundedSimulation, load_dataset, run

ORACLE_CB_ARGS = {
    "oracle(igl-cb)": None,  # IGL-P's own CB arguments
    "oracle(eps-cubic)": "--cb_explore_adf --epsilon 0.05 -q :: --cubic xxA",
    "oracle(squarecb)": "--cb_explore_adf --squarecb -q :: --cubic xxA",
    "oracle(squarecb-g100)": "--cb_explore_adf --squarecb --gamma_scale 100 -q :: --cubic xxA",
}


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


def one_job(dataset, name, args, igl_kwargs):
    X, y = load_dataset(dataset, seed=args.seed, path=args.covertype)
    passes = args.passes if dataset == "digits" else 1
    sim = GroundedSimulation(
        X, y, n_users=args.users, n_words=args.words, bizarro_share=args.bizarro_share,
        good_share=args.good_share, passes=passes, seed=args.seed,
    )
    learner = make_learner(name, sim.num_actions, sim, args.seed, igl_kwargs, args.cb_args)
    start = time.perf_counter()
    trace = run(learner, sim, seed=args.seed, limit=args.limit)
    elapsed = time.perf_counter() - start
    tail = trace[trace.t >= int(0.8 * len(trace))]
    return {
        "dataset": dataset,
        "learner": name,
        "reward": tail.reward.mean(),
        "normal": tail[~tail.bizarro].reward.mean(),
        "bizarro": tail[tail.bizarro].reward.mean(),
        "rounds": len(trace),
        "seconds": round(elapsed, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "synthetic50k"])
    parser.add_argument("--learners", nargs="+", default=["iglp", *ORACLE_CB_ARGS, "naive", "uniform", "vw-igl"])
    parser.add_argument("--passes", type=int, default=5, help="shuffled passes over digits")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--bizarro-share", type=float, default=0.5)
    parser.add_argument("--good-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="stop each run after this many rounds")
    parser.add_argument("--cb-args", default=DEFAULT_CB_ARGS)
    parser.add_argument("--covertype", default=None, help="path of a local covtype.data(.gz)")
    parser.add_argument("--igl", action="append", default=[], metavar="KEY=VALUE", help="IGLP keyword argument")
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--csv", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    igl_kwargs = {k: _parse_value(v) for k, v in (item.split("=", 1) for item in args.igl)}

    jobs = [(d, name) for d in args.datasets for name in args.learners]
    rows = Parallel(n_jobs=args.jobs)(delayed(one_job)(d, name, args, igl_kwargs) for d, name in jobs)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print(f"# users={args.users} words={args.words} bizarro_share={args.bizarro_share} "
          f"good_share={args.good_share} seed={args.seed} cb_args={args.cb_args!r} igl={igl_kwargs}")
    print(table.round(3).to_string(index=False))
    if "iglp" in args.learners and any(n.startswith("oracle") for n in args.learners):
        print()
        for d in args.datasets:
            sub = table[table.dataset == d].set_index("learner")
            oracle_name = sub.loc[[n for n in sub.index if n.startswith("oracle")], "reward"].idxmax()
            o, i = sub.loc[oracle_name], sub.loc["iglp"]
            print(
                f"{d}: IGL-P(2)/oracle = {i.reward / o.reward:.3f} overall "
                f"(normal {i.normal / o.normal:.3f}, bizarro {i.bizarro / o.bizarro:.3f}); oracle = {oracle_name}"
            )
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
