"""The ``iglp-vw`` command line (a thin click shell over the package).

Errors in data, files or arguments end with ``error: ...`` on stderr and exit code 2
(one handler, :func:`_errors`); a traceback means a bug.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import time
from pathlib import Path

import click

from .decoder import RECOMMENDED_HALF_LIFE
from .learner import DEFAULT_CB_ARGS

DATASETS = ("digits", "synthetic50k", "covertype")


_API_WORDS = re.compile(r"`(\w+)(?:=(\w+))?`|\b(states|scheduler)=(['\"]?)(\w+)\4")


def _cli_words(message: str) -> str:
    """The API's names in a message (```cb_args```, ``states=3``) as the CLI's options."""
    def option(m):
        name, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(5))
        return f"--{name.replace('_', '-')}" + (f" {value}" if value else "")
    return _API_WORDS.sub(option, message)


def _fail(message: str, code: int = 2):
    click.echo(f"error: {_cli_words(message)}", err=True)
    sys.exit(code)


def _errors(fn):
    """Turn the package's errors (bad data, files, arguments, model directories) into ``error:`` + exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .logs import LogError
        from .modeldir import ModelDirError
        from .replay import CheckpointError

        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:  # the reader of our output went away (| head): stop quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except LogError as err:
            _fail(str(err))
        except (ModelDirError, CheckpointError, ValueError, TypeError, ImportError) as err:
            _fail(str(err))
        except OSError as err:  # a file that cannot be read or written
            where = f"{err.filename}: " if err.filename else ""
            _fail(f"{where}{err.strerror or err}")

    return wrapper


