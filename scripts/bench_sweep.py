"""The same 8-job sweep serially and on a 2-worker Dask LocalCluster: wall times, speed-up, equality.

Jobs: the grounded simulation on synthetic50k (one pass, 50,000 rounds each), 2 seeds x 2
explorers x 2 bizarro shares. Wall times include starting the cluster. The two result
tables must be equal (the ``seconds`` column aside).

    python scripts/bench_sweep.py            # issue 5 aim: speed-up >= 1.7 on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from iglp_vw.sweep import sweep

CONFIG = {
    "mode": "simulate",
    "seeds": [0, 1],
    "learner": {"cb_args": ["--cb_explore_adf --epsilon 0.05", "--cb_explore_adf --epsilon 0.1"]},
    "simulator": {"dataset": "synthetic50k", "passes": 1, "bizarro_share": [0.5, 0.2]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="Rounds per job (default: all 50,000).")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = dict(CONFIG, simulator=dict(CONFIG["simulator"], limit=args.limit))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        serial = sweep(config, tmp / "serial.csv", scheduler="serial")
        t_serial = time.perf_counter() - start
        start = time.perf_counter()
        local = sweep(config, tmp / "local.csv", workers=args.workers)
        t_local = time.perf_counter() - start
        a = pd.read_csv(tmp / "serial.csv").drop(columns="seconds")
        b = pd.read_csv(tmp / "local.csv").drop(columns="seconds")
        equal = a.equals(b)
    cols = ["seed", "cb_args", "bizarro_share", "reward_last20", "reward_last20_normal", "reward_last20_bizarro"]
    print(serial[cols].to_string(index=False))
    print(f"\n{len(serial)} jobs: serial {t_serial:.1f} s, LocalCluster({args.workers} workers) {t_local:.1f} s, "
          f"speed-up {t_serial / t_local:.2f}x (aim >= 1.7); tables equal: {equal}")
    if not equal or (local.error.fillna("") != "").any():
        raise SystemExit("the serial and the cluster results differ, or a job failed")


if __name__ == "__main__":
    main()
