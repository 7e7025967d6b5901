"""The paper's Fig. 4: fair news recommendation across reader groups with 3 latent states.

Readers of three outlets react to articles in their own ways (``iglp_vw.sim.news``).
Three learners play on-policy for --rounds rounds:
  - IGL-P(3): learns the reward from the reactions, ``angry`` as the definitely-negative
    signal (alpha --alpha);
  - CB-emoji: a VW CB whose reward counts an emoji reaction as 5 likes;
  - CB-comment: a VW CB whose reward is a comment.
For each learner and outlet, over the second half of the rounds: the fraction of
recommendations with latent r = +1 and with r = -1. Expected: IGL-P(3) even across the
groups; the hand-weighted CBs uneven, some groups getting more r = -1 content.

Writes to --out: fig4.csv, fig4.png. With ``--seeds N`` (N > 1) it runs IGL-P(3) alone for N
seeds and prints the distribution of its shares instead.

    python scripts/fig4_news.py --out out/fig4 --seed 0
    python scripts/fig4_news.py --seeds 4 [--shuffle]
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
from iglp_vw.sim.news import OUTLETS, NewsSimulation  # noqa: E402
from iglp_vw.sim.play import play  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/fig4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="N > 1: IGL-P(3) alone over seeds --seed.. --seed+N-1")
    parser.add_argument("--rounds", type=int, default=40000)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--shuffle", action="store_true",
                        help="New article order every round (IGL-P's default IK scores the articles' features).")
    args = parser.parse_args()
    if args.seeds > 1:
        return over_seeds(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    sim = NewsSimulation(rounds=args.rounds, seed=args.seed, shuffle=args.shuffle)
    k = sim.num_actions
    learners = {
        "IGL-P(3)": IGLP(states=3, alpha=args.alpha, definitely_negative={"angry"}, seed=args.seed),
        "CB-emoji": RewardCB(k, sim.emoji_reward, seed=args.seed),
        "CB-comment": RewardCB(k, sim.comment_reward, seed=args.seed),
    }
    rows = []
    for name, learner in learners.items():
        frame = play(learner, sim, seed=args.seed, keep=["outlet"])
        tail = frame[frame.t >= len(frame) // 2]
        for outlet in OUTLETS:
            part = tail[tail.outlet == outlet]
            rows.append({"algorithm": name, "outlet": outlet, "n": len(part),
                         "r+1": (part.reward == 1).mean(), "r-1": (part.reward == -1).mean()})
    table = pd.DataFrame(rows)
    table.to_csv(out / "fig4.csv", index=False)
    spread = table.groupby("algorithm")[["r+1", "r-1"]].agg(lambda v: v.max() - v.min())
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nspread across outlets (max - min):")
    print(spread.to_string(float_format=lambda v: f"{v:.3f}"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    width = 0.27
    x = np.arange(len(OUTLETS))
    for ax, col, title in ((axes[0], "r+1", "share of r = +1 recommendations"),
                           (axes[1], "r-1", "share of r = -1 recommendations")):
        for i, name in enumerate(learners):
            part = table[table.algorithm == name].set_index("outlet").loc[list(OUTLETS)]
            ax.bar(x + (i - 1) * width, part[col], width, label=name)
        ax.set_xticks(x, [f"{o} readers" for o in OUTLETS])
        ax.set_title(title)
        ax.set_ylim(0, 1.15)
        ax.legend(ncol=3, loc="upper center", fontsize=8)
    fig.suptitle(f"news recommendation, second half of {args.rounds:,} rounds")
    fig.tight_layout()
    fig.savefig(out / "fig4.png", dpi=120)
    plt.close(fig)


def _igl_shares(seed, rounds, alpha, shuffle):
    sim = NewsSimulation(rounds=rounds, seed=seed, shuffle=shuffle)
    learner = IGLP(states=3, alpha=alpha, definitely_negative={"angry"}, seed=seed)
    frame = play(learner, sim, seed=seed, keep=["outlet"])
    tail = frame[frame.t >= len(frame) // 2]
    return [{"seed": seed, "outlet": o, "r+1": (part.reward == 1).mean(), "r-1": (part.reward == -1).mean()}
            for o, part in tail.groupby("outlet")]


def over_seeds(args) -> None:
    from joblib import Parallel, delayed

    seeds = range(args.seed, args.seed + args.seeds)
    rows = Parallel(n_jobs=-1)(delayed(_igl_shares)(s, args.rounds, args.alpha, args.shuffle) for s in seeds)
    table = pd.DataFrame([r for part in rows for r in part])
    per_seed = table.groupby("seed")[["r+1", "r-1"]].mean()
    print(table.pivot(index="seed", columns="outlet", values=["r+1", "r-1"]).round(3).to_string())
    print("mean over seeds per outlet:", table.groupby("outlet")[["r+1", "r-1"]].mean().round(3).to_dict())
    print(f"IGL-P(3), {len(per_seed)} seeds{', shuffled' if args.shuffle else ''}: share r=+1 mean "
          f"{per_seed['r+1'].mean():.3f} (seeds {per_seed['r+1'].min():.3f}-{per_seed['r+1'].max():.3f}), "
          f"worst outlet {table['r+1'].min():.3f}; share r=-1 mean {per_seed['r-1'].mean():.3f}, "
          f"worst outlet {table['r-1'].max():.3f}")


if __name__ == "__main__":
    main()