@contextlib.contextmanager
def _stdin_logs(logs):
    """``(paths, names)``: ``-`` among LOGS is standard input, spooled to a temporary file (logs
    are read more than once: the format is detected first, and a replay's reader process reads
    them again); ``names`` maps that file back to ``-`` for output rows."""
    if "-" not in logs:
        yield list(logs), {}
        return
    if sys.stdin.isatty():
        raise click.UsageError("- reads the log from standard input, which is a terminal here")
    import shutil
    import tempfile

    from .logs import LogError

    with tempfile.TemporaryDirectory(prefix="iglp-vw-stdin-") as tmp:
        path = Path(tmp) / "stdin"
        with open(path, "wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh, 1 << 20)
        try:
            yield [str(path) if log == "-" else log for log in logs], {str(path): "-"}
        except LogError as err:  # named as the user gave it, not by the spooled file's path
            if err.path != str(path):
                raise
            raise type(err)(STDIN_NAME, err.line, err.field, err.message.replace(str(path), STDIN_NAME)) from None


# How errors and reports name a log read from standard input (-).
STDIN_NAME = "<stdin>"


def _as_given(text: str, names: dict) -> str:
    """``text`` with the spooled standard input's path named as :data:`STDIN_NAME`."""
    for path in names:
        text = text.replace(path, STDIN_NAME)
    return text


def _options(*decorators):
    def apply(fn):
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


# ---------------------------------------------------------------- shared options

SIMULATION = _options(
    click.option("--dataset", type=click.Choice(DATASETS), default="digits", show_default=True,
                 help="Classification data behind the simulation."),
    click.option("--covertype-path", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="Local covtype.data(.gz) for --dataset covertype (no download at run time)."),
    click.option("--passes", type=click.IntRange(1), default=None,
                 help="Shuffled passes over the data (default: 5 for digits, 1 otherwise)."),
    click.option("--users", type=click.IntRange(1), default=100, show_default=True,
                 help="Simulated users (user ids drawn from this many)."),
    click.option("--words", type=click.IntRange(2), default=100, show_default=True, help="Feedback words (half of them good)."),
    click.option("--bizarro-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                 help="Share of users who say a bad word when satisfied."),
    click.option("--segments", type=click.IntRange(0), default=0, show_default=True,
                 help="Users also carry a country feature (S countries); the odd countries' users are bizarro "
                      "(instead of --bizarro-share)."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seeds the data, the simulation and the learners."),
)

LEARNER = _options(
    click.option("--cb-args", default=DEFAULT_CB_ARGS, show_default=True,
                 help="VW arguments of the contextual bandit. Without -q/--cubic/--interactions the learner adds, "
                      "for every context namespace c and action namespace a, -q ca and --cubic cca; with any of "
                      "them, yours replace these."),
    click.option("--ik-args", default=None, help="Extra VW arguments of the IK models (e.g. '--power_t 0.3')."),
    click.option("--ik-model", type=click.Choice(["features", "slot"]), default="features", show_default=True,
                 help="IK over the candidates' features (VW --csoaa_ldf: any action set, of any size and order), "
                      "or over the action's position (--oaa K: a fixed catalogue in a fixed order only)."),
    click.option("--max-users", type=click.IntRange(4), default=16_384, show_default=True,
                 help="Memory budget: users whose feedback conventions are kept (~0.6 KB each); beyond it the "
                      "least recently seen, least known users are forgotten and fall back to their segments' or "
                      "the population's convention."),
    click.option("--half-life", type=click.IntRange(0), default=None, metavar="EVENTS",
                 help="Fading evidence for daily retraining: the counts of who says what (a user's, a "
                      "segment's, a feedback value's convention) halve in weight every EVENTS effective events, "
                      f"so a convention that changes is followed within about that many events "
                      f"({RECOMMENDED_HALF_LIFE} measured: scripts/bench_drift.py); 0 or not given: nothing fades. "
                      "--continue keeps the model's."),
    click.option("--user-features", type=click.Choice(["known", "always"]), default="known", show_default=True,
                 help="known: the IK and the CB learn the user namespace from a user's second event on (a user's "
                      "first event is learned as the population's); always: from the first."),
)

LOGS = _options(
    click.option("--feedback-namespace", default="Feedback", show_default=True,
                 help="Shared-line namespace holding the feedback in VW text logs (removed from the CB's context)."),
    click.option("--on-bad-line", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                 help="fail: stop with exit code 2 at a malformed event; skip: skip, count and report it."),
)


def _fading(half_life) -> dict:
    """The learner's argument for ``--half-life`` (none when the option is not given: the default)."""
    return {} if half_life is None else {"decoder_args": {"half_life": half_life or None}}


def _simulation(dataset, covertype_path, passes, users, words, bizarro_share, segments, seed):
    from .sim import GroundedSimulation, load_dataset

    try:
        X, y = load_dataset(dataset, seed=seed, path=covertype_path)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--dataset") from None
    if passes is None:
        passes = 5 if dataset == "digits" else 1
    return GroundedSimulation(X, y, n_users=users, n_words=words, bizarro_share=bizarro_share, passes=passes, seed=seed,
                              segments=segments)


@click.group()
@click.version_option(package_name="iglp-vw")
def main():
    """Personalized Interaction-Grounded Learning (IGL-P) on Vowpal Wabbit."""


@main.command(short_help="The grounded simulation on-policy (paper sec. 4.1).")
@SIMULATION
@LEARNER
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also run the oracle, naive and uniform baselines.")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None, help="Save the IGL-P model here.")
@click.option("--trace", type=click.Path(dir_okay=False), default=None, help="Write IGL-P's per-round trace (CSV).")
@_errors
def grounded(dataset, covertype_path, passes, users, words, bizarro_share, segments, seed, cb_args, ik_args, ik_model,
             max_users, half_life, user_features, baselines, model_dir, trace):
    """Run the paper's grounded simulation on-policy; print the last-20% true reward.

    The simulation of the paper's section 4.1: users are "normal" or "bizarro", words
    "good" or "bad"; the learner sees the user id and a word, never the reward.
    IGL-P must learn who means what.
    """
    from . import IGLP
    from .baselines import RewardCB, Uniform
    from .sim import run

    sim = _simulation(dataset, covertype_path, passes, users, words, bizarro_share, segments, seed)
    k = sim.num_actions
    learners = {"IGL-P(2)": IGLP(k, seed=seed, cb_args=cb_args, ik_model=ik_model, ik_args=ik_args,
                                     max_users=max_users, user_features=user_features, **_fading(half_life))}
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


@main.command(short_help="Learn a policy offline from logs (Algorithm 1).")
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model-dir", required=True, type=click.Path(file_okay=False), help="Where the models are written.")
@click.option("--states", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="Latent states: 2 (reward 0 or 1) or 3 (also -1/alpha for definitely-negative feedback).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Definitely-negative extreme events get reward -1/alpha (--states 3).")
@click.option("--definitely-negative", "definitely_negative", multiple=True, metavar="FEAT",
              help="Feedback feature name or value that is definitely negative (repeatable; --states 3). "
                   "DSJSON outcomes with \"_definitely_bad\": true always are.")
@click.option("--definitely-positive", "definitely_positive", multiple=True, metavar="FEAT",
              help="Feedback feature name or value that is definitely positive (repeatable; --states 3; "
                   "the paper's footnote 1).")
@LEARNER
@click.option("--num-actions", type=click.IntRange(2), default=None,
              help="With --ik-model slot: the number of slots (IK classes); default: the first event's action count.")
@click.option("--max-actions", type=click.IntRange(2), default=None,
              help="Events with more candidates are bad lines (default 1024).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds VW and the learner's sampling.")
@click.option("--feedback-model", type=click.Choice(["auto", "decoder", "signals"]), default="auto", show_default=True,
              help="decoder: (user, feedback value) pairs grouped by the communication decoder; signals: the "
                   "feedback read as signals per user segment, for logs with several signals per event "
                   "(click, like, dwell, ...), most users seen once and styles that go with a segment; auto: "
                   "signals when 20% of the first 1,000 events' feedback carries several signals, else decoder "
                   "(the summary says which). --continue keeps the model's.")
@click.option("--user-namespace", default="User", show_default=True, help="Context namespace that says whose feedback it is.")
@LOGS
@click.option("--feedback-from-cost", is_flag=True,
              help="Events with no feedback use their logged cost as the feedback value (logs that carry only _label_cost).")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "dsjson"]), default="auto", show_default=True,
              help="Log format (auto: detected from the content).")
