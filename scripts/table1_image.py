"""The paper's Table 1: IGL-P(2) and IGL-P(3) learned offline from an image-recommendation log.

A production-like baseline, an epsilon-greedy VW CB trained on a hand-engineered reward
(click + 2 like - 2 dislike), recommends images in the simulator of ``iglp_vw.sim.image``
and writes the log (VW text ADF with its probabilities and the click / like / dislike
feedback). IGL-P(2) and IGL-P(3) (dislike as the definitely-negative signal, alpha 0.3)
learn from that log by ``iglp-vw replay``; ``iglp_vw.evaluate`` then estimates, off-policy
on the same log, each learned policy's rate of clicks, likes and dislikes relative to the
baseline (SNIPS lift, bootstrap 95% interval): the format of Table 1. The simulator also
knows the latent reward, so the table adds each policy's true share of r = +1 and r = -1
recommendations (exact expectations over the log's contexts; the paper could not do this).

Expected, as in the paper: IGL-P(2) raises dislikes; IGL-P(3) does not, and matches the
hand-engineered baseline.

Writes to --out: log.txt, truth.csv, models/, table1.csv, table1.png.

    python scripts/table1_image.py --out out/table1 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iglp_vw import IGLP  # noqa: E402
from iglp_vw.baselines import RewardCB  # noqa: E402
from iglp_vw.evaluate import evaluate  # noqa: E402
from iglp_vw.logs import read_events  # noqa: E402
from iglp_vw.replay import replay  # noqa: E402
from iglp_vw.sim.image import SIGNALS, ImageRecSimulation  # noqa: E402
from iglp_vw.sim.logging import write_policy_log  # noqa: E402


def true_shares(model_dir, log, truth, sim) -> dict:
    """Expected share of r = +1 and r = -1 recommendations of a policy over the log's contexts."""
    learner = IGLP.load(model_dir)
    users = truth.set_index("line").user
    pos = neg = 0.0
    n = 0
    for event in read_events(log):
        pmf = np.asarray(learner.predict(event.context, event.actions))
        r = np.array([sim.latent_reward(int(users[event.line]), a) for a in range(len(pmf))])
        pos += pmf[r == 1].sum()
        neg += pmf[r == -1].sum()
        n += 1
    return {"true_r+1": pos / n, "true_r-1": neg / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/table1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=60000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--epsilon", type=float, default=0.2, help="The baseline's exploration.")
    parser.add_argument("--bootstrap", type=int, default=500)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    sim = ImageRecSimulation(n_users=args.users, rounds=args.rounds, seed=args.seed)
    baseline = RewardCB(sim.num_actions, sim.hand_engineered_reward, f"--cb_explore_adf --epsilon {args.epsilon}",
                        seed=args.seed)
    log, truth_path = out / "log.txt", out / "truth.csv"
    write_policy_log(sim, baseline, log, seed=args.seed, cost=sim.hand_engineered_reward, truth=truth_path)
    truth = pd.read_csv(truth_path)

    policies = {
        "IGL-P(2)": {"states": 2},
        "IGL-P(3)": {"states": 3, "alpha": args.alpha, "definitely_negative": ["dislike"]},
    }
    rows = []
    baseline_true = {"true_r+1": (truth.reward == 1).mean(), "true_r-1": (truth.reward == -1).mean()}
    for name, params in policies.items():
        model = out / "models" / name.replace("(", "").replace(")", "")
        replay([log], model, learner_params={**params, "seed": args.seed})
        table = evaluate(model, [log], signals=list(SIGNALS), n_boot=args.bootstrap, seed=args.seed)
        shares = true_shares(model, log, truth, sim)
        for _, r in table.iterrows():
            rows.append({"algorithm": name, "signal": r.signal, "lift": r.lift, "lift_low": r.lift_low,
                         "lift_high": r.lift_high, "baseline_rate": r.logging_rate, "policy_rate_snips": r.snips,
                         **shares})
    result = pd.DataFrame(rows)
    result.to_csv(out / "table1.csv", index=False)

    print("Relative lift over the hand-engineered baseline (SNIPS, bootstrap 95% interval):")
    print(f"{'algorithm':<10}" + "".join(f"{s:>26}" for s in SIGNALS) + f"{'true r=+1':>11}{'true r=-1':>11}")
    print(f"{'baseline':<10}" + "".join(f"{'1.000':>26}" for _ in SIGNALS)
          + f"{baseline_true['true_r+1']:>11.3f}{baseline_true['true_r-1']:>11.3f}")
    for name in policies:
        part = result[result.algorithm == name].set_index("signal")
        cells = "".join(f"{f'{part.lift[s]:.3f} [{part.lift_low[s]:.3f}, {part.lift_high[s]:.3f}]':>26}" for s in SIGNALS)
        print(f"{name:<10}{cells}{part['true_r+1'].iloc[0]:>11.3f}{part['true_r-1'].iloc[0]:>11.3f}")

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.35
    x = np.arange(len(SIGNALS))
    for i, name in enumerate(policies):
        part = result[result.algorithm == name].set_index("signal").loc[list(SIGNALS)]
        err = np.vstack([part.lift - part.lift_low, part.lift_high - part.lift]).clip(min=0)
        ax.bar(x + (i - 0.5) * width, part.lift, width, yerr=err, capsize=4, label=name)
    ax.axhline(1.0, color="black", lw=1, ls="--", label="baseline")
    ax.set_xticks(x, SIGNALS)
    ax.set_ylabel("lift over the hand-engineered baseline")
    ax.set_title("image recommendation, learned offline (95% bootstrap intervals)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "table1.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
