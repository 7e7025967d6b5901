"""One stream of logged events over several logs: what replay, predict, label and evaluate read.

:class:`LogStream` is re-iterable (each iteration starts from ``start``), detects each
log's format, applies one bad-line policy, and remembers the position after the last
event it yielded, for checkpoints. With ``parallel=True`` the logs are read and checked in
a forked process, one batch ahead (the replay's main process then only runs the IK); that
process ends with its parent, whatever kills the parent.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
from pathlib import Path
from typing import Iterator, Optional, Sequence

from ._util import can_fork
from .logs import MAX_ACTIONS, Event, LogError, UnsupportedLogError, detect_format, read_events

__all__ = ["LogStream"]

BAD_LINE_POLICIES = ("fail", "skip")


class LogStream:
    """The events of ``paths`` in order, as :class:`~iglp_vw.logs.Event` objects.

    Parameters
    ----------
    paths
        Log files (VW text ADF or DSJSON, gzip or not).
    fmt
        ``"text"``, ``"dsjson"`` or ``None`` to detect each file's format.
    feedback_namespace, feedback_from_cost, max_actions
        As for :func:`~iglp_vw.logs.read_events`.
    on_bad_line
        ``"fail"``: a malformed event raises its :class:`~iglp_vw.logs.LogError`;
        ``"skip"``: it is counted in ``bad_lines`` (the first few kept in ``errors``)
        and the stream goes on. A CCB or slates event always raises.
    start
        ``{"file": i, "line": n}``: begin after line ``n`` of ``paths[i]`` (a checkpoint's
        ``position``).
    parallel
        Read in a forked process (where the platform can fork).
    """

    def __init__(self, paths: Sequence, fmt: Optional[str] = None, feedback_namespace: str = "Feedback",
                 feedback_from_cost: bool = False, on_bad_line: str = "fail", max_actions: int = MAX_ACTIONS,
                 start: Optional[dict] = None, parallel: bool = False):
        if on_bad_line not in BAD_LINE_POLICIES:
            raise ValueError(f"`on_bad_line` must be 'fail' or 'skip', got {on_bad_line!r}")
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no log given")
        for p in self.paths:
            if not p.exists():
                raise FileNotFoundError(f"{p}: no such log file")
            if p.is_dir():
                raise IsADirectoryError(f"{p}: is a directory, not a log file")
        self.formats = [fmt or detect_format(p) for p in self.paths]
        self.feedback_namespace = feedback_namespace
        self.feedback_from_cost = feedback_from_cost
        self.on_bad_line = on_bad_line
        self.max_actions = max_actions
        self.start = dict(start or {"file": 0, "line": 0})
        self.parallel = parallel and can_fork()
        self.position = dict(self.start)
        self.bad_lines = 0
        self.errors: list = []

    def _items(self) -> Iterator:
        args = (self.paths, self.formats, self.feedback_namespace, self.feedback_from_cost, self.max_actions,
                self.start["file"], self.start["line"])
        return _read_parallel(args) if self.parallel else _read(*args)

    def __iter__(self) -> Iterator[Event]:
        self.position, self.bad_lines, self.errors = dict(self.start), 0, []
        items = self._items()
        try:
            for item in items:
                if isinstance(item, LogError):
                    if self.on_bad_line == "fail" or isinstance(item, UnsupportedLogError):
                        raise item
                    self.bad_lines += 1
                    if len(self.errors) < 5:
                        self.errors.append(str(item))
                    continue
                self.position = {"file": item.source, "line": item.end_line}
                yield item
        finally:
            items.close()  # stops the reader process, if any

    def head(self, n: int) -> list:
        """The first ``n`` valid events (fewer in a shorter log), read apart from iteration;
        bad lines are passed over (iteration reports them)."""
        out: list = []
        items = _read(self.paths, self.formats, self.feedback_namespace, self.feedback_from_cost, self.max_actions,
                      self.start["file"], self.start["line"])
        try:
            for item in items:
                if isinstance(item, Event):
                    out.append(item)
                    if len(out) >= n:
                        break
                elif isinstance(item, UnsupportedLogError):
                    break
        finally:
            items.close()
        return out

    def first_event(self) -> Event:
        """The first valid event; its :class:`~iglp_vw.logs.LogError` when there is none, naming
        the first problem found (a bad line, a truncated file) rather than only "no event"."""
        first_error = None
        items = _read(self.paths, self.formats, self.feedback_namespace, self.feedback_from_cost, self.max_actions,
                      self.start["file"], self.start["line"])
        try:
            for item in items:
                if isinstance(item, Event):
                    return item
                if isinstance(item, UnsupportedLogError):
                    raise item
                first_error = first_error or item
        finally:
            items.close()
        if first_error is not None:
            raise LogError(first_error.path, first_error.line, first_error.field,
                           f"{first_error.message} (and no valid event in {', '.join(map(str, self.paths))})")
        raise ValueError(f"no event in {', '.join(map(str, self.paths))}")


def _read(paths, formats, feedback_namespace, feedback_from_cost, max_actions, start_file, start_line):
    for i in range(start_file, len(paths)):
        skip = start_line if i == start_file else 0
        try:
            for item in read_events(paths[i], formats[i], feedback_namespace, feedback_from_cost, skip, max_actions):
                if isinstance(item, Event):
                    item.source = i
                yield item
        except UnsupportedLogError as err:  # the log is of a kind this tool refuses: it ends here
            yield err
            return


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (else it could wait on a pipe forever)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _reader_main(send, recv, parent: int, args, batch: int = 64) -> None:
    """The forked reader: events in pickled batches, then ``None`` (or an error tuple)."""
    recv.close()  # only the parent reads: if it dies, writes here fail instead of blocking
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    try:
        buf = []
        for item in _read(*args):
            buf.append(item)
            if len(buf) >= batch:
                send.send_bytes(pickle.dumps(buf, protocol=pickle.HIGHEST_PROTOCOL))
                buf = []
        if buf:
            send.send_bytes(pickle.dumps(buf, protocol=pickle.HIGHEST_PROTOCOL))
        send.send_bytes(pickle.dumps(None))
    except BaseException as err:  # noqa: BLE001 - reported in the parent
        try:
            send.send_bytes(pickle.dumps(("error", f"{type(err).__name__}: {err}")))
        except OSError:
            pass
    finally:
        send.close()


def _read_parallel(args):
    """:func:`_read` computed in a forked process, one batch ahead of the caller."""
    import multiprocessing

    from .cb import _widen_pipe

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    _widen_pipe(send.fileno())  # lets the reader work ~1 MB ahead
    proc = ctx.Process(target=_reader_main, args=(send, recv, os.getpid(), args), daemon=True)
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
                raise RuntimeError(batch[1])
            yield from batch
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