@click.option("--checkpoint-every", type=click.IntRange(0), default=0, show_default=True,
              help="Publish the models and the position every N events (0: at the end only).")
@click.option("--resume", is_flag=True, help="Finish an interrupted replay (same logs, same options) from its checkpoint.")
@click.option("--continue", "continue_training", is_flag=True,
              help="Train the model in --model-dir further on these logs (yesterday's model + today's log; the "
                   "same models as one replay of both).")
@click.option("--overwrite", is_flag=True, help="Replace the model already in --model-dir.")
@click.option("--repeat", is_flag=True,
              help="With --continue: train on a log the model has already learned from (refused otherwise).")
@click.option("--trace", type=click.Path(dir_okay=False), default=None,
              help="Write one row per event (CSV, or Parquet for .parquet) with the inferred reward and the IK's P.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Stop after N events (resume later with --resume).")
@_errors
def replay(logs, model_dir, states, alpha, definitely_negative, definitely_positive, cb_args, ik_args, ik_model, max_users,
           half_life, user_features, feedback_model, num_actions, max_actions, seed, user_namespace, feedback_namespace, on_bad_line, feedback_from_cost, fmt,
           checkpoint_every, resume, continue_training, overwrite, repeat, trace, limit):
    """Learn an IGL-P policy offline from logged events (VW text ADF or DSJSON, gzip or not).

    Streams LOGS through Algorithm 1 off-policy: the IK learns which action was shown
    from (context, feedback), the inferred reward trains the CB (in VW's own driver,
    on the other core). Prints the share of inferred rewards +1/0/-1, overall and
    per feedback value. A bad event stops the replay (exit code 2) with the models as
    of the last good event kept, or is skipped with --on-bad-line skip.
    """
    from .logs import MAX_ACTIONS, LogError, UnsupportedLogError
    from .replay import replay as run_replay

    params = {"states": int(states), "alpha": alpha, "cb_args": cb_args, "ik_args": ik_args, "seed": seed,
              "user_namespace": user_namespace, "ik_model": ik_model, "max_users": max_users,
              "user_features": user_features, **_fading(half_life)}
    if feedback_model != "decoder":  # auto: resolved by the replay from the log's first events
        params["feedback_model"] = feedback_model
    if definitely_negative:
        params["definitely_negative"] = sorted(definitely_negative)
    if definitely_positive:
        params["definitely_positive"] = sorted(definitely_positive)
    if num_actions:
        params["num_actions"] = num_actions
    if "-" in logs and resume:
        raise click.UsageError("--resume reads the same logs again: not from standard input")
    names: dict = {}
    try:
        with _stdin_logs(logs) as (logs, names):
            summary = run_replay(
                logs, model_dir, learner_params=params, fmt=None if fmt == "auto" else fmt,
                feedback_namespace=feedback_namespace, feedback_from_cost=feedback_from_cost,
                checkpoint_every=checkpoint_every, resume=resume, continue_training=continue_training,
                overwrite=overwrite, repeat=repeat, on_bad_line=on_bad_line, trace=trace, limit=limit,
                progress=True, max_actions=max_actions or MAX_ACTIONS,
            )
    except LogError as err:
        if isinstance(err, UnsupportedLogError):
            how = "the log cannot be replayed (whatever --on-bad-line says)"
        elif names:  # standard input: there is no resuming it
            how = "fix the log and replay it again with --overwrite (or with --on-bad-line skip to pass over bad lines)"
        else:
            how = ("fix that line and run the same command with --resume to go on from it, or with --resume "
                   "--on-bad-line skip to pass over bad lines; --overwrite starts again from nothing")
        _fail(f"{err}\nmodels as of the last good event are in {model_dir}: {how}")
    click.echo(_as_given(summary.report(), names))
    click.echo(f"saved models to {model_dir}")


