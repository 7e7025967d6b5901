"""IGL-P inside a coba grounded experiment, over seeds (needs ``pip install ".[coba]"``).

For each seed: digits resampled to --interactions rows, coba's grounded environment
(--users users, half "normal", 100 words, 50 good), then ``Experiment(env, [IGLPLearner,
RandomLearner], SequentialIGL())``. Prints each seed's last-20% true reward and the
distribution over seeds (mean, worst, stalls: below 0.3, uniform is 0.1).

    python scripts/bench_coba.py --seeds 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--interactions", type=int, default=9000, help="About 5 passes of digits.")
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()

    from coba import Environments, Experiment, SequentialIGL
    from coba.learners import RandomLearner
    from coba.pipes import ListSource
    from sklearn.datasets import load_digits

    from iglp_vw.integrations.coba import IGLPLearner

    X, y = load_digits(return_X_y=True)
    X = (X / 16).round(2)
    last = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        idx = np.random.default_rng(seed).integers(len(X), size=args.interactions)
        source = ListSource(list(zip(X[idx].tolist(), y[idx].tolist())))
        envs = Environments.from_supervised(source, label_type="c").grounded(
            args.users, args.users // 2, 100, 50, seed=seed)
        start = time.perf_counter()
        result = Experiment(envs, [IGLPLearner(seed=seed), RandomLearner()], SequentialIGL()).run(
            quiet=True, processes=1)
        table = result.interactions.to_pandas()
        tail = {lid: g.sort_values("index").reward.iloc[-len(g) // 5:].mean() for lid, g in table.groupby("learner_id")}
        last.append(tail[0])
        print(f"seed {seed}: IGL-P {tail[0]:.3f}  random {tail[1]:.3f}  ({time.perf_counter() - start:.1f} s)",
              flush=True)
    last = np.asarray(last)
    print(f"IGL-P last-20% true reward over {len(last)} seeds: mean {last.mean():.3f}, median {np.median(last):.3f}, "
          f"worst {last.min():.3f}, stalls (< 0.3) {(last < 0.3).sum()}")


if __name__ == "__main__":
    main()
