"""Offline replay of logged events through Algorithm 1, and the other batch jobs over logs.

:func:`replay` is a loop over :meth:`IGLP.learn <iglp_vw.IGLP.learn>`. In off-policy replay
the logged action and its probability are given, so the IK's stream never depends on the
CB: the learner's CB is a :class:`~iglp_vw.cb.DriverCB`, VW's own C++ driver learning on
the other core, and the log is read and checked in a third process
(:class:`~iglp_vw.stream.LogStream`). The models are the ones the in-process learner
gives on the same events (tested).

A checkpoint is :meth:`IGLP.save <iglp_vw.IGLP.save>` with the position in the logs and
the summary so far (``replay.json``): a model set published atomically
(:mod:`iglp_vw.modeldir`), so a killed replay never leaves a torn one, and a resumed
replay ends with models byte-identical to an uninterrupted one (tested). The model
directory has one writer at a time.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from . import modeldir
from ._util import open_text
from .cb import DriverCB, peak_rss_mb
from .ik import use_ik_process
from .learner import IGLP, IKPipeline, InferenceWarning
from .logs import (
    DEFINITELY_BAD,
    MAX_ACTIONS,
    LogError,
    check_action_count,
    format_dsjson_event,
    format_text_event,
)
from .stream import LogStream
from .signals import SEVERAL_SIGNALS_SHARE, choose_feedback_model, feedback_tokens
from .vw import feedback_key, namespace_set

__all__ = ["replay", "predict_log", "label_log", "ReplaySummary", "CheckpointError"]

REPLAY_STATE = "replay.json"
# The CB's interactions cross the namespaces of a new replay's first events (a later one is
# named by the summary's diagnostics).
NAMESPACE_WINDOW = 1_000
# The logs a model directory remembers having learned (for --continue's check), the latest kept.
MAX_LEARNED_LOGS = 10_000
# The summary's per-feedback rows (free-text feedback is unbounded); the rest share one row.
MAX_FEEDBACK_ROWS = 10_000
OTHER_FEEDBACK = "(other feedback values)"
TRACE_COLUMNS = [
    "file", "line", "action", "prob", "feedback", "group", "ik_probability", "prior", "extreme",
    "definitely_negative", "inferred_reward",
]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed (missing, or from different options)."""