@main.command(short_help="Score logged events with a learned policy.")
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The model directory a replay (or IGLP.save) wrote.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file (default: standard output; .gz: gzipped).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True,
              help="One JSON object per line, or CSV with a header (the pmf as ;-joined numbers).")
@LOGS
@_errors
def predict(logs, model_dir, out, fmt, feedback_namespace, on_bad_line):
    """Score logged events with a learned policy: one row per event.

    Each row: event_id (DSJSON's EventId, else FILE:LINE), file, line, action (the
    chosen candidate's index), action_id (its feature `id`, e.g. |Action id=17), prob
    and pmf; the action is drawn from the pmf with the model's seeded generator.
    Events without a label are scored too. LOGS may be - (standard input).
    """
    from ._util import open_text
    from .replay import check_outputs, predict_log

    with _stdin_logs(logs) as (logs, names):
        check_outputs(logs, [out], model_dir)
        part = Path(out).with_name(Path(out).name + ".part") if out else None  # OUT only once complete
        fh = open_text(part, "w") if out else sys.stdout
        try:
            counts = predict_log(model_dir, logs, fh, on_bad_line, feedback_namespace, fmt, names)
        except BaseException:
            if out:
                fh.close()
                part.unlink(missing_ok=True)
            raise
        if out:
            fh.close()
            os.replace(part, out)
    if counts.get("bad_lines"):
        click.echo(f"skipped {counts['bad_lines']} bad events", err=True)


@main.command(short_help="Rewrite logs with the inferred reward as cost.")
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The model directory a replay (or IGLP.save) wrote.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The relabelled log (same format; .gz: gzipped).")
@click.option("--trace", type=click.Path(dir_okay=False), default=None, help="Per-event CSV with the IK's probabilities.")
@click.option("--online", is_flag=True, help="Keep learning the IK and decoder while labelling (as replay does).")
@click.option("--keep-feedback", is_flag=True, help="Keep the feedback namespace in text logs' shared lines.")
@LOGS
@click.option("--feedback-from-cost", is_flag=True,
              help="Events with no feedback use their logged cost as the feedback value.")
@_errors
def label(logs, model_dir, out, trace, online, keep_feedback, feedback_namespace, on_bad_line, feedback_from_cost):
    """Rewrite logs with IGL-P's inferred reward as the VW cost label (cost = -reward).

    Any CB (VW's own, or your recommender's) then trains on learned rewards instead
    of a hand-weighted formula: `python -m vowpalwabbit --cb_explore_adf -d OUT`.
    """
    from .replay import label_log

    with _stdin_logs(logs) as (logs, names):
        summary = label_log(model_dir, logs, out, on_bad_line, trace, online, feedback_namespace, feedback_from_cost,
                            keep_feedback)
    click.echo(_as_given(summary.report(), names))
    if not online:
        click.echo("(inferred with the final model, frozen: shares differ from the replay's, whose model was "
                   "learning as it went; --online learns as replay does)")
    click.echo(f"wrote {out}")


@main.group(short_help="Write simulated logs for replay.")
def simulate():
    """Write simulated logs (with the logging policy's probabilities) for replay."""


@simulate.command("production")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Log to write (.gz: gzipped).")
@click.option("--events", type=click.IntRange(1), default=100_000, show_default=True, help="Events to log.")
@click.option("--format", "fmt", type=click.Choice(["text", "dsjson"]), default="text", show_default=True,
              help="VW text ADF, or DSJSON (one outcome per signal, dislike/hide/report marked _definitely_bad).")
@click.option("--users", type=click.IntRange(1), default=20_000, show_default=True,
              help="User ids (Zipf activity: most are seen once or twice).")
