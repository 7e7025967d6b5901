"""Offline replay of logged events through Algorithm 1, and the other batch jobs over logs.

In off-policy replay the logged action and its probability are given, so the IK's
stream never depends on the CB. :func:`replay` therefore splits Algorithm 1 in two
processes: this one runs the IK, the decoder and the inferred reward
(:meth:`IGLP.learn_reward`) and writes each event, with cost ``-ρ̂`` on the logged
action, to VW's own C++ driver (``python -m vowpalwabbit --cb_explore_adf ...``)
running the CB on the other core. The models are the ones :meth:`IGLP.learn`
would give on the same events (tested).

Checkpoints (``checkpoint_every``) hold every model and the position in the logs.
Each is written to a fresh directory and then published by atomically replacing
``checkpoint.json``, so a killed replay never leaves a torn checkpoint, and a
resumed replay ends with models byte-identical to an uninterrupted one (tested).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .learner import IGLP, _cb_reload_args, sample_pmf
from .logs import (
    DEFINITELY_BAD,
    Event,
    LogError,
    UnsupportedLogError,
    check_action_count,
    detect_format,
    format_dsjson_event,
    format_text_event,
    read_events,
)
from ._util import can_fork
from ._util import write_json as _write_json
from .vw import adf_split, cb_arguments, cb_label, split_args

__all__ = ["replay", "predict_log", "label_log", "ReplaySummary", "CheckpointError"]

CHECKPOINT_POINTER = "checkpoint.json"
_PART = "cb.model.part"  # the driver's final model, before it is published
REPLAY_CONFIG = "replay.json"
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
    by_feedback: dict = field(default_factory=dict)  # feedback text -> Counter(rho -> count)
    with_feedback: int = 0
    action_set_changes: int = 0  # events whose action set differs from the previous event's
    seconds: float = 0.0
    errors: list = field(default_factory=list)  # first few skipped bad lines
    peak_rss_mb: float = 0.0  # this process
    driver_peak_rss_mb: float = 0.0  # VW's driver (the CB)

    def add(self, feedback: str, has_feedback: bool, rho: float) -> None:
        self.events += 1
        self.rewards[rho] += 1
        self.with_feedback += has_feedback
        counts = self.by_feedback.get(feedback)
        if counts is None:
            counts = self.by_feedback[feedback] = Counter()
        counts[rho] += 1

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
            "action_set_changes": self.action_set_changes,
            "rewards": {repr(float(k)): v for k, v in sorted(self.rewards.items())},
            "by_feedback": {
                fb: {repr(float(k)): v for k, v in sorted(c.items())} for fb, c in self.by_feedback.items()
            },
            "seconds": self.seconds,
            "errors": self.errors,
            "peak_rss_mb": self.peak_rss_mb,
            "driver_peak_rss_mb": self.driver_peak_rss_mb,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ReplaySummary":
        out = cls(events=d["events"], bad_lines=d["bad_lines"], with_feedback=d["with_feedback"], seconds=d["seconds"])
        out.rewards = Counter({float(k): v for k, v in d["rewards"].items()})
        out.by_feedback = {fb: Counter({float(k): v for k, v in c.items()}) for fb, c in d["by_feedback"].items()}
        out.errors = list(d.get("errors", []))
        out.action_set_changes = d.get("action_set_changes", 0)
        out.peak_rss_mb = d.get("peak_rss_mb", 0.0)
        out.driver_peak_rss_mb = d.get("driver_peak_rss_mb", 0.0)
        return out

    def report(self, top: int = 15) -> str:
        """The summary as text: totals, ρ̂ shares overall and per feedback value (most frequent first)."""
        rate = self.events / self.seconds if self.seconds else float("nan")
        lines = [
            f"events: {self.events:,}  bad lines skipped: {self.bad_lines:,}  "
            f"with feedback: {self.with_feedback:,}  time: {self.seconds:.1f} s  ({rate:,.0f} events/s)",
            _share_line("inferred reward", self.shares(), self.events),
        ]
        ranked = sorted(self.by_feedback.items(), key=lambda kv: -sum(kv[1].values()))
        if ranked:
            lines.append("per feedback value:")
            for fb, counts in ranked[:top]:
                lines.append("  " + _share_line(fb, self.shares(counts), sum(counts.values())))
            if len(ranked) > top:
                lines.append(f"  ... and {len(ranked) - top} more feedback values")
        for err in self.errors:
            lines.append(f"skipped: {err}")
        if self.action_set_changes > 0.01 * self.events:
            lines.append(
                f"warning: the action set changed between consecutive events {self.action_set_changes:,} times. "
                "The default IK predicts the action's position in the set (VW --oaa K), so it learns only where "
                "each position keeps its item (a fixed catalogue, or items always in the same order); for "
                "changing sets use --ik-model features."
            )
        return "\n".join(lines)


def _share_line(name, shares, n) -> str:
    return f"{name}: +1 {shares['+']:.1%}  0 {shares['0']:.1%}  -1/alpha {shares['-']:.1%}  (n={n:,})"


class _CBDriver:
    """VW's own driver running the CB, fed ADF text on its stdin, writing ``model_out`` at the end.

    It runs in ``workdir``; :meth:`save` makes it save the model mid-stream (VW's
    ``'save_<file>|`` command), so checkpoints never restart it: a restarted driver
    counts one more pass in the model file, and resumed models would then differ
    from uninterrupted ones in that byte.
    """

    _SYNC = ".cb-sync.model"

    def __init__(self, args: str, workdir: Path, model_out: str, model_in: Optional[Path] = None):
        if model_in is not None:  # the model file holds the reductions and interactions
            args = f"{_cb_reload_args(args)} -i {Path(model_in).resolve()} --preserve_performance_counters"
        cmd = [sys.executable, "-m", "vowpalwabbit", *split_args(args), "-d", "/dev/stdin", "-f", model_out]
        self.cmd = cmd
        self.workdir = Path(workdir)
        self._stderr = open(self.workdir / ".cb-driver.log", "w+b")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._stderr, stdout=subprocess.DEVNULL,
                                     bufsize=0, cwd=self.workdir)
        _widen_pipe(self.proc.stdin.fileno())  # writes return at once unless VW is a whole MB behind
        self._buffer: list = []
        self.peak_rss_mb = 0.0

    def save(self, relative_path: str) -> None:
        """Save the model to ``workdir/relative_path`` now, and wait until it is complete."""
        sync = self.workdir / self._SYNC
        if sync.exists():
            sync.unlink()
        # Saves run in order: once the second file exists, the first is complete.
        self.feed(f"'save_{relative_path}|\n\n'save_{self._SYNC}|\n\n")
        self.flush()
        try:
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.close()
        while not sync.exists():
            if self.proc.poll() is not None:
                self.close()  # raises with VW's message
            time.sleep(0.001)
        sync.unlink()

    def feed(self, text: str) -> None:
        self._buffer.append(text)
        if len(self._buffer) >= 64:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            try:
                data = memoryview("".join(self._buffer).encode())
                while data:  # unbuffered: a write may take only part
                    data = data[self.proc.stdin.write(data):]
            except BrokenPipeError:
                self.close()  # raises with VW's message
            self._buffer = []

    def close(self) -> None:
        try:
            self.flush()
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.peak_rss_mb = _peak_rss_mb(self.proc.pid)
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        os.unlink(self._stderr.name)
        sync = self.workdir / self._SYNC
        if sync.exists():
            sync.unlink()
        if rc != 0:
            raise RuntimeError(f"VW's driver for the CB failed (exit {rc}): {' '.join(self.cmd)}\n{err[-2000:]}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._stderr.close()


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
    on_bad_line: str = "fail",
    trace=None,
    limit: Optional[int] = None,
    progress: bool = False,
    parallel_read: bool = True,
) -> ReplaySummary:
    """Learn an IGL-P policy from logs, off-policy, and save it to ``model_dir``.

    Parameters
    ----------
    paths
        Log files (VW text ADF or DSJSON, gzip or not), read in order, streamed.
    model_dir
        Where the models go (:meth:`IGLP.load` reads it; ``cb.model`` is a plain VW model).
    learner_params
        :class:`IGLP` arguments (``states``, ``alpha``, ``definitely_negative``,
        ``cb_args``, ``ik_args``, ``seed``, ...). ``num_actions`` defaults to the
        size of the first event's action set. For DSJSON logs with ``states=3``,
        outcomes marked ``_definitely_bad`` count as definitely negative.
    checkpoint_every
        Write a checkpoint every this many events (0: only at the end).
    resume
        Continue from the checkpoint in ``model_dir`` (same options required).
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
    """
    if on_bad_line not in ("fail", "skip"):
        raise ValueError(f"`on_bad_line` must be 'fail' or 'skip', got {on_bad_line!r}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no log given")
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such log file")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    formats = [fmt or detect_format(p) for p in paths]
    options = {
        "logs": [str(p) for p in paths],
        "formats": formats,
        "feedback_namespace": feedback_namespace,
        "feedback_from_cost": feedback_from_cost,
        "learner_params": dict(learner_params or {}),
    }

    summary = ReplaySummary()
    position = {"file": 0, "line": 0}
    learner: Optional[IGLP] = None
    cb_model: Optional[Path] = None
    if resume:
        learner, cb_model, position, summary, saved = _load_checkpoint(model_dir)
        if saved != _comparable(options):
            raise CheckpointError(f"{model_dir}: the checkpoint was written by a replay with other options: {saved}")
    elif (model_dir / CHECKPOINT_POINTER).exists():
        _clear_checkpoints(model_dir)
    params = dict(learner_params or {})
    if learner is None:
        k = params.pop("num_actions", None) or _first_action_count(paths, formats, feedback_namespace, feedback_from_cost)
        if "_definitely_bad" not in str(params.get("definitely_negative")) and params.get("states", 2) == 3:
            if any(f == "dsjson" for f in formats) and not callable(params.get("definitely_negative")):
                params["definitely_negative"] = sorted(set(params.get("definitely_negative") or ()) | {DEFINITELY_BAD})
        learner = IGLP(num_actions=k, **params)

    tracer = _Tracer(trace, append=resume and position["line"] > 0) if trace else None
    driver: Optional[_CBDriver] = None
    seen = summary.events
    started = time.perf_counter()
    elapsed_before = summary.seconds
    bar = _progress(progress, initial=seen)
    failure: Optional[LogError] = None
    last_good = dict(position)
    last_actions = None
    features_ik = learner.ik_model == "features"
    records = _records_parallel if parallel_read and can_fork() else _records
    stream = records(paths, formats, feedback_namespace, feedback_from_cost, position["file"], position["line"])
    try:
        for rec in stream:
            if limit is not None and seen >= limit:
                break
            if isinstance(rec, LogError):
                err = rec
            else:
                fi, line, end_line, context, feedback, action, prob, k, has_fb, cb_pre, cb_post, actions_key = rec
                err = check_action_count(paths[fi], line, k, learner.num_actions)
                if err is None:
                    try:
                        # The checked record's text goes straight in (learn_reward re-checks it).
                        texts = _action_texts(cb_pre, cb_post, context) if features_ik else ()
                        rho = learner._learn_reward(context, context, k, action, prob, feedback, action_texts=texts)
                    except ValueError as exc:  # VW's parser refused the features
                        err = LogError(paths[fi], line, "features", str(exc))
            if err is not None:
                if on_bad_line == "fail":
                    failure = err
                    break
                summary.bad_lines += 1
                if len(summary.errors) < 5:
                    summary.errors.append(str(err))
                continue
            if driver is None:
                if learner._cb_full_args is None:
                    actions = _action_texts(cb_pre, cb_post, context)
                    learner._cb_full_args = cb_arguments(learner.cb_args, context, actions, learner.seed)
                driver = _CBDriver(learner._cb_full_args, model_dir, _PART, cb_model)
            driver.feed(f"{cb_pre}{cb_label(-rho, prob)} {cb_post}")
            summary.add(feedback, has_fb, rho)
            if actions_key != last_actions:
                summary.action_set_changes += last_actions is not None
                last_actions = actions_key
            seen += 1
            last_good = {"file": fi, "line": end_line}
            if tracer:
                tracer.write(str(paths[fi]), line, action, prob, feedback, learner.last)
            if bar is not None and seen % 256 == 0:
                bar.update(256)
            if checkpoint_every and seen % checkpoint_every == 0:
                summary.seconds = elapsed_before + time.perf_counter() - started
                _write_checkpoint(model_dir, learner, driver, last_good, summary, options)
    except BaseException:
        if driver is not None:
            driver.kill()
        raise
    finally:
        stream.close()  # stops the reader process, if any
        if bar is not None:
            bar.close()
        if tracer:
            tracer.close()

    summary.seconds = elapsed_before + time.perf_counter() - started
    stopped_early = failure is not None or (limit is not None and seen >= limit)
    if driver is not None:
        if stopped_early:  # resumable from here
            _write_checkpoint(model_dir, learner, driver, last_good, summary, options)
        driver.close()
        summary.seconds = elapsed_before + time.perf_counter() - started  # until the CB has learned everything
        cb_model = model_dir / _PART
        _measure_memory(summary, driver.peak_rss_mb)
        if not stopped_early:
            _write_checkpoint(model_dir, learner, None, last_good, summary, options, cb_source=cb_model)
    elif not (model_dir / CHECKPOINT_POINTER).exists():
        _write_checkpoint(model_dir, learner, None, last_good, summary, options, cb_source=cb_model)
    _publish_final(model_dir, learner, cb_model, summary, options)
    if failure is not None:
        raise failure
    return summary


def _record(file_index: int, event):
    """An event as the flat tuple the replay loop reads (cheap to pickle), or the LogError itself.

    The CB's text is pre-built around the label: ``cb_pre + "0:cost:prob " + cb_post``.
    """
    if isinstance(event, LogError):
        return event
    try:
        cb_pre, cb_post = adf_split(event.context, event.actions, event.action)
    except ValueError as err:
        return LogError(event.path, event.line, "features", str(err))
    return (file_index, event.line, event.end_line, event.context, event.feedback, event.action, event.prob,
            len(event.actions), event.has_feedback, cb_pre, cb_post, hash(tuple(event.actions)))


def _records(paths, formats, feedback_namespace, feedback_from_cost, start_file, start_line):
    for fi in range(start_file, len(paths)):
        skip = start_line if fi == start_file else 0
        for event in read_events(paths[fi], formats[fi], feedback_namespace, feedback_from_cost, skip):
            yield _record(fi, event)


def _widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Grow a pipe's kernel buffer (Linux; 64 KB by default) so both ends work without waiting."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError):
        pass


def _reader_main(conn, args, batch: int = 64) -> None:
    """The forked reader: records in pickled batches, then ``None`` (or an error tuple)."""
    try:
        buf = []
        for rec in _records(*args):
            buf.append(rec)
            if len(buf) >= batch:
                conn.send_bytes(pickle.dumps(buf, protocol=pickle.HIGHEST_PROTOCOL))
                buf = []
        if buf:
            conn.send_bytes(pickle.dumps(buf, protocol=pickle.HIGHEST_PROTOCOL))
        conn.send_bytes(pickle.dumps(None))
    except UnsupportedLogError as err:
        conn.send_bytes(pickle.dumps(("unsupported", str(err))))
    except BaseException as err:  # noqa: BLE001 - reported in the parent
        conn.send_bytes(pickle.dumps(("error", f"{type(err).__name__}: {err}")))
    finally:
        conn.close()


def _records_parallel(*args):
    """:func:`_records` computed in a forked process, one batch ahead of the caller."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    _widen_pipe(send.fileno())  # lets the reader work ~1 MB ahead
    proc = ctx.Process(target=_reader_main, args=(send, args), daemon=True)
    proc.start()
    send.close()
    try:
        while True:
            try:
                batch = pickle.loads(recv.recv_bytes())
            except EOFError:
                raise RuntimeError(f"the log reader process ended unexpectedly (exit code {proc.exitcode})") from None
            if batch is None:
                return
            if isinstance(batch, tuple):
                kind, message = batch
                raise UnsupportedLogError(message) if kind == "unsupported" else RuntimeError(message)
            yield from batch
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join()


def _peak_rss_mb(pid="self") -> float:
    """A process's peak resident memory in MB (Linux ``VmHWM``; 0 where unknown).

    Not ``ru_maxrss``: that keeps the high-water mark of the process it was
    forked from, so a replay started by a big process would report the parent's.
    """
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _measure_memory(summary: ReplaySummary, driver_peak: float = 0.0) -> None:
    summary.peak_rss_mb = max(summary.peak_rss_mb, _peak_rss_mb())
    summary.driver_peak_rss_mb = max(summary.driver_peak_rss_mb, driver_peak)


def _action_texts(cb_pre: str, cb_post: str, context: str) -> list:
    """The action lines of a record's pre-built CB text (the shared line and the label left out)."""
    lines = cb_pre.split("\n")[:-1] + cb_post.split("\n")[:-2]
    return lines[1:] if context else lines


def _learn_event(learner: IGLP, event: Event, update: bool = True):
    """``(event, ρ̂)``, or ``(LogError, None)`` when the event does not fit the model or VW rejects it."""
    err = check_action_count(event.path, event.line, len(event.actions), learner.num_actions)
    if err is not None:
        return err, None
    try:
        if update:
            rho = learner.learn_reward(event.context, len(event.actions), event.action, event.prob, event.feedback,
                                       actions=event.actions)
        else:
            rho = learner.infer_reward(event.context, len(event.actions), event.action, event.prob, event.feedback,
                                       actions=event.actions)
    except ValueError as err:  # VW's parser refused the features
        return LogError(event.path, event.line, "features", str(err)), None
    return event, rho


def _comparable(options: dict) -> dict:
    return json.loads(json.dumps(options))


def _first_action_count(paths, formats, feedback_namespace, feedback_from_cost) -> int:
    for p, f in zip(paths, formats):
        for event in read_events(p, f, feedback_namespace, feedback_from_cost):
            if isinstance(event, Event):
                return max(2, len(event.actions))
    raise ValueError(f"no valid event in {', '.join(map(str, paths))}: cannot tell the number of actions")


def _write_checkpoint(model_dir: Path, learner: IGLP, driver, position, summary, options, cb_source=None) -> None:
    """Models and position into a new directory, then published by replacing ``checkpoint.json``.

    The CB comes from the running ``driver`` (saved mid-stream) or from ``cb_source``.
    """
    n = summary.events
    target = model_dir / f".checkpoint-{n}-{os.getpid()}-{time.monotonic_ns()}"
    target.mkdir()
    pointer = model_dir / CHECKPOINT_POINTER
    previous = json.loads(pointer.read_text()).get("dir") if pointer.exists() else None
    if driver is not None:
        driver.save(f"{target.name}/cb.model")
    elif cb_source is not None and Path(cb_source).exists():
        shutil.copyfile(cb_source, target / "cb.model")
    learner.save(target)
    _write_json(target / "position.json", {"position": position, "summary": summary.to_dict(), "options": options})
    _write_json(pointer, {"dir": target.name, "events": n})
    if previous and previous != target.name:
        shutil.rmtree(model_dir / previous, ignore_errors=True)


def _load_checkpoint(model_dir: Path):
    pointer = model_dir / CHECKPOINT_POINTER
    if not pointer.exists():
        raise CheckpointError(f"{model_dir}: no checkpoint to resume from (run without --resume first)")
    ckpt = model_dir / json.loads(pointer.read_text())["dir"]
    data = json.loads((ckpt / "position.json").read_text())
    learner = IGLP.load(ckpt)
    learner._cb = None  # the CB continues in VW's driver
    cb = ckpt / "cb.model"
    return learner, (cb if cb.exists() else None), data["position"], ReplaySummary.from_dict(data["summary"]), data["options"]


def _clear_checkpoints(model_dir: Path) -> None:
    pointer = model_dir / CHECKPOINT_POINTER
    try:
        old = json.loads(pointer.read_text()).get("dir")
    except (OSError, ValueError):
        old = None
    pointer.unlink()
    if old:
        shutil.rmtree(model_dir / old, ignore_errors=True)


def _publish_final(model_dir: Path, learner: IGLP, cb_model: Optional[Path], summary, options) -> None:
    """The final models at the top of ``model_dir`` (what ``IGLP.load(model_dir)`` reads)."""
    if cb_model is not None:
        if Path(cb_model) == model_dir / _PART:
            os.replace(cb_model, model_dir / "cb.model")
        else:
            tmp = model_dir / "cb.model.tmp"
            shutil.copyfile(cb_model, tmp)
            os.replace(tmp, model_dir / "cb.model")
    cb, learner._cb = learner._cb, None
    try:
        learner.save(model_dir)
    finally:
        learner._cb = cb
    _write_json(model_dir / REPLAY_CONFIG, {"options": options, "summary": summary.to_dict()})


def _progress(enabled: bool, initial: int = 0):
    """A tqdm bar with rate on a terminal (``disable=None``: off when stderr is not a TTY)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(initial=initial, unit=" events", disable=None, mininterval=0.5, dynamic_ncols=True)


class _Tracer:
    """One row per event to CSV (or Parquet, with pyarrow installed), streamed."""

    def __init__(self, path, append: bool = False):
        self.path = Path(path)
        self.parquet = self.path.suffix == ".parquet"
        if self.parquet:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ValueError(f"{self.path}: a Parquet trace needs pyarrow (pip install pyarrow), or use .csv") from None
            self.rows: list = []
            self.writer = None
        else:
            exists = append and self.path.exists()
            self.fh = open(self.path, "a" if exists else "w", newline="")
            self.writer = csv.writer(self.fh)
            if not exists:
                self.writer.writerow(TRACE_COLUMNS)

    def write(self, path, line, action, prob, feedback, last: dict, extra: Iterable = ()) -> None:
        row = [
            path, line, action, prob, feedback, last["group"],
            f"{last['ik_probability']:.6g}", f"{last['prior']:.6g}", int(last["extreme"]),
            int(last["definitely_negative"]), last["inferred_reward"], *extra,
        ]
        if self.parquet:
            self.rows.append(row)
            if len(self.rows) >= 65536:
                self._flush_parquet()
        else:
            self.writer.writerow(row)

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [str(r[i]) for r in self.rows] for i, c in enumerate(TRACE_COLUMNS)})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)
        self.rows = []

    def close(self) -> None:
        if self.parquet:
            if self.rows:
                self._flush_parquet()
            if self.writer is not None:
                self.writer.close()
        else:
            self.fh.close()


# ------------------------------------------------------------------ predict / label


def _events(paths, on_bad_line, feedback_namespace="Feedback", feedback_from_cost=False, counters=None):
    for p in paths:
        fmt = detect_format(p)
        for event in read_events(p, fmt, feedback_namespace, feedback_from_cost):
            if isinstance(event, LogError):
                if on_bad_line == "fail":
                    raise event
                if counters is not None:
                    counters["bad_lines"] += 1
                continue
            yield fmt, event


def predict_log(model_dir, paths, out, on_bad_line: str = "fail", feedback_namespace: str = "Feedback") -> dict:
    """One JSON line per event to ``out`` (a text stream): the policy's pmf and a sampled action.

    ``{"file", "line", "pmf", "action", "prob"}``; the action is drawn with the
    model's seeded generator, so two runs print the same.
    """
    learner = IGLP.load(model_dir)
    counters = Counter()
    for _, event in _events(paths, on_bad_line, feedback_namespace, counters=counters):
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
        action, prob = sample_pmf(learner._rng, pmf)
        out.write(json.dumps({"file": event.path, "line": event.line, "pmf": [round(p, 6) for p in pmf],
                              "action": action, "prob": round(prob, 6)}) + "\n")
        counters["events"] += 1
    return dict(counters)


def label_log(model_dir, paths, out_path, on_bad_line: str = "fail", trace=None, online: bool = False,
              feedback_namespace: str = "Feedback", feedback_from_cost: bool = False,
              keep_feedback: bool = False) -> ReplaySummary:
    """Rewrite logs with the inferred reward as the VW cost label (``-ρ̂``), same format in and out.

    The models in ``model_dir`` are used as they are (``online=True``: the IK and
    the decoder keep learning, as in a replay). The text writer leaves the feedback
    namespace out of the shared line (unless ``keep_feedback``) so a CB trained on the output does not see it;
    the DSJSON writer keeps the logged cost in ``_original_label_cost``.
    ``trace`` gets the IK's probabilities per event.
    """
    learner = IGLP.load(model_dir)
    summary = ReplaySummary()
    bad = Counter()
    tracer = _Tracer(trace) if trace else None
    started = time.perf_counter()
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".part")
    try:
        with open(tmp, "w") as out:
            for fmt, event in _events(paths, on_bad_line, feedback_namespace, feedback_from_cost, bad):
                event, rho = _learn_event(learner, event, update=online)
                if isinstance(event, LogError):
                    if on_bad_line == "fail":
                        raise event
                    summary.bad_lines += 1
                    continue
                cost = -rho
                out.write(format_text_event(event, cost, None if keep_feedback else feedback_namespace) if fmt == "text" else format_dsjson_event(event, cost))
                summary.add(event.feedback, event.has_feedback, rho)
                if tracer:
                    tracer.write(event.path, event.line, event.action, event.prob, event.feedback, learner.last)
        os.replace(tmp, out_path)
    finally:
        if tracer:
            tracer.close()
        if tmp.exists():
            tmp.unlink()
    summary.bad_lines += bad["bad_lines"]
    summary.seconds = time.perf_counter() - started
    return summary