@dataclass
class ReplaySummary:
    """What a replay did: counts, inferred-reward shares, speed."""

    events: int = 0
    bad_lines: int = 0
    rewards: Counter = field(default_factory=Counter)  # rho -> count
    by_feedback: dict = field(default_factory=dict)  # feedback key (numbers bucketed) -> Counter(rho -> count)
    by_signal: dict = field(default_factory=dict)  # one signal (click, dwell:b5) -> Counter(rho -> count)
    with_feedback: int = 0
    unlabelled: int = 0  # events without a logged action (scored by VW, not learned from)
    action_set_changes: int = 0  # events whose action set differs from the previous event's
    seconds: float = 0.0
    errors: list = field(default_factory=list)  # first few skipped bad lines
    warnings: list = field(default_factory=list)  # what looks wrong with the inference (IGLP.diagnostics)
    peak_rss_mb: float = 0.0  # this process
    driver_peak_rss_mb: float = 0.0  # VW's driver (the CB)
    ik_peak_rss_mb: float = 0.0  # the IK's process (0 when the IK learned in this one)
    slot_ik: bool = False  # the learner's IK is keyed by position (then changing action sets are warned about)
    continued_from: int = 0  # events the model had learned before this replay (--continue)
    cb_args: str = ""  # the CB's VW arguments as run (with the interactions the learner added)
    feedback_model: str = ""  # how feedback_model="auto" was resolved, in words

    def add(self, feedback: str, has_feedback: bool, rho: float) -> None:
        self.events += 1
        rho = round(rho, 3)  # soft rewards are continuous: bounded keys
        self.rewards[rho] += 1
        self.with_feedback += has_feedback
        feedback = feedback_key(str(feedback))  # numbers bucketed as the learner sees them (dwell:b5)
        _count(self.by_feedback, feedback, rho)
        for signal in set(feedback_tokens(feedback)):  # each signal alone: click, like, dwell:b5, ...
            _count(self.by_signal, signal, rho)

    def shares(self, counts: Optional[Counter] = None) -> dict:
        """Shares of ρ̂ > 0, = 0 and < 0 among ``counts`` (all events by default)."""
        counts = self.rewards if counts is None else counts
        total = sum(counts.values()) or 1
        return {
            "+": sum(n for r, n in counts.items() if r > 0) / total,
            "0": counts.get(0.0, 0) / total,
            "-": sum(n for r, n in counts.items() if r < 0) / total,
        }

    def to_dict(self) -> dict:
        return {
            "events": self.events,
            "bad_lines": self.bad_lines,
            "with_feedback": self.with_feedback,
            "unlabelled": self.unlabelled,
            "action_set_changes": self.action_set_changes,
            "rewards": {repr(float(k)): v for k, v in sorted(self.rewards.items())},
            "by_feedback": {
                fb: {repr(float(k)): v for k, v in sorted(c.items())} for fb, c in self.by_feedback.items()
            },
            "by_signal": {
                fb: {repr(float(k)): v for k, v in sorted(c.items())} for fb, c in self.by_signal.items()
            },
            "seconds": self.seconds,
            "errors": self.errors,
            "warnings": self.warnings,
            "peak_rss_mb": self.peak_rss_mb,
            "driver_peak_rss_mb": self.driver_peak_rss_mb,
            "ik_peak_rss_mb": self.ik_peak_rss_mb,
            "continued_from": self.continued_from,
            "cb_args": self.cb_args,
            "feedback_model": self.feedback_model,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ReplaySummary":
        out = cls(events=d["events"], bad_lines=d["bad_lines"], with_feedback=d["with_feedback"], seconds=d["seconds"])
        out.rewards = Counter({float(k): v for k, v in d["rewards"].items()})
        out.by_feedback = {fb: Counter({float(k): v for k, v in c.items()}) for fb, c in d["by_feedback"].items()}
        out.by_signal = {fb: Counter({float(k): v for k, v in c.items()}) for fb, c in d.get("by_signal", {}).items()}
        out.errors = list(d.get("errors", []))
        out.warnings = list(d.get("warnings", []))
        out.action_set_changes = d.get("action_set_changes", 0)
        out.unlabelled = d.get("unlabelled", 0)
        out.peak_rss_mb = d.get("peak_rss_mb", 0.0)
        out.driver_peak_rss_mb = d.get("driver_peak_rss_mb", 0.0)
        out.ik_peak_rss_mb = d.get("ik_peak_rss_mb", 0.0)
        out.continued_from = d.get("continued_from", 0)
        out.feedback_model = d.get("feedback_model", "")
        out.cb_args = d.get("cb_args", "")
        return out

    def report(self, top: int = 15) -> str:
        """The summary as text: totals, ρ̂ shares overall and per feedback value (most frequent first)."""
        rate = self.events / self.seconds if self.seconds else float("nan")
        lines = [
            f"events: {self.events:,}  bad lines skipped: {self.bad_lines:,}  "
            f"with feedback: {self.with_feedback:,}  time: {self.seconds:.1f} s  ({rate:,.0f} events/s)",
            _share_line("inferred reward", self.shares(), self.events),
        ]
        soft = {r: n for r, n in self.rewards.items() if 0 < abs(r) < 1}
        if soft:  # the signals model's soft rewards: counted in the shares above, named apart
            n_soft = sum(soft.values())
            mean = sum(r * n for r, n in soft.items()) / n_soft
            lines.append(f"  of which soft (0 < |rho| < 1, informative cells short of extreme): {n_soft / self.events:.1%} "
                         f"of events, mean rho {mean:+.2f}")
        if self.continued_from:
            lines.insert(0, f"continued a model trained on {self.continued_from:,} events")
        if self.unlabelled:
            lines.insert(1, f"events without a label (no logged action, not learned from): {self.unlabelled:,}")
        ranked = sorted(self.by_feedback.items(), key=lambda kv: -sum(kv[1].values()))
        if ranked:
            lines.append("per feedback value:")
            for fb, counts in ranked[:top]:
                lines.append("  " + _share_line(fb, self.shares(counts), sum(counts.values())))
            if len(ranked) > top:
                lines.append(f"  ... and {len(ranked) - top} more feedback values")
        signals = sorted(self.by_signal.items(), key=lambda kv: -sum(kv[1].values()))
        if len(signals) > 1 and len(signals) < len(ranked):  # several signals per event: each alone too
            lines.append("per signal (events carrying it):")
            for fb, counts in signals[:top]:
                lines.append("  " + _share_line(fb, self.shares(counts), sum(counts.values())))
            if len(signals) > top:
                lines.append(f"  ... and {len(signals) - top} more signals")
        if self.feedback_model:
            lines.append(f"feedback model: {self.feedback_model}")
        if self.cb_args:
            lines.append(f"CB: VW {self.cb_args}")
        for err in self.errors:
            lines.append(f"skipped: {err}")
        for message in self.warnings:
            lines.append(f"warning: {message}")
        if self.action_set_changes > 0.01 * self.events and self.slot_ik:
            lines.append(
                f"warning: the action set changed between consecutive events {self.action_set_changes:,} times. "
                "--ik-model slot predicts the action's position in the set (VW --oaa K), so it learns only where "
                "each position keeps its item (a fixed catalogue, or items always in the same order); for "
                "changing sets use --ik-model features (the default)."
            )
        return "\n".join(lines)


def _count(table: dict, key: str, rho: float) -> None:
    """One more ρ̂ in ``table[key]``; past ``MAX_FEEDBACK_ROWS`` keys, new ones share one row."""
    counts = table.get(key)
    if counts is None:
        if len(table) >= MAX_FEEDBACK_ROWS:
            key = OTHER_FEEDBACK
            counts = table.get(key)
        if counts is None:
            counts = table[key] = Counter()
    counts[rho] += 1


def _share_line(name, shares, n) -> str:
    return f"{name}: +1 {shares['+']:.1%}  0 {shares['0']:.1%}  -1/alpha {shares['-']:.1%}  (n={n:,})"


def check_outputs(inputs: Sequence, outputs: Iterable, model_dir=None) -> None:
    """Refuse an output file that is one of the input logs (writing it would truncate the log)
    or that lies inside the model directory."""
    for out in outputs:
        if out is None:
            continue
        out = Path(out)
        for log in inputs:
            if out.exists() and Path(log).exists() and os.path.samefile(out, log) or \
                    os.path.realpath(out) == os.path.realpath(log):
                raise ValueError(f"{out}: is the input log {log}; writing it would destroy the log")
        if model_dir is not None and Path(os.path.realpath(out)).is_relative_to(os.path.realpath(model_dir)):
            raise ValueError(f"{out}: is inside the model directory {model_dir}; write it elsewhere")


def replay(
    paths: Sequence,
    model_dir,
    *,
    learner_params: Optional[dict] = None,
    fmt: Optional[str] = None,
    feedback_namespace: str = "Feedback",
    feedback_from_cost: bool = False,
    checkpoint_every: int = 0,
    resume: bool = False,
    continue_training: bool = False,
    overwrite: bool = False,
    repeat: bool = False,
    on_bad_line: str = "fail",
    trace=None,
    limit: Optional[int] = None,
    progress: bool = False,
    parallel_read: bool = True,
    max_actions: int = MAX_ACTIONS,
    ik_process: Optional[bool] = None,
) -> ReplaySummary:
    """Learn an IGL-P policy from logs, off-policy, and save it to ``model_dir``.

    Parameters
    ----------
    paths
        Log files (VW text ADF or DSJSON, gzip or not), read in order, streamed.
    model_dir
        Where the models go (:meth:`IGLP.load` reads it; ``cb.model`` is a plain VW model).
        Locked for the replay's duration: a second writer gets
        :class:`~iglp_vw.modeldir.ModelDirBusy`.
    learner_params
        :class:`IGLP` arguments (``states``, ``alpha``, ``definitely_negative``,
        ``cb_args``, ``ik_args``, ``seed``, ...). ``num_actions`` defaults to the
        size of the first event's action set. For DSJSON logs with ``states=3``,
        outcomes marked ``_definitely_bad`` count as definitely negative.
    checkpoint_every
        Publish the models and the position every this many events (0: only at the end).
    resume
        Finish an interrupted replay: continue from the last published set in ``model_dir``
        at its position in the same logs (same options required).
    continue_training
        Train the model in ``model_dir`` further on *these* logs (yesterday's model plus
        today's log): the learner continues exactly where it was, so a replay of day 1
        then one of day 2 with ``continue_training`` gives the same models as one replay
        of both. The learner's options must be the model's.
    overwrite
        Replace a model already in ``model_dir``. Without it (or ``resume`` /
        ``continue_training``) a directory that holds a model is refused.
    repeat
        With ``continue_training``: train on a log the model has learned from before. The
        model directory remembers each log it learned (its size and a digest of its first
        and last MiB), and without ``repeat`` refuses one it has seen, whatever its name.
    on_bad_line
        ``"fail"``: stop at the first malformed event with :class:`LogError`, the
        models as of the last good event saved. ``"skip"``: skip, count and report it.
    trace
        Path of a CSV (or ``.parquet``) written with one row per event.
    limit
        Stop after this many events (counting from the start of the logs).
    parallel_read
        Read and check the logs in a forked process (where the platform can fork),
        so that this one only runs the IK: the replay's bottleneck. Same results.
    max_actions
        Events with more candidates are bad lines.
    ik_process
        Run the IK and its prior in a forked process of their own, a few batches of events
        behind this one: their input does not depend on their output, so the decoder and the
        formatting of later events overlap with the IK's learning of earlier ones. Same
        models, byte for byte (tested). ``None`` (default): where the platform can fork and
        this process may use more than one CPU.
    """
    stream = LogStream(paths, fmt, feedback_namespace, feedback_from_cost, on_bad_line, max_actions,
                       parallel=parallel_read)
    model_dir = Path(model_dir)
    check_outputs(stream.paths, [trace], model_dir)
    options = {
        "logs": [str(p) for p in stream.paths],
        "formats": stream.formats,
        "feedback_namespace": feedback_namespace,
        "feedback_from_cost": feedback_from_cost,
        "learner_params": _json_params(learner_params),
    }
    if sum(map(bool, (resume, continue_training, overwrite))) > 1:
        raise ValueError("resume, continue_training and overwrite exclude one another")
    mode = "resume" if resume else "continue" if continue_training else "overwrite" if overwrite else "new"
    with modeldir.writer(model_dir):
        run = _Replay(stream, model_dir, options, mode, repeat)
        run.ik_process = ik_process
        return run.run(checkpoint_every, trace, limit, progress)


# Context namespaces named like feedback: with no event's feedback where it was looked for,
# one of these is most likely where the log keeps it.
_FEEDBACK_LIKE = re.compile(r"feedback|signal|reward|outcome|reaction|engag|respon|rating|label|click|interact", re.I)


def _feedback_like(names, feedback_namespace: str) -> list:
    return [n for n in names if n.lower() == feedback_namespace.lower() or _FEEDBACK_LIKE.search(n)]


def _check_feedback(head: list, options: dict) -> None:
    """Refuse, before any training, a log whose feedback is in a context namespace of another
    name: the policy would take it for a feature of the user, and nothing would be inferred."""
    if not head or options["feedback_from_cost"] or any(e.has_feedback for e in head):
        return
    names: dict = {}
    for event in head:
        names.update(dict.fromkeys(namespace_set([event.context])))
    like = _feedback_like(names, options["feedback_namespace"])
    if like:
        raise ValueError(
            f"none of the first {len(head):,} events has feedback in the namespace {options['feedback_namespace']!r}, "
            f"but their context has {', '.join(repr(n) for n in like)}, named like feedback: as context, the policy "
            f"would take it for a feature of the user and no reward would be inferred. If that is the feedback, "
            f"rerun with --feedback-namespace {shlex.quote(like[0])} (feedback_namespace= in the API); for logs with "
            "only a cost, --feedback-from-cost"
        )


def _no_feedback_note(context_namespaces, options: dict) -> str:
    fb = options["feedback_namespace"]
    seen = ", ".join(repr(n) for n in context_namespaces) or "none"
    if options["feedback_from_cost"]:
        where = "no feedback and no logged cost"
    else:
        where = f"no {fb!r} namespace on the shared line / in DSJSON's 'c', no 'o' outcomes"
    return (
        f"no event carried feedback ({where}), so every event's feedback is 'none' and nothing about the reward "
        f"can be learned. The context namespaces seen: {seen}. If one of them is the feedback, replay again with "
        f"--feedback-namespace NAME (names are case-sensitive); for logs with only a cost, use --feedback-from-cost"
    )


class _Replay:
    """One replay: the learner (its CB in VW's driver), the stream, the summary, checkpoints."""

    def __init__(self, stream: LogStream, model_dir: Path, options: dict, mode: str, repeat: bool = False):
        self.stream, self.model_dir, self.options = stream, model_dir, options
        self.learned: list = []  # the logs this model directory has learned (see _log_digest)
        self.before: Optional[dict] = None  # a --continue run: the previous replay's summary (to compare)
        self.drivers: list = []  # the DriverCB the learner builds (for its memory and to stop it)
        self.ik_process: Optional[bool] = None  # the IK in a process of its own (see replay())
        self.pipe: Optional[IKPipeline] = None
        if mode == "new" and modeldir.has_model(model_dir):
            held, interrupted = _trained_on(model_dir)
            if interrupted:  # most often the run that just failed on a bad line: say how to go on
                raise CheckpointError(
                    f"{model_dir}: holds an interrupted replay{held}; --resume goes on from where it stopped (with "
                    f"--on-bad-line skip to pass over bad lines), --overwrite starts again from nothing")
            raise CheckpointError(
                f"{model_dir}: already holds a model{held}; --continue trains it further on "
                f"these logs, --resume finishes an interrupted replay, --overwrite replaces it")
        if mode == "continue":
            self.learner, state = self._resume(same_logs=False)
            self.summary = ReplaySummary()
            self.summary.continued_from = _events_of(state)
            self.learned = _learned(state)
            self.before = _previous(state.get("summary"))
            now = [_log_digest(p) for p in stream.paths]
            seen = {entry["digest"]: entry for entry in self.learned}
            again = [(p, seen[d["digest"]]) for p, d in zip(stream.paths, now) if d["digest"] in seen]
            if again and not repeat:
                self.learner.close()
                detail = "; ".join(f"{p} (learned as {e['log']!r}, {e['size']:,} bytes)" for p, e in again)
                raise CheckpointError(
                    f"{model_dir}: has already learned from {detail}: --continue would train on its events twice. "
                    f"Continue with a log it has not learned (today's), or pass --repeat to train on it again")
            self.learned += now
        elif mode == "resume":
            self.learner, state = self._resume()
            try:
                self.summary = ReplaySummary.from_dict(state["summary"])
                position = state["position"]
                if not (isinstance(position, dict) and all(isinstance(position.get(k), int) and position[k] >= 0
                                                           for k in ("file", "line"))):
                    raise ValueError(f"position {position!r} is not {{'file': n, 'line': n}}")
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise CheckpointError(f"{model_dir / REPLAY_STATE}: not a replay state this version can resume "
                                      f"({err})") from None
            stream.start = position
            self.learned = _learned(state)
            self.before = _previous(state.get("before"))
        else:
            self.learned = [_log_digest(p) for p in stream.paths]
            head = stream.head(NAMESPACE_WINDOW)
            _check_feedback(head, options)
            params = self._params()
            self.summary = ReplaySummary()
            if params.get("feedback_model") == AUTO:
                params["feedback_model"], self.summary.feedback_model = _resolve_feedback_model(head, params)
            k = params.pop("num_actions", None)
            if k is None and params.get("ik_model", "features") == "slot":  # K slots: the first event's
                k = max(2, len(stream.first_event().actions))
            self.learner = IGLP(num_actions=k, **params, cb=self._driver)
            for event in head:  # the CB's interactions cross all their namespaces
                self.learner.see_namespaces(event.context, event.actions)

    def _params(self) -> dict:
        """The learner's arguments as the replay builds it (DSJSON's ``_definitely_bad`` added)."""
        params = dict(self.options["learner_params"])
        if params.get("states", 2) == 3 and "dsjson" in self.stream.formats:
            dn = params.get("definitely_negative")
            if not callable(dn) and DEFINITELY_BAD not in (dn or ()):
                params["definitely_negative"] = sorted(set(dn or ()) | {DEFINITELY_BAD})
        return params

    def _driver(self, args, model_file=None) -> DriverCB:
        driver = DriverCB(args, model_file, workdir=self.model_dir)
        self.drivers.append(driver)
        return driver

    def _resume(self, same_logs: bool = True):
        flag = "--resume" if same_logs else "--continue"
        try:
            set_dir = modeldir.open_set(self.model_dir)
        except modeldir.ModelDirError as err:
            if not modeldir.has_model(self.model_dir):
                what = "checkpoint" if same_logs else "model"
                raise CheckpointError(f"{self.model_dir}: no {what} to {flag[2:]} from (run without {flag} first)") from None
            raise err
        state = modeldir.read_json(set_dir / REPLAY_STATE, "replay state") if (set_dir / REPLAY_STATE).exists() else None
        if not isinstance(state, dict) or not {"options", "summary", "position"} <= set(state):
            raise CheckpointError(f"{self.model_dir}: holds a model but no replay checkpoint to {flag[2:]} from")
        if not same_logs and not state.get("complete", False):
            raise CheckpointError(f"{self.model_dir}: its replay was interrupted; finish it with --resume (same "
                                  f"logs) before --continue on new ones")
        saved, now = state["options"], _comparable(self.options)
        given, had = now.get("learner_params") or {}, (saved.get("learner_params") or {}) if isinstance(saved, dict) else {}
        if given.get("feedback_model") == AUTO and isinstance(had, dict):  # auto: whichever the model has
            given.pop("feedback_model")
            if "feedback_model" in had:
                given["feedback_model"] = had["feedback_model"]
        keys = set(saved) | set(now)
        if not same_logs:  # new logs; the options given must be the loaded learner's
            keys -= {"logs", "formats", "learner_params"}
        diff = [(k, saved.get(k), now.get(k)) for k in sorted(keys) if saved.get(k) != now.get(k)]
        if diff:
            detail = "; ".join(f"{k}: was {a!r}, now {b!r}" for k, a, b in diff)
            raise CheckpointError(f"{self.model_dir}: the checkpoint was written by a replay with other options: {detail}")
        learner = IGLP.load(self.model_dir, cb=self._driver)
        if not same_logs:
            had = _without_ds_bad(_comparable({k: v for k, v in learner.params.items() if k != "cb"}))
            given = _without_ds_bad(_comparable({k: v for k, v in self._params().items()
                                                 if (k != "num_actions" or v is not None)
                                                 and (k != "feedback_model" or v != AUTO)}))  # auto: the model's
            diff = [(k, had.get(k), v) for k, v in sorted(given.items()) if had.get(k) != v]
            if diff:
                learner.close()
                detail = "; ".join(f"{k}: the model's is {a!r}, given {b!r}" for k, a, b in diff)
                raise CheckpointError(f"{self.model_dir}: --continue trains the model with its own options; "
                                      f"these differ: {detail}")
        return learner, state

    def _save(self, complete: bool) -> None:
        state = {"options": self.options, "summary": self.summary.to_dict(), "position": self.position,
                 "complete": complete, "learned": self.learned[-MAX_LEARNED_LOGS:]}
        if self.before is not None:
            state["before"] = self.before
        self.learner.save(self.model_dir, extra={REPLAY_STATE: state})

    def run(self, checkpoint_every: int, trace, limit: Optional[int], progress: bool) -> ReplaySummary:
        learner, summary, stream = self.learner, self.summary, self.stream
        self.position = dict(stream.start)  # after the last event processed
        self.tracer = _Tracer(trace, append=stream.start["line"] > 0 or stream.start["file"] > 0) if trace else None
        started = time.perf_counter()
        elapsed_before, bad_before, errors_before = summary.seconds, summary.bad_lines, list(summary.errors)
        self.bar = _progress(progress, initial=summary.events)
        self.last_actions = None
        self.bad_events, self.bad_errors = 0, []  # bad lines the learner found (the reader's: in the stream)
        failure: Optional[LogError] = None
        stopped = False
        submitted = summary.events  # events handed to the learner (some may still be in the pipeline)
        pipe = self.pipe = IKPipeline(learner, self._done, _where) if use_ik_process(self.ik_process) else None
        watch = warnings.catch_warnings()  # the learner's warnings mid-run; the summary has the final word
        watch.__enter__()
        warnings.simplefilter("ignore", InferenceWarning)
        try:
            try:
                for event in stream:
                    if limit is not None and submitted >= limit:
                        stopped = True
                        break
                    if event.action is None:  # no logged action: nothing to learn
                        self._queue(None, event, stream.position)
                        continue
                    err = check_action_count(event.path, event.line, len(event.actions), learner.num_actions)
                    if err is None:
                        try:
                            if pipe is None:
                                done = learner.learn(event.context, event.actions, event.action, event.prob,
                                                     event.feedback)
                            else:
                                done = learner.learn_begin(event.context, event.actions, event.action, event.prob,
                                                           event.feedback)
                        except ValueError as exc:  # VW's parser (or the formatting) refused the features
                            err = LogError(event.path, event.line, "features", str(exc))
                    if err is not None:
                        if stream.on_bad_line == "fail":
                            failure = err
                            break
                        self._queue(err, event, stream.position)
                        continue
                    submitted += 1
                    self._queue(done, event, stream.position)
                    if checkpoint_every and submitted % checkpoint_every == 0:
                        self._drain()
                        self._account(summary, started, elapsed_before, bad_before, errors_before)
                        self._save(complete=False)
            except LogError as err:  # fail mode, or a CCB/slates event: models as of the last good event
                failure = err
            self._drain()
        except BaseException:
            for driver in self.drivers:
                driver.kill()
            if pipe is not None:
                pipe.kill()
            raise
        finally:
            watch.__exit__(None, None, None)
            if self.bar is not None:
                self.bar.close()
            if self.tracer:
                self.tracer.close()
        summary.warnings = learner.diagnostics()
        if summary.events and not summary.with_feedback:
            summary.warnings.insert(0, _no_feedback_note(learner.namespaces_seen["context"], self.options))
        if self.before is not None:
            summary.warnings += _moved(ReplaySummary.from_dict(self.before), summary)
        summary.slot_ik = learner.ik_model == "slot"
        summary.cb_args = learner.cb_full_args or ""
        self._account(summary, started, elapsed_before, bad_before, errors_before)
        try:
            if failure is not None or stopped:  # resumable from here
                self._save(complete=False)
                for driver in self.drivers:
                    driver.kill()
            else:
                # Saved while the driver runs ('save_), as every checkpoint is: the model file is then
                # the same whether or not the replay was resumed or continued (a driver's own final
                # model, -f, counts one more pass in its header than a restarted driver's would).
                self._save(complete=True)
                learner.close()
                for driver in self.drivers:  # its own final model is not needed: the one saved above is
                    driver.discard()
        finally:
            if pipe is not None:
                pipe.close()
                summary.ik_peak_rss_mb = max(summary.ik_peak_rss_mb, pipe.peak_rss())
        if failure is not None:
            raise failure
        return summary

    def _queue(self, done, event, position) -> None:
        """An event handed on in order: learned (``done`` its ρ̂, or its first stage when the IK
        runs in its own process), unlabelled (``None``) or a bad line (its :class:`LogError`)."""
        if self.pipe is None:
            self._done(done, event, position)
        else:
            self.pipe.put(done, event, position)

    def _drain(self) -> None:
        if self.pipe is not None:
            self.pipe.drain()

    def _done(self, rho, event, position) -> None:
        """An event's bookkeeping, in the logs' order, once the learner is through with it."""
        summary = self.summary
        self.position = position
        if rho is None:
            summary.unlabelled += 1
            return
        if isinstance(rho, LogError):
            self.bad_events += 1  # counted with the reader's bad lines in _account
            if len(self.bad_errors) < 5:
                self.bad_errors.append(str(rho))
            return
        summary.add(event.feedback, event.has_feedback, rho)
        key = hash(tuple(event.actions))
        if key != self.last_actions:
            summary.action_set_changes += self.last_actions is not None
            self.last_actions = key
        if self.tracer:
            self.tracer.write(event.path, event.line, event.action, event.prob, event.feedback, self.learner.last)
        if self.bar is not None and summary.events % 256 == 0:
            self.bar.update(256)

    def _account(self, summary, started, elapsed_before, bad_before, errors_before) -> None:
        summary.seconds = elapsed_before + time.perf_counter() - started
        summary.bad_lines = bad_before + self.stream.bad_lines + self.bad_events
        summary.errors = (errors_before + [e for e in self.stream.errors + self.bad_errors if e not in errors_before])[:5]
        summary.peak_rss_mb = max(summary.peak_rss_mb, peak_rss_mb())
        if self.pipe is not None:
            summary.ik_peak_rss_mb = max(summary.ik_peak_rss_mb, self.pipe.peak_rss())
        for driver in self.drivers:
            running = driver.proc is not None and not driver.closed
            summary.driver_peak_rss_mb = max(summary.driver_peak_rss_mb, driver.peak_rss_mb,
                                             peak_rss_mb(driver.proc.pid) if running else 0.0)


def _where(event, *payload) -> str:
    return f"{event.path}:{event.line}"


def _events_of(state: dict) -> int:
    try:
        summary = state["summary"]
        return int(summary.get("events", 0)) + int(summary.get("continued_from", 0))
    except (TypeError, ValueError, AttributeError, KeyError):
        return 0


# replay(learner_params={"feedback_model": "auto"}) (the command line's default): chosen from the
# first NAMESPACE_WINDOW events (iglp_vw.signals.choose_feedback_model).
AUTO = "auto"


def _resolve_feedback_model(head: list, params: dict) -> tuple:
    """``(feedback_model, why)`` for ``feedback_model="auto"`` from a log's first events."""
    model, share = choose_feedback_model([e.feedback if e.has_feedback else None for e in head])
    why = (f"{share:.0%} of the first {len(head):,} events' feedback carries several signals at once, and from "
           f"{SEVERAL_SIGNALS_SHARE:.0%} on the signals model is taken")
    if model == "signals" and (params.get("ik_model", "features") != "features"
                               or params.get("extreme_test", "group") != "group"):
        return "decoder", f"decoder (auto: {why}, but the signals model needs --ik-model features)"
    return model, f"{model} (auto: {why}; --feedback-model decoder|signals to choose)"


# A --continue run compares each signal's inferred reward with the previous replay's: signals
# with this many events in both, whose share of +1 (or of -1) moved by this much and by this
# many standard errors, are named.
MOVED_MIN_EVENTS = 100
MOVED_MIN_CHANGE = 0.15
MOVED_Z = 4.0
MOVED_SHOWN = 5


def _previous(summary) -> Optional[dict]:
    """What a later --continue compares with: the per-signal counts of a replay's summary."""
    if not isinstance(summary, dict):
        return None
    try:
        before = ReplaySummary.from_dict(summary)
    except (KeyError, TypeError, ValueError, AttributeError):  # an older or edited state: nothing to compare
        return None
    kept = before.to_dict()
    return {k: kept[k] for k in ("events", "bad_lines", "with_feedback", "seconds", "rewards", "by_feedback",
                                 "by_signal")}


def _moved(before: "ReplaySummary", now: "ReplaySummary") -> list:
    """A note naming the signals whose inferred reward moved since the previous replay, or none.

    A continued model carries its past evidence about each user (faded, with a half-life): the
    shares of ρ̂ per signal moving from one day to the next are the visible sign of a change in
    what signals mean (or in what is shown)."""
    def rows(s: "ReplaySummary") -> dict:
        table = s.by_signal if len(s.by_signal) > 1 else s.by_feedback
        return {k: v for k, v in table.items() if k not in ("none", OTHER_FEEDBACK) and sum(v.values())}

    old, new = rows(before), rows(now)
    moved = []
    for name in old.keys() & new.keys():
        n0, n1 = sum(old[name].values()), sum(new[name].values())
        if min(n0, n1) < MOVED_MIN_EVENTS:
            continue
        a, b = before.shares(old[name]), now.shares(new[name])
        for sign in ("+", "-"):
            pooled = (a[sign] * n0 + b[sign] * n1) / (n0 + n1)
            se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n0 + 1 / n1))
            change = b[sign] - a[sign]
            if abs(change) >= MOVED_MIN_CHANGE and abs(change) / se >= MOVED_Z:
                moved.append((abs(change), name, sign, a[sign], b[sign], n0, n1))
                break
    if not moved:
        return []
    moved.sort(key=lambda m: (-m[0], m[1]))
    shown = "; ".join(f"{name}: {'+1' if sign == '+' else '-1/alpha'} on {p0:.0%} of its events before, {p1:.0%} now "
                      f"(n={n0:,} → {n1:,})" for _, name, sign, p0, p1, n0, n1 in moved[:MOVED_SHOWN])
    more = f" and {len(moved) - MOVED_SHOWN} more" if len(moved) > MOVED_SHOWN else ""
    return [
        f"the inferred reward of {len(moved)} signal(s) moved since the model's previous replay: {shown}{more}. "
        "Users' conventions may have changed (or what is shown to them): a continued model follows a change "
        "within about its half-life (--half-life; slowly if nothing fades), so compare it with a fresh model of "
        "this log (replay it into a new --model-dir, then evaluate both) before publishing it"
    ]


