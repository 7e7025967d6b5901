"""The paper's Fig. 2: users and words as the learner embeds them, and learning curves.

Runs the grounded simulation (digits, 5 passes, 100 users half bizarro, 100 words half
good) on-policy with IGL-P(2), an oracle CB fed the true reward, a naive CB (good word =
reward for everyone) and uniform play. Then reads the trained model back from disk and
plots the users and the words in the first two directions of its own communication-group
decoder (``CommunicationDecoder.coordinates``; no ground truth is used to place them), coloured by
their hidden type, and reports how well one threshold on the first coordinate separates
the types (the decoder's sign is arbitrary, so the better of the two orientations).

Writes to --out: embedding.png, embedding.csv, curves.png, curves.csv, summary.csv.

    python scripts/fig2_grounded.py --out out/fig2 --seed 0
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
from iglp_vw.baselines import RewardCB, Uniform  # noqa: E402
from iglp_vw.sim import GroundedSimulation, load_dataset, run  # noqa: E402


def threshold_accuracy(x: np.ndarray, labels: np.ndarray) -> float:
    """Best accuracy of one threshold on ``x`` predicting boolean ``labels`` (either orientation)."""
    order = np.argsort(x)
    ys = labels[order].astype(int)
    n = len(ys)
    # Predict True above the cut: correct = (False below) + (True above), for every cut.
    below_false = np.concatenate([[0], np.cumsum(1 - ys)])
    above_true = np.concatenate([np.cumsum(ys[::-1])[::-1], [0]])
    best = (below_false + above_true).max() / n
    return float(max(best, 1 - (below_false + above_true).min() / n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/fig2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--words", type=int, default=100)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = load_dataset("digits", seed=args.seed)
    sim = GroundedSimulation(X, y, n_users=args.users, n_words=args.words, passes=args.passes, seed=args.seed)
    k = sim.num_actions
    learners = {
        "IGL-P(2)": IGLP(k, seed=args.seed),
        "oracle CB": RewardCB(k, sim.true_reward, seed=args.seed),
        "naive CB": RewardCB(k, sim.naive_reward, seed=args.seed),
        "uniform": Uniform(k, seed=args.seed),
    }
    curves, summary = {}, []
    for name, learner in learners.items():
        frame = run(learner, sim, seed=args.seed)
        curves[name] = frame.reward.rolling(500, min_periods=1).mean()
        tail = frame[frame.t >= int(0.8 * len(frame))]
        summary.append({"learner": name, "reward_last20": tail.reward.mean(),
                        "normal": tail[~tail.bizarro].reward.mean(), "bizarro": tail[tail.bizarro].reward.mean()})
    learners["IGL-P(2)"].save(out / "model")

    # The embedding, read back from the saved model.
    model = IGLP.load(out / "model")
    users, words = model.decoder.coordinates(2)
    rows = []
    for key, coord in users.items():
        uid = int(key.split("=u")[1])
        rows.append({"kind": "user", "key": key, "x": coord[0], "y": coord[1], "hidden": "bizarro" if sim.bizarro[uid] else "normal"})
    for key, coord in words.items():
        wid = int(key.split("=w")[1])
        rows.append({"kind": "word", "key": key, "x": coord[0], "y": coord[1], "hidden": "good" if sim.good[wid] else "bad"})
    emb = pd.DataFrame(rows)
    emb.to_csv(out / "embedding.csv", index=False)
    user_acc = threshold_accuracy(emb[emb.kind == "user"].x.to_numpy(), emb[emb.kind == "user"].hidden.eq("bizarro").to_numpy())
    word_acc = threshold_accuracy(emb[emb.kind == "word"].x.to_numpy(), emb[emb.kind == "word"].hidden.eq("good").to_numpy())

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, kind, colors in ((axes[0], "user", {"normal": "tab:blue", "bizarro": "tab:red"}),
                             (axes[1], "word", {"good": "tab:green", "bad": "tab:orange"})):
        part = emb[emb.kind == kind]
        for hidden, color in colors.items():
            sel = part[part.hidden == hidden]
            ax.scatter(sel.x, sel.y, s=14, c=color, label=f"{hidden} ({len(sel)})", alpha=0.8)
        acc = user_acc if kind == "user" else word_acc
        ax.set_title(f"{kind}s in IGL-P's decoder (threshold accuracy {acc:.2f})")
        ax.set_xlabel("direction 1 (the group code)")
        ax.set_ylabel("direction 2")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "embedding.png", dpi=120)
    plt.close(fig)

    curve_frame = pd.DataFrame(curves)
    curve_frame.index.name = "round"
    curve_frame.to_csv(out / "curves.csv")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in curve_frame:
        ax.plot(curve_frame.index, curve_frame[name], label=name)
    ax.set_xlabel("round")
    ax.set_ylabel("true reward (rolling mean, 500 rounds)")
    ax.set_title(f"grounded simulation, digits x {args.passes} passes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)

    table = pd.DataFrame(summary)
    table["user_type_separation"] = user_acc
    table["word_type_separation"] = word_acc
    table.to_csv(out / "summary.csv", index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"separation of hidden types by one threshold on the learned direction: "
          f"users {user_acc:.3f}, words {word_acc:.3f}")


if __name__ == "__main__":
    main()
