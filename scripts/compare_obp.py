"""The project's IPS, SNIPS and DR against Open Bandit Pipeline's, on simulated logs.

Two steps, because obp 0.5.7 needs Python < 3.11 (and imports PyTorch, which its OPE
estimators do not use):

    python scripts/compare_obp.py export DIR        # here: logs, models, frames -> DIR/*.npz
    python3.10 scripts/compare_obp.py compare DIR   # where obp is installed

``export`` simulates 5 grounded logs (digits, 20 users, 10 words) logged by an ε-greedy CB
fed the naive reward (varied propensities), trains a model on another log of each seed, and
writes, for the model's pmf and greedy policies and three signals (two words and the
inferred reward), the arrays obp takes (built with public functions only:
``events_frame``, ``pmf_matrix``, ``signal_array``, ``reward_estimates``) with the project's
own estimates. ``compare`` prints the largest difference.
"""

from __future__ import annotations

import sys
from pathlib import Path


def export(out: Path, seeds: int = 5) -> None:
    import numpy as np

    from iglp_vw.evaluate import estimate, events_frame, pmf_matrix, reward_estimates, signal_array
    from iglp_vw.replay import replay
    from iglp_vw.sim import GroundedSimulation, load_dataset
    from iglp_vw.sim.logging import write_log

    X, y = load_dataset("digits")
    for seed in range(seeds):
        d = out / f"s{seed}"
        d.mkdir(parents=True, exist_ok=True)
        write_log(GroundedSimulation(X, y, n_users=20, n_words=10, seed=seed), d / "train.txt", seed=seed)
        replay([d / "train.txt"], d / "m", overwrite=True)
        write_log(GroundedSimulation(X, y, n_users=20, n_words=10, seed=seed + 100), d / "eval.txt", policy="naive",
                  seed=seed + 100)
        for policy in ("pmf", "greedy"):
            frame = events_frame(d / "m", [d / "eval.txt"], policy=policy)
            for signal in ("word=w1", "word=w7", "inferred reward"):
                t = estimate(frame, [signal], n_bootstrap=0).iloc[0]
                np.savez(d / f"{policy}-{signal.replace(' ', '_')}.npz", action=frame.action.to_numpy(),
                         reward=signal_array(frame, signal), pscore=frame.prob.to_numpy(),
                         action_dist=pmf_matrix(frame)[:, :, None], q=reward_estimates(frame, signal)[:, :, None],
                         ips=t.ips, snips=t.snips, dr=t.dr)
    print(f"exported to {out}")


def compare(out: Path) -> None:
    import numpy as np
    from obp.ope import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting

    worst, n = 0.0, 0
    for f in sorted(out.glob("s*/*.npz")):
        z = np.load(f)
        kw = dict(action=z["action"], reward=z["reward"], pscore=z["pscore"], action_dist=z["action_dist"])
        ips = InverseProbabilityWeighting().estimate_policy_value(**kw)
        snips = SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**kw)
        dr = DoublyRobust().estimate_policy_value(**kw, estimated_rewards_by_reg_model=z["q"])
        worst = max(worst, abs(ips - z["ips"]), abs(snips - z["snips"]), abs(dr - z["dr"]))
        n += 1
    print(f"{n} (log, policy, signal) cases: largest |iglp-vw - obp| over IPS, SNIPS and DR = {worst:.2e}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("export", "compare"):
        raise SystemExit(__doc__)
    (export if sys.argv[1] == "export" else compare)(Path(sys.argv[2]))