def _without_ds_bad(params: dict) -> dict:
    """``params`` with DSJSON's ``_definitely_bad`` out of ``definitely_negative``: the replay adds
    it itself (``--states 3`` on DSJSON), so a text day after a DSJSON day is the same model's."""
    dn = params.get("definitely_negative")
    if isinstance(dn, list) and DEFINITELY_BAD in dn:
        rest = [n for n in dn if n != DEFINITELY_BAD]
        params = {**params, "definitely_negative": rest or None}
    return params


def _log_digest(path) -> dict:
    """``{"log", "size", "digest"}`` of a log file: its size and a SHA-256 of its first and last
    MiB (cheap on a log of gigabytes, and the same whatever the file is called)."""
    import hashlib

    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_DIGEST_SPAN))
        if size > _DIGEST_SPAN:
            fh.seek(max(_DIGEST_SPAN, size - _DIGEST_SPAN))
            digest.update(fh.read(_DIGEST_SPAN))
    return {"log": path.name[:200], "size": size, "digest": digest.hexdigest()[:32]}


_DIGEST_SPAN = 1 << 20


def _learned(state: dict) -> list:
    """The logs a replay state says its model learned (none for a state of an older version)."""
    out = []
    for entry in state.get("learned") or []:
        if isinstance(entry, dict) and isinstance(entry.get("digest"), str) and isinstance(entry.get("size"), int):
            out.append({"log": str(entry.get("log", "?"))[:200], "size": entry["size"], "digest": entry["digest"]})
    return out


