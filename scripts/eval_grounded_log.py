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

from iglp_vw.sim.truth import inference_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--trace", required=True, help="The replay's --trace CSV.")
    parser.add_argument("--truth", required=True, help="`iglp-vw simulate ... --truth` CSV (gzip accepted).")
    args = parser.parse_args()

    scores = inference_scores(args.trace, args.truth)
    print(f"events: {scores['events']:,}")
    for name, suffix in (("all", ""), ("second half", "_second_half")):
        print(f"inferred reward vs true reward ({name}): precision {scores['precision' + suffix]:.3f}  "
              f"recall {scores['recall' + suffix]:.3f}")
    truth = pd.read_csv(args.truth)
    proc = subprocess.run([sys.executable, "-m", "iglp_vw.cli", "predict", "--model-dir", args.model_dir, args.log],
                          capture_output=True, text=True, check=True)
    preds = [json.loads(line) for line in io.StringIO(proc.stdout)]
    greedy = np.array([int(np.argmax(p["pmf"])) for p in preds])
    labels = truth.sort_values("line").label.to_numpy()
    print(f"learned policy's greedy action = hidden label: {(greedy == labels).mean():.3f} (uniform: "
          f"{1 / len(preds[0]['pmf']):.3f})")


if __name__ == "__main__":
    main()
