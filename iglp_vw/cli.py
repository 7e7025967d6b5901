"""The ``iglp-vw`` command line (a thin click shell over the package)."""

from __future__ import annotations

import json
import sys
import time

import click

from . import IGLP
from .learner import DEFAULT_CB_ARGS


@click.group()
@click.version_option(package_name="iglp-vw")
def main():
    """Personalized Interaction-Grounded Learning (IGL-P) on Vowpal Wabbit."""


@main.command()
@click.option("--dataset", type=click.Choice(["digits", "synthetic50k", "covertype"]), default="digits",
              show_default=True, help="Classification data behind the simulation.")
@click.option("--covertype-path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local covtype.data(.gz) for --dataset covertype (no download at run time).")
@click.option("--passes", type=click.IntRange(1), default=5, show_default=True, help="Shuffled passes over the data.")
@click.option("--users", type=click.IntRange(1), default=100, show_default=True)
@click.option("--words", type=click.IntRange(2), default=100, show_default=True)
@click.option("--bizarro-share", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cb-args", default=DEFAULT_CB_ARGS, show_default=True, help="VW arguments of the contextual bandit.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also run the oracle, naive and uniform baselines.")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None, help="Save the IGL-P model here.")
@click.option("--trace", type=click.Path(dir_okay=False), default=None, help="Write IGL-P's per-round trace (CSV).")
def grounded(dataset, covertype_path, passes, users, words, bizarro_share, seed, cb_args, baselines, model_dir, trace):
    """Run the paper's grounded simulation (sec. 4.1) on-policy and print last-20% TRUE reward.

    Users are "normal" or "bizarro", words "good" or "bad"; the learner sees the
    user id and a word, never the reward. IGL-P must learn who means what.
    """
    from .baselines import RewardCB, Uniform
    from .sim import GroundedSimulation, load_dataset, run

    try:
        X, y = load_dataset(dataset, seed=seed, path=covertype_path)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--dataset") from None
    sim = GroundedSimulation(X, y, n_users=users, n_words=words, bizarro_share=bizarro_share,
                             passes=passes if dataset == "digits" else 1, seed=seed)
    k = sim.num_actions
    learners = {"IGL-P(2)": IGLP(k, seed=seed, cb_args=cb_args)}
    if baselines:
        learners["oracle CB"] = RewardCB(k, sim.true_reward, cb_args, seed=seed)
        learners["naive CB"] = RewardCB(k, sim.naive_reward, cb_args, seed=seed)
        learners["uniform"] = Uniform(k, seed=seed)
    click.echo(f"{dataset}: {len(sim)} rounds, {k} actions, {users} users ({bizarro_share:.0%} bizarro), {words} words")
    click.echo(f"{'learner':<12}{'reward':>8}{'normal':>8}{'bizarro':>9}{'rounds/s':>10}")
    for name, learner in learners.items():
        start = time.perf_counter()
        frame = run(learner, sim, seed=seed)
        rate = len(frame) / (time.perf_counter() - start)
        tail = frame[frame.t >= int(0.8 * len(frame))]
        normal, bizarro = tail[~tail.bizarro].reward.mean(), tail[tail.bizarro].reward.mean()
        click.echo(f"{name:<12}{tail.reward.mean():>8.3f}{normal:>8.3f}{bizarro:>9.3f}{rate:>10.0f}")
        if name == "IGL-P(2)":
            if trace:
                frame.to_csv(trace, index=False)
            if model_dir:
                learner.save(model_dir)
    if model_dir:
        click.echo(f"saved IGL-P model to {model_dir}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
