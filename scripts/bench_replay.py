"""Offline replay speed and memory: ``iglp-vw replay`` vs VW's own driver on the same log.

Generates a grounded log (synthetic50k: 10 actions, 20 features; --users users (100 by
default; user ids drawn from that many, so 10**6 users in 10**6 events are mostly seen
once), 100 words; uniform logging policy) as VW text ADF, then measures on the same file:
  - ``iglp-vw replay LOG`` (IK + decoder in Python, the CB in VW's driver), wall time;
  - ``python -m vowpalwabbit <the replay's own CB arguments> -d LOG`` (the CB alone),
    wall time;
and prints events/s of each (fastest of --repeat runs), their ratio (issue 4 bar: >= 1/4, aim >= 1/2) and the
replay's peak RSS (Python process, the IK's process and VW's driver), for each log length given, so that
memory can be seen not to grow with the length, nor with the number of users (the
decoder keeps at most --max-users of them; issue 12 bar: RSS with 10**6 users <= 1.2 x
RSS with 100).

    python scripts/bench_replay.py --events 100000 1000000
    python scripts/bench_replay.py --events 1000000 --users 100 10000 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_log(path: Path, n: int, seed: int, users: int) -> float:
    # In a child process, so that this one stays small and starts the replay lean.
    return run([sys.executable, "-m", "iglp_vw.cli", "simulate", "grounded", "--dataset", "synthetic50k",
                "--passes", str(-(-n // 50_000)), "--events", str(n), "--seed", str(seed), "--users", str(users),
                "--out", str(path)])


def warm(path: Path) -> None:
    """Read the file once so the timed command finds it in the page cache (this VM evicts it)."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def run(cmd, **kw) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def measure(work: Path, n: int, users: int, args):
    log = work / f"grounded-{n}-{users}.txt"
    gen = make_log(log, n, args.seed, users)
    size = log.stat().st_size / 2**20
    print(f"{n:,} events, {users:,} users: log {size:,.0f} MB written in {gen:.0f} s", flush=True)
    model = work / f"model-{n}-{users}"
    replays, drivers, rss = [], [], []
    for _ in range(args.repeat):
        warm(log)
        replays.append(run([sys.executable, "-m", "iglp_vw.cli", "replay", str(log), "--model-dir", str(model),
                            "--seed", str(args.seed), "--overwrite"]))
        summary = json.loads((model / "replay.json").read_text())["summary"]
        rss.append((summary["peak_rss_mb"], summary["driver_peak_rss_mb"], summary.get("ik_peak_rss_mb", 0.0)))
        cb_args = json.loads((model / "config.json").read_text())["cb_full_args"]
        warm(log)
        drivers.append(run([sys.executable, "-m", "vowpalwabbit", *cb_args.split(), "-d", str(log), "--quiet"]))
    t_replay, t_vw = min(replays), min(drivers)
    print(f"  iglp-vw replay: {', '.join(f'{t:.1f}' for t in replays)} s   "
          f"VW driver (CB alone, {cb_args}): {', '.join(f'{t:.1f}' for t in drivers)} s", flush=True)
    log.unlink()
    return n / t_replay, n / t_vw, max(r[0] for r in rss), max(r[1] for r in rss), max(r[2] for r in rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--users", type=int, nargs="+", default=[100],
                        help="Distinct user ids drawn from (one log, and one line, per value).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="Time each command this many times, alternating, and keep the fastest "
                             "(VW's driver here is bimodal: the same run takes 0.9 s or 2.3 s).")
    parser.add_argument("--workdir", default=None, help="Where the logs go (default: a temporary directory).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in args.events:
            for users in args.users:
                rows.append((n, users, *measure(work, n, users, args)))

    print()
    print(f"{'events':>10} {'users':>10} {'replay ev/s':>12} {'VW ev/s':>10} {'ratio':>7} {'RSS py MB':>10} "
          f"{'RSS IK MB':>10} {'RSS VW MB':>10} {'RSS/RSS(fewest users)':>22}")
    base = {}
    for n, users, r, v, rss, drss, ikrss in rows:
        base.setdefault(n, rss)
        print(f"{n:>10,} {users:>10,} {r:>12,.0f} {v:>10,.0f} {r / v:>7.3f} {rss:>10.0f} {ikrss:>10.0f} {drss:>10.0f} "
              f"{rss / base[n]:>22.2f}")
    print("bars (issue 12): ratio >= 0.5 (aim 0.6); RSS with 10**6 users <= 1.2 x RSS with 100")


if __name__ == "__main__":
    main()
