"""Speed of the IGL-P learn loop through the Python API vs VW's own C++ driver on the same events.

Builds N logged grounded-simulation events (uniform logging policy, word feedback),
then times:
  - ``IGLP.learn`` over them (off-policy, dict features, as a user drives the API);
  - ``IGLP.learn_many`` on the same list (the IK in a forked process of its own, a few
    batches behind; checked here to give the loop's inferred rewards);
  - ``python -m vowpalwabbit <IGL-P's own CB arguments> -d FILE`` (the CB alone) on the
    same events written as VW text ADF, its start-up time (one event) subtracted.
Prints interactions/s of each and their ratio (issue 3 bar: >= 1/8).

    python scripts/bench_speed.py --events 20000 --dataset synthetic50k
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from iglp_vw import IGLP
from iglp_vw.sim import GroundedSimulation, load_dataset
from iglp_vw.vw import format_namespaces


def make_events(dataset, n, seed):
    X, y = load_dataset(dataset, seed=seed)
    sim = GroundedSimulation(X, y, passes=max(1, -(-n // len(y))), seed=seed)
    rng = np.random.default_rng(seed)
    events = []
    for t, rnd in enumerate(sim):
        if t >= n:
            break
        a = int(rng.integers(sim.num_actions))
        fb, reward = sim.feedback(rnd, a, rng)
        events.append((rnd["context"], rnd["actions"], a, 1.0 / sim.num_actions, fb, reward))
    return events


def write_adf(events, path):
    with open(path, "w") as fh:
        for ctx, actions, a, p, fb, reward in events:
            fh.write("shared " + format_namespaces(ctx) + "\n")
            for k, act in enumerate(actions):
                label = f"0:{-float(reward):g}:{p:g} " if k == a else ""
                fh.write(label + format_namespaces(act) + "\n")
            fh.write("\n")


def time_driver(args, path):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vowpalwabbit", *args.split(), "-d", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"VW driver failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--dataset", default="synthetic50k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    events = make_events(args.dataset, args.events, args.seed)
    learner = IGLP(10, seed=args.seed)
    start = time.perf_counter()
    for ctx, actions, a, p, fb, _ in events:
        learner.learn(ctx, actions, a, p, fb)
    api_seconds = time.perf_counter() - start
    cb_args = learner.cb_full_args
    rows = [(ctx, actions, a, p, fb) for ctx, actions, a, p, fb, _ in events]
    batch = IGLP(10, seed=args.seed)
    start = time.perf_counter()
    rhos = batch.learn_many(rows)
    many_seconds = time.perf_counter() - start
    loop = IGLP(10, seed=args.seed)
    if not np.array_equal(rhos, [loop.learn(*row) for row in rows]):
        raise SystemExit("learn_many's inferred rewards differ from the loop's")

    with tempfile.TemporaryDirectory() as tmp:
        full, one = Path(tmp) / "events.txt", Path(tmp) / "one.txt"
        write_adf(events, full)
        write_adf(events[:1], one)
        startup = min(time_driver(cb_args, one) for _ in range(3))
        driver_seconds = time_driver(cb_args, full) - startup

    api_rate, vw_rate = len(events) / api_seconds, len(events) / driver_seconds
    many_rate = len(events) / many_seconds
    print(f"events: {len(events)} ({args.dataset}), CB args: {cb_args}")
    print(f"IGL-P learn loop (API, 1 CB + 2 IK VW calls + decoder per event): {api_rate:10.0f} interactions/s")
    print(f"VW C++ driver, CB alone (start-up {startup:.2f}s subtracted):       {vw_rate:10.0f} interactions/s")
    print(f"IGL-P learn_many (the IK in a process of its own):               {many_rate:10.0f} interactions/s")
    print(f"ratio IGL-P / VW driver: learn loop {api_rate / vw_rate:.3f}, learn_many {many_rate / vw_rate:.3f}  "
          f"(issue 3 bar >= 0.125; issue 12 bar >= 0.25)")


if __name__ == "__main__":
    main()