@click.option("--items", type=click.IntRange(12), default=400, show_default=True, help="Catalogue size.")
@click.option("--style-share", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Share of an age band's users who have its dominant communication style.")
@click.option("--explore", type=click.FloatRange(0, 1, min_open=True), default=0.25, show_default=True,
              help="The popularity logging policy's uniform exploration.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the world and the log.")
@click.option("--truth", type=click.Path(dir_okay=False), default=None,
              help="CSV of each event's user, style, logged action and its true reward.")
@_errors
def simulate_production(out, events, fmt, users, items, style_share, explore, seed, truth):
    """A production-like log: a catalogue with item features, 5-12 changing candidates, Zipf
    users with segment features, four communication styles bound to age bands (one of which
    a click/dwell formula misreads), several signals per event, popularity logging."""
    from .sim.production import ProductionWorld, write_production_log

    world = ProductionWorld(n_items=items, n_users=users, style_share=style_share, explore=explore, seed=seed)
    n = write_production_log(world, out, events, fmt=fmt, seed=seed, truth=truth)
    click.echo(f"wrote {n} events ({fmt}, popularity logging with {explore:.0%} exploration) to {out}")


@simulate.command("grounded")
@SIMULATION
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Log to write (.gz: gzipped).")
@click.option("--format", "fmt", type=click.Choice(["text", "dsjson"]), default="text", show_default=True,
              help="VW text ADF, or DSJSON.")
@click.option("--logging", "policy", type=click.Choice(["uniform", "naive"]), default="uniform", show_default=True,
              help="Logging policy: uniform, or an epsilon-greedy CB fed the naive reward (good word = 1).")
@click.option("--logging-model", type=click.Path(exists=True, file_okay=False), default=None,
              help="Log with this saved IGL-P policy instead (frozen), e.g. to evaluate it off-policy.")
@click.option("--events", type=click.IntRange(1), default=None, help="Stop after N events.")
@click.option("--truth", type=click.Path(dir_okay=False), default=None,
              help="CSV of each event's hidden label, user type and true reward.")
@_errors
def simulate_grounded(dataset, covertype_path, passes, users, words, bizarro_share, segments, seed, out, fmt, policy,
                      logging_model, events, truth):
    """The grounded simulation (sec. 4.1) as a logged trace."""
    from .sim.logging import write_log

    sim = _simulation(dataset, covertype_path, passes, users, words, bizarro_share, segments, seed)
    if logging_model:
        policy = "model"
    n = write_log(sim, out, fmt=fmt, policy=policy, seed=seed, limit=events, truth=truth, model_dir=logging_model)
    click.echo(f"wrote {n} events ({fmt}, {policy} logging) to {out}")


@simulate.command("drift")
@click.option("--scenario", type=click.Choice(["swap", "gradual", "meaning", "new-signal", "stable"]), default="swap",
              show_default=True,
              help="What changes from day to day: half the users swap convention (day 2), 10% more users swap "
                   "each day, 20% of the words change meaning (day 2), 20% of the words are new (day 2), nothing.")
@click.option("--days", type=click.IntRange(1), default=3, show_default=True, help="Days to write.")
@click.option("--share", type=click.FloatRange(0, 1), default=None, help="Share of users or words that change "
              "(default: the scenario's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the conventions and each day's rounds.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Writes dayN.txt (VW text ADF, uniform logging) and dayN.truth.csv here.")
@_errors
def simulate_drift(scenario, days, share, seed, out_dir):
    """Days of the grounded simulation (digits, 100 users, 100 words, ~9,000 events a day) whose
    conventions change: the daily routine's test (replay day 1, then --continue each next day)."""
    from .sim.drift import DriftWorld
    from .sim.logging import write_log

    world = DriftWorld(scenario, share=share, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for d in range(1, days + 1):
        n = write_log(world.day(d), out / f"day{d}.txt", seed=seed * 1000 + d, truth=out / f"day{d}.truth.csv")
        click.echo(f"wrote {n} events of day {d} ({scenario}) to {out / f'day{d}.txt'}")


@main.command(short_help="Run a sweep of learners x logs (Dask).")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Results CSV, one row per job (per-job directories go to OUT.jobs/).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="A dask.distributed scheduler (e.g. tcp://host:8786), or 'serial' to run here, one job "
                   "at a time. Default: a local cluster, one worker process per core.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Local cluster size (default: cores).")
@click.option("--resume", is_flag=True, help="Skip the jobs whose results already exist.")
@_errors
def sweep(config, out, scheduler, workers, resume):
    """Run a sweep: learner configurations x logs (or simulator settings) x seeds.

    CONFIG is TOML or JSON (see iglp_vw/sweep.py and the README). Each job is a full replay
    (with its inferred-reward shares, and precision/recall when the log has a truth file) or an
    on-policy run of the grounded simulator (its true reward), in a process of its own. A failed
    job (even one that crashes its process) is reported in its row (column `error`) and the
    others finish.
    """
    from .sweep import sweep as run_sweep

    table = run_sweep(config, out, scheduler=scheduler, workers=workers, resume=resume, progress=True)
    failed = table[table.error.astype(str).str.len() > 0] if "error" in table else table.iloc[0:0]
    click.echo(f"{len(table)} jobs, {len(failed)} failed; results in {out}")
    for _, row in failed.iterrows():
        click.echo(f"failed job {row['job']}: {row['error']}", err=True)


@main.command(short_help="Off-policy evaluation of a learned policy.")
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model-dir", required=True, type=click.Path(exists=True, file_okay=False), help="The learned policy.")
@click.option("--signal", "signals", multiple=True, metavar="FEAT",
              help="Feedback signal to report (repeatable; default: the 20 most frequent, 'none' included).")
@click.option("--group-by", default=None, metavar="NAMESPACE", help="Also per user group: this context namespace.")
@click.option("--bootstrap", type=click.IntRange(0), default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Intervals at level 1 - alpha.")
@click.option("--policy", type=click.Choice(["pmf", "greedy"]), default="pmf", show_default=True,
              help="pmf: the learned CB's pmf with its exploration (the policy as it runs); greedy: its top "
                   "candidate only.")
@click.option("--pmfs", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Evaluate these pmfs instead of the model's (predict's output, JSON lines or CSV; one per "
                   "labelled event, in log order).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the bootstrap.")
@LOGS
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the table as CSV.")
@click.option("--events-out", type=click.Path(dir_okay=False), default=None,
              help="Write the per-event frame (pmf, weights, signals, inferred reward): CSV, or Parquet for .parquet.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG of the lifts.")
@_errors
def evaluate(logs, model_dir, signals, group_by, bootstrap, alpha, policy, pmfs, seed, feedback_namespace, on_bad_line,
             out, events_out, plot):
    """Off-policy evaluation of a learned policy on logs with logging probabilities.

    Per feedback signal (text and DSJSON named alike: word=w42, click, dwell; numbers by
    value): its rate in the log (the logging policy's), its estimate under the learned
    policy (IPS, self-normalised IPS, doubly robust), the relative lift (SNIPS / logging
    rate, as in the paper's Table 1) and the difference, each with a bootstrap interval;
    first the policy's value under the inferred reward. Ends with a verdict in words.
    With --group-by the overall rows come first, then each group's.
    """
    from .evaluate import evaluate as run_evaluate
    from .evaluate import plot_lifts, read_pmfs, verdict
    from .replay import check_outputs

    with _stdin_logs(logs) as (logs, _):
        check_outputs(logs, [out, plot, events_out], model_dir)
        table, frame = run_evaluate(model_dir, logs, signals=list(signals) or None, group_by=group_by,
                                    n_bootstrap=bootstrap, random_state=seed, feedback_namespace=feedback_namespace,
                                    alpha=alpha, policy=policy, pmfs=read_pmfs(pmfs) if pmfs else None,
                                    return_frame=True, on_bad_line=on_bad_line)
    if frame.attrs.get("bad_lines"):
        click.echo(f"skipped {frame.attrs['bad_lines']} bad events (first: {frame.attrs['errors'][0]})", err=True)
    shown = table[["group", "signal", "n", "logging_rate", "snips", "dr", "lift", "lift_low", "lift_high"]]
    with pd_options():
        click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for line in verdict(table, frame, alpha):
        click.echo(line)
    if out:
        table.to_csv(out, index=False)
    if events_out:
        write_frame(frame, events_out)
        click.echo(f"wrote {events_out}")
    if plot:
        plot_lifts(table, plot)
        click.echo(f"wrote {plot}")


def write_frame(frame, path) -> None:
    """A per-event frame to CSV or (``.parquet``) Parquet; pmfs as lists, signals as JSON."""
    import json

    out = frame.copy()
    out["signals"] = out.signals.map(json.dumps)
    if str(path).endswith(".parquet"):
        out["pmf"] = out.pmf.map(lambda p: [float(v) for v in p])
        try:
            out.to_parquet(path, index=False)
        except ImportError:
            raise ImportError(f"{path}: Parquet needs pyarrow: pip install 'iglp-vw[parquet]'") from None
    else:
        out["pmf"] = out.pmf.map(lambda p: ";".join(f"{v:.6g}" for v in p))
        out.to_csv(path, index=False)


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 20)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
