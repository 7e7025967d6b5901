"""How well a replay of a simulated log learned, against the simulator's hidden truth.

    iglp-vw replay data/grounded_digits.txt.gz --model-dir model --trace trace.csv
    python scripts/eval_grounded_log.py --model-dir model --log data/grounded_digits.txt.gz \
        --trace trace.csv --truth data/grounded_digits.truth.csv.gz

Prints the inferred reward's precision and recall against the true reward of the logged
action (overall and on the second half of the log), and the accuracy of the learned
policy's greedy action against the hidden label on the log's contexts.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--trace", required=True, help="The replay's --trace CSV.")
    parser.add_argument("--truth", required=True, help="`iglp-vw simulate ... --truth` CSV (gzip accepted).")
    args = parser.parse_args()

    trace = pd.read_csv(args.trace)
    truth = pd.read_csv(args.truth)
    both = trace.merge(truth, on="line")
    print(f"events: {len(both):,} (trace {len(trace):,}, truth {len(truth):,})")
    for name, part in (("all", both), ("second half", both.iloc[len(both) // 2:])):
        inferred, true = part.inferred_reward == 1, part.reward == 1
        precision = (true & inferred).sum() / max(inferred.sum(), 1)
        recall = (true & inferred).sum() / max(true.sum(), 1)
        print(f"inferred reward vs true reward ({name}): precision {precision:.3f}  recall {recall:.3f}")
    proc = subprocess.run([sys.executable, "-m", "iglp_vw.cli", "predict", "--model-dir", args.model_dir, args.log],
                          capture_output=True, text=True, check=True)
    preds = [json.loads(line) for line in io.StringIO(proc.stdout)]
    greedy = np.array([int(np.argmax(p["pmf"])) for p in preds])
    labels = truth.sort_values("line").label.to_numpy()
    print(f"learned policy's greedy action = hidden label: {(greedy == labels).mean():.3f} (uniform: "
          f"{1 / len(preds[0]['pmf']):.3f})")


if __name__ == "__main__":
    main()