def _trained_on(model_dir: Path) -> tuple:
    """``(" (trained on N events of LOGS)", interrupted)`` from its replay state, when it has one."""
    try:
        set_dir = modeldir.open_set(model_dir)
        state = modeldir.read_json(set_dir / REPLAY_STATE, "replay state")
        logs = ", ".join(Path(p).name for p in state["options"]["logs"])
        return f" (trained on {_events_of(state):,} events; last log: {logs})", state.get("complete") is False
    except Exception:  # noqa: BLE001 - only a detail of the message
        return "", False


def _json_params(params: Optional[dict]) -> dict:
    """The learner's arguments as saved: a set of feedback names (``{"dislike"}``, as the API
    documents it) becomes its sorted list, a tuple a list; a callable oracle is kept."""
    out = {}
    for key, value in dict(params or {}).items():
        if isinstance(value, (set, frozenset)):
            value = sorted(str(v) for v in value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def _comparable(options: dict) -> dict:
    return json.loads(json.dumps(options))


def _progress(enabled: bool, initial: int = 0):
    """A tqdm bar with rate on a terminal (``disable=None``: off when stderr is not a TTY)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(initial=initial, unit=" events", disable=None, mininterval=0.5, dynamic_ncols=True)


class _Tracer:
    """One row per event to CSV (or Parquet, with pyarrow installed: typed columns), streamed."""

    TYPES = {"line": "int64", "action": "int64", "prob": "float64", "ik_probability": "float64", "prior": "float64",
             "extreme": "int8", "definitely_negative": "int8", "inferred_reward": "float64"}

    def __init__(self, path, append: bool = False, columns: Sequence[str] = TRACE_COLUMNS):
        self.path = Path(path)
        self.columns = list(columns)
        self.parquet = self.path.suffix == ".parquet"
        if self.parquet:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ValueError(f"{self.path}: a Parquet trace needs pyarrow (pip install 'iglp-vw[parquet]'), "
                                 "or use .csv") from None
            self.rows: list = []
            self.writer = None
            self.previous = None
            if append and self.path.exists():  # a resumed replay: the rows so far come first
                import pyarrow.parquet as pq

                self.previous = pq.read_table(self.path)
        else:
            exists = append and self.path.exists()
            self.fh = open(self.path, "a" if exists else "w", newline="")
            self.writer = csv.writer(self.fh)
            if not exists:
                self.writer.writerow(self.columns)

    def write(self, path, line, action, prob, feedback, last: dict, extra: Iterable = ()) -> None:
        if self.parquet:
            self.rows.append([path, line, action, prob, feedback, last["group"], last["ik_probability"], last["prior"],
                              int(last["extreme"]), int(last["definitely_negative"]), last["inferred_reward"], *extra])
            if len(self.rows) >= 65536:
                self._flush_parquet()
        else:
            self.writer.writerow([
                path, line, action, prob, feedback, last["group"],
                f"{last['ik_probability']:.6g}", f"{last['prior']:.6g}", int(last["extreme"]),
                int(last["definitely_negative"]), last["inferred_reward"], *extra,
            ])

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {}
        for i, c in enumerate(self.columns):
            values = [r[i] for r in self.rows]
            kind = self.TYPES.get(c)
            arrays[c] = pa.array(values, type=pa.from_numpy_dtype(np.dtype(kind))) if kind else \
                pa.array([str(v) for v in values], type=pa.string())
        table = pa.table(arrays)
        if self.writer is None:
            self.tmp = self.path.with_name(self.path.name + ".part")
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
            if self.previous is not None:
                self.writer.write_table(self.previous.cast(table.schema))
        self.writer.write_table(table)
        self.rows = []

    def close(self) -> None:
        if self.parquet:
            if self.rows or self.writer is None:
                self._flush_parquet()
            self.writer.close()
            os.replace(self.tmp, self.path)
        else:
            self.fh.close()


# ------------------------------------------------------------------ predict / label


PREDICT_COLUMNS = ["event_id", "file", "line", "action", "action_id", "prob", "pmf"]


def predict_log(model_dir, paths, out, on_bad_line: str = "fail", feedback_namespace: str = "Feedback",
                fmt: str = "jsonl", names: Optional[dict] = None) -> dict:
    """One row per event to ``out`` (a text stream): the policy's pmf and a sampled action.

    Rows ``{"event_id", "file", "line", "action", "action_id", "prob", "pmf"}``: ``event_id``
    is DSJSON's ``EventId`` (else ``file:line``), ``action`` the index of the chosen candidate
    and ``action_id`` its id (a feature ``id`` of the candidate, as in ``|Action id=17`` or
    ``{"Action": {"id": 17}}``; empty when it has none); the action is drawn with the
    model's seeded generator, so two runs print the same. ``fmt``: ``"jsonl"`` or ``"csv"``
    (the pmf then as ``;``-joined numbers). ``names``: path -> the name rows give it.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"`fmt` must be 'jsonl' or 'csv', got {fmt!r}")
    learner = IGLP.load(model_dir)
    stream = LogStream(paths, None, feedback_namespace, on_bad_line=on_bad_line)
    counters = Counter()
    writer = None
    for event in stream:
        err = check_action_count(event.path, event.line, len(event.actions), learner.num_actions)
        if err is None:
            try:
                pmf = learner.predict(event.context, event.actions)
            except ValueError as exc:
                err = LogError(event.path, event.line, "features", str(exc))
        if err is not None:
            if on_bad_line == "fail":
                raise err
            counters["bad_lines"] += 1
            continue
        action, prob = learner.sample(pmf)
        ids = action_ids(event)
        name = names.get(event.path, event.path) if names else event.path
        row = {"event_id": event.event_id if event.event_id is not None else f"{name}:{event.line}",
               "file": name, "line": event.line, "action": action,
               "action_id": ids[action] if ids else None, "prob": round(prob, 6), "pmf": [round(p, 6) for p in pmf]}
        if fmt == "jsonl":
            out.write(json.dumps(row) + "\n")
        else:
            if writer is None:
                writer = csv.DictWriter(out, PREDICT_COLUMNS, lineterminator="\n")
                writer.writeheader()
            writer.writerow({**row, "action_id": "" if row["action_id"] is None else row["action_id"],
                             "pmf": ";".join(map(str, row["pmf"]))})
        counters["events"] += 1
    counters["bad_lines"] += stream.bad_lines
    return dict(counters)


