"""Free-text feedback given as raw values: what it does to the inferred reward (a known limit).

Simulates a grounded log (synthetic50k, uniform logging, 100 users, 100 words), writes a copy
where every --every-th event's word is replaced by a unique comment (each its own feedback
value), replays both, and prints for each the events inferred rewarded, the IK's group ratios
and the replay's time.

    python scripts/free_text_feedback.py --events 60000 --every 10
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--every", type=int, default=10, help="One event in this many gets a unique comment.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from iglp_vw import IGLP
    from iglp_vw.replay import replay

    with tempfile.TemporaryDirectory() as tmp:
        words = Path(tmp) / "words.txt"
        subprocess.run([sys.executable, "-m", "iglp_vw.cli", "simulate", "grounded", "--dataset", "synthetic50k",
                        "--passes", str(-(-args.events // 50_000)), "--events", str(args.events), "--users", "100",
                        "--seed", str(args.seed), "--out", str(words)], check=True, capture_output=True)
        comments = Path(tmp) / "comments.txt"
        events = words.read_text().strip("\n").split("\n\n")
        with open(comments, "w") as out:
            for t, event in enumerate(events):
                if t % args.every == 0:
                    event = re.sub(r"\|Feedback word=\S+", f"|Feedback comment=c{t}", event)
                out.write(event + "\n\n")
        for name, log in (("words only", words), (f"one event in {args.every} a unique comment", comments)):
            start = time.perf_counter()
            summary = replay([log], Path(tmp) / name)
            seconds = time.perf_counter() - start
            ratios = IGLP.load(Path(tmp) / name).group_ratios()
            print(f"{name}: {summary.events:,} events in {seconds:.1f} s; inferred +1: {summary.rewards[1.0]:,}; "
                  f"group ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
