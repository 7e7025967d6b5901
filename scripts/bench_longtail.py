"""Long-tail users: how well a replay decodes a log whose users are seen once or twice.

For each population (share of bizarro users B, or conventions by segment) and each number
of distinct user ids, simulates a grounded log (synthetic50k, uniform logging, 200,000
events by default), replays it, and prints the inferred reward's precision and recall
against the simulator's truth (overall and over the second half) and the learned greedy
policy's accuracy on the log's contexts, with its ratio to the same population with 100
users (every user well known).

    python scripts/bench_longtail.py                                # B = 0, 0.2; 100, 10k, 1M users; segments
    python scripts/bench_longtail.py --events 50000 --users 100 1000000 --populations 0.0
    python scripts/bench_longtail.py --events 50000 --users 100 1000000 --populations segments8 \
        --replay-args "--feedback-model signals"                   # 8 countries, half of them bizarro

Populations: a number is the bizarro share; ``segments`` is two countries that speak
differently (every user carries a country feature), which only the segment can tell.
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from iglp_vw.sim.truth import inference_scores

CLI = [sys.executable, "-m", "iglp_vw.cli"]


def _run(cmd):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return proc.stdout


def one(work: Path, population: str, users: int, events: int, seed: int, replay_args=()) -> dict:
    name = f"{population}-{users}"
    log, truth, model, trace = (work / f"{name}.txt", work / f"{name}.truth.csv", work / f"m-{name}",
                                work / f"{name}.trace.csv")
    # "segments": two countries that speak differently; "segmentsN": N countries, the odd ones bizarro.
    pop = (["--segments", population[len("segments"):] or "2"] if population.startswith("segments")
           else ["--bizarro-share", population])
    _run(CLI + ["simulate", "grounded", "--dataset", "synthetic50k", "--passes", str(-(-events // 50_000)),
                "--events", str(events), "--users", str(users), *pop, "--seed", str(seed), "--out", log,
                "--truth", truth])
    start = time.perf_counter()
    out = _run(CLI + ["replay", log, "--model-dir", model, "--trace", trace, "--seed", str(seed), *replay_args])
    seconds = time.perf_counter() - start
    scores = inference_scores(trace, truth)
    preds = [json.loads(line) for line in io.StringIO(_run(CLI + ["predict", "--model-dir", model, log]))]
    greedy = np.array([int(np.argmax(p["pmf"])) for p in preds])
    labels = pd.read_csv(truth).sort_values("line").label.to_numpy()
    warned = [line for line in out.splitlines() if line.startswith("warning:")]
    for path in (log, trace):
        path.unlink()
    return {"population": population, "users": users, **scores, "accuracy": float((greedy == labels).mean()),
            "warned": bool(warned), "seconds": round(seconds, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, nargs="+", default=[100, 10_000, 1_000_000])
    parser.add_argument("--populations", nargs="+", default=["0.0", "0.2", "segments"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--replay-args", default="", help="More `iglp-vw replay` options, e.g. \"--max-users 4096\".")
    args = parser.parse_args(argv)
    users = sorted(set(args.users) | {100})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for population in args.populations:
            for n in users:
                rows.append(one(work, population, n, args.events, args.seed, shlex.split(args.replay_args)))
                print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    base = table[table.users == 100].set_index("population").accuracy
    table["accuracy / 100 users"] = table.accuracy / table.population.map(base)
    pd.set_option("display.width", 200)
    print()
    print(f"# synthetic50k, {args.events:,} events, uniform logging, seed {args.seed}")
    print(table.drop(columns=["events"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