def action_ids(event) -> Optional[list]:
    """Each candidate's id: its feature ``id`` (``|Action id=17``; DSJSON ``{"Action": {"id": 17}}``,
    at any depth), as text; a candidate without one is named by its first feature as VW reads
    it (``|A sku=123 price:2`` is ``sku=123``); ``None`` when a candidate has no feature."""
    ids = None
    if event.raw is not None:
        try:
            ids = [_json_id(a) for a in event.raw["c"]["_multi"]]
        except (KeyError, TypeError):
            ids = None
    if ids is None or len(ids) != len(event.actions):
        ids = [None] * len(event.actions)
    out = []
    for found, text in zip(ids, event.actions):
        if found is None:
            tokens = [t for t in str(text).split() if not t.startswith("|")]
            named = [t[3:].split(":", 1)[0] for t in tokens if t.startswith("id=")]
            found = named[0] if named else (tokens[0].split(":", 1)[0] if tokens else None)
        out.append(found)
    return out if all(i is not None for i in out) else None


def _json_id(obj, depth: int = 0):
    if not isinstance(obj, dict) or depth > 4:
        return None
    value = obj.get("id")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    for v in obj.values():
        found = _json_id(v, depth + 1) if isinstance(v, dict) else None
        if found is not None:
            return found
    return None


