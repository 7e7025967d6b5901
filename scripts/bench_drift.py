"""Daily retraining under changing conventions: a continued model against fresh ones.

For each scenario of :mod:`iglp_vw.sim.drift` (grounded digits, 100 users, 100 words,
uniform logging, ~9,000 events a day) and each seed, writes one log per day, then trains

- *continued*: day 1 from scratch, then each later day with ``replay --continue`` on the
  day before's model (the daily routine);
- *fresh*: each day's log alone, from scratch;
- *all* (last day only): one replay of every day's log in order, and the same with nothing
  fading (``half_life`` None: what fading costs);

and prints, per day, the greedy true reward of each model on the next day's contexts and
the recall/precision of its inferred reward over the day's second half (``--trace``
against the simulator's truth), then the issue's bars: continued / fresh on the day after
the change (sudden scenarios), continued / all on the last day and continued >= fresh each
day (stable), continued >= fresh on days 3-5 (gradual).

    python scripts/bench_drift.py                                   # every scenario, seeds 0-2, 5 days
    python scripts/bench_drift.py --scenarios swap --seeds 0 1 2 3 4 --days 2
    python scripts/bench_drift.py --scenarios swap --learner-params '{}'     # nothing fading
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from iglp_vw import IGLP
from iglp_vw.decoder import RECOMMENDED_HALF_LIFE
from iglp_vw.replay import replay
from iglp_vw.sim.drift import SCENARIOS, DriftWorld
from iglp_vw.sim.logging import write_log
from iglp_vw.sim.truth import inference_scores


def greedy(model_dir: Path, sim, events: int) -> float:
    """Greedy true reward of the saved policy on the first ``events`` rounds of ``sim``."""
    learner = IGLP.load(model_dir)
    hits = n = 0
    for rnd in sim:
        if n >= events:
            break
        pmf = learner.predict(rnd["context"], rnd["actions"])
        hits += int(np.argmax(pmf)) == rnd["label"]
        n += 1
    return hits / max(n, 1)


def _train(logs, model, trace, params, continued=False) -> dict:
    replay(logs, model, learner_params=params, trace=trace, continue_training=continued, overwrite=not continued)
    return inference_scores(trace, logs[-1].with_suffix(".truth.csv")) if len(logs) == 1 else {}


def one(scenario: str, seed: int, days: int, eval_events: int, params: dict, work: Path, world_args: dict) -> list:
    work = work / f"{scenario}-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    world = DriftWorld(scenario, seed=seed, **world_args)
    logs = []
    for d in range(1, days + 1):
        log = work / f"day{d}.txt"
        write_log(world.day(d), log, seed=seed * 1000 + d, truth=log.with_suffix(".truth.csv"))
        logs.append(log)
    params = {"seed": seed, **params}
    rows = []
    for d, log in enumerate(logs, start=1):
        nxt = world.day(d + 1)
        row = {"scenario": scenario, "seed": seed, "day": d}
        cont = _train([log], work / "continued", work / f"c{d}.csv", params, continued=d > 1)
        row["continued"] = greedy(work / "continued", nxt, eval_events)
        if d == 1:
            fresh = cont
            row["fresh"] = row["continued"]
        else:
            fresh = _train([log], work / f"fresh{d}", work / f"f{d}.csv", params)
            row["fresh"] = greedy(work / f"fresh{d}", nxt, eval_events)
        for name, scores in (("continued", cont), ("fresh", fresh)):
            row[f"{name}_recall"] = scores["recall_second_half"]
            row[f"{name}_precision"] = scores["precision_second_half"]
        if d == days and days > 1:
            _train(logs, work / "all", work / "all.csv", params)
            row["all"] = greedy(work / "all", nxt, eval_events)
            unfaded = {**params, "decoder_args": {**params.get("decoder_args", {}), "half_life": None}}
            _train(logs, work / "all-unfaded", work / "all-unfaded.csv", unfaded)
            row["all_unfaded"] = greedy(work / "all-unfaded", nxt, eval_events)
        rows.append(row)
    return rows


def bars(table: pd.DataFrame, days: int) -> list:
    """The issue's bars, one line each, over the seeds (mean and worst)."""
    lines = []
    by = table.groupby("scenario")
    for scenario, part in by:
        if scenario in ("swap", "meaning", "new-signal"):
            day = part[part.day == 2]
            g, r = day.continued / day.fresh, day.continued_recall / day.fresh_recall.clip(lower=1e-9)
            lines.append(f"{scenario}: day 2 continued/fresh greedy mean {g.mean():.3f} worst {g.min():.3f} "
                         f"(bar 0.9), recall ratio mean {r.mean():.3f} worst {r.min():.3f} (bar 0.8)")
        elif scenario == "stable":
            last = part[part.day == days]
            ratio = last.continued / last["all"]
            cost = last.continued / last.all_unfaded
            behind = (part.continued < part.fresh)[part.day > 1]
            lines.append(f"stable: day {days} continued/all mean {ratio.mean():.3f} worst {ratio.min():.3f} "
                         f"(bar 0.98), continued/all with nothing fading mean {cost.mean():.3f} worst "
                         f"{cost.min():.3f}; days continued < fresh {int(behind.sum())} of {int(len(behind))} (bar 0)")
        elif scenario == "gradual":
            late = part[part.day >= 3]
            behind = late.continued < late.fresh
            diff = late.continued - late.fresh
            lines.append(f"gradual: days 3-{days} continued - fresh mean {diff.mean():+.3f} worst {diff.min():+.3f}; "
                         f"days behind {int(behind.sum())} of {len(late)} (bar 0)")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--eval-events", type=int, default=2000, help="Next-day rounds the greedy policy is scored on.")
    ap.add_argument("--learner-params", default=json.dumps({"decoder_args": {"half_life": RECOMMENDED_HALF_LIFE}}),
                    help=f"IGLP arguments as JSON (default: %(default)s, --half-life {RECOMMENDED_HALF_LIFE}); "
                         "'{}': nothing fades.")
    ap.add_argument("--users", type=int, default=100, help="Users (100: ~90 events each a day).")
    ap.add_argument("--passes", type=int, default=5, help="Passes over digits a day (5: 8,985 events).")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    params = json.loads(args.learner_params)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        jobs = [(s, seed) for s in args.scenarios for seed in args.seeds]
        world = {"n_users": args.users, "passes": args.passes, "dataset": args.dataset}
        out = Parallel(n_jobs=args.jobs)(delayed(one)(s, seed, args.days, args.eval_events, params, work, world)
                                         for s, seed in jobs)
    table = pd.DataFrame([row for rows in out for row in rows])
    pd.set_option("display.width", 200)
    print(table.round(3).to_string(index=False))
    print()
    mean = table.groupby(["scenario", "day"]).mean(numeric_only=True).drop(columns="seed")
    print(f"# mean over seeds {args.seeds}: {args.dataset} x {args.passes} passes a day, {args.users} users, "
          f"learner {params}")
    print(mean.round(3).to_string())
    print()
    for line in bars(table, args.days):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