def label_log(model_dir, paths, out_path, on_bad_line: str = "fail", trace=None, online: bool = False,
              feedback_namespace: str = "Feedback", feedback_from_cost: bool = False,
              keep_feedback: bool = False, ik_process: Optional[bool] = None) -> ReplaySummary:
    """Rewrite logs with the inferred reward as the VW cost label (``-ρ̂``), same format in and out.

    The models in ``model_dir`` are used as they are (``online=True``: the IK and
    the decoder keep learning, as in a replay). The text writer leaves the feedback
    namespace out of the shared line (unless ``keep_feedback``) so a CB trained on the output does not see it;
    the DSJSON writer keeps the logged cost in ``_original_label_cost``.
    ``trace`` gets the IK's probabilities per event. ``ik_process``: with ``online``, the IK
    learns in a process of its own, as in :func:`replay` (same labels).
    """
    learner = IGLP.load(model_dir)
    stream = LogStream(paths, None, feedback_namespace, feedback_from_cost, on_bad_line)
    check_outputs(stream.paths, [out_path, trace], model_dir)
    summary = ReplaySummary()
    tracer = _Tracer(trace) if trace else None
    started = time.perf_counter()
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".part")
    infer = learner.learn_reward if online else learner.infer_reward
    pipe = None

    def done(rho, event, fmt, out) -> None:  # an event's output, in the logs' order
        if rho is None:  # nothing to label: written as it was
            out.write(format_text_event(event, None, None if keep_feedback else feedback_namespace)
                      if fmt == "text" else format_dsjson_event(event))
            summary.unlabelled += 1
        elif isinstance(rho, LogError):
            summary.bad_lines += 1
        else:
            out.write(format_text_event(event, -rho, None if keep_feedback else feedback_namespace)
                      if fmt == "text" else format_dsjson_event(event, -rho))
            summary.add(event.feedback, event.has_feedback, rho)
            if tracer:
                tracer.write(event.path, event.line, event.action, event.prob, event.feedback, learner.last)

    try:
        with open_text(tmp, "w") as out:
            if online and use_ik_process(ik_process):
                pipe = IKPipeline(learner, done, _where, cb=False)
            for event in stream:
                fmt = stream.formats[event.source]
                if event.action is None:
                    rho = None
                else:
                    rho = check_action_count(event.path, event.line, len(event.actions), learner.num_actions)
                    if rho is None:
                        try:
                            if pipe is None:
                                rho = infer(event.context, len(event.actions), event.action, event.prob,
                                            event.feedback, actions=event.actions)
                            else:
                                rho = learner.learn_begin(event.context, event.actions, event.action, event.prob,
                                                          event.feedback)
                        except ValueError as exc:  # VW's parser refused the features
                            rho = LogError(event.path, event.line, "features", str(exc))
                    if isinstance(rho, LogError) and on_bad_line == "fail":
                        if pipe is not None:
                            pipe.drain()
                        raise rho
                if pipe is None:
                    done(rho, event, fmt, out)
                else:
                    pipe.put(rho, event, fmt, out)
            if pipe is not None:
                pipe.drain()
        os.replace(tmp, out_path)
    finally:
        if pipe is not None:
            pipe.close()
        if tracer:
            tracer.close()
        if tmp.exists():
            tmp.unlink()
    summary.bad_lines += stream.bad_lines
    summary.seconds = time.perf_counter() - started
    return summary
