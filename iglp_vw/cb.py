"""The contextual-bandit half of Algorithm 1 as a component (lines 11-18: play, then learn −ρ̂).

:class:`~iglp_vw.IGLP` builds its CB on the first event, when the interactions can be
resolved from the namespaces, by calling its ``cb`` factory with the full VW arguments
(and a model file when it continues a saved model). Two implementations:

- :class:`WorkspaceCB` (default): a VW workspace in this process; predicts and learns.
- :class:`DriverCB`: VW's own C++ driver in another process, fed ADF text on its stdin. It
  only learns: offline replay, where the logged action is given and the CB's updates never
  feed back into the IK, so the CB can run on the other core.

Both take the texts of :mod:`iglp_vw.vw` (checked context and action texts) and build the
example with :func:`~iglp_vw.vw.adf_lines`; nothing else reaches VW.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from .vw import Workspace, adf_lines, cb_label, escape, reload_args, split_args

__all__ = ["WorkspaceCB", "DriverCB"]


class WorkspaceCB:
    """The CB in this process: a ``--cb_explore_adf`` VW workspace.

    Parameters
    ----------
    args
        The full VW arguments (interactions resolved).
    model_file
        A saved model to continue (``-i``); then only the flags VW does not keep in the
        file are passed again (:func:`~iglp_vw.vw.reload_args`).
    """

    def __init__(self, args: str, model_file=None):
        self.args = args
        self._ws = Workspace(args if model_file is None else reload_args(args), model_file)

    def predict(self, shared: str, actions: Sequence[str]) -> list:
        """The exploration pmf over ``actions``."""
        return list(self._ws.predict(adf_lines(shared, actions)))

    def learn(self, shared: str, actions: Sequence[str], index: int, cost: float, prob: float) -> None:
        """Learn ``cost`` for action ``index`` played with probability ``prob``."""
        self._ws.learn(adf_lines(shared, actions, index, cb_label(cost, prob)))

    def save(self, path) -> None:
        self._ws.save(path)

    def close(self) -> None:
        self._ws.finish()


class DriverCB:
    """The CB in VW's own driver (``python -m vowpalwabbit``), fed ADF text on its stdin.

    Learns only (:meth:`predict` raises). :meth:`save` while it runs makes the driver save
    mid-stream (VW's ``'save_<file>|`` command, the one in-band command this class sends),
    so checkpoints never restart it: a restarted driver counts one more pass in the model
    file, and resumed models would differ from uninterrupted ones in that byte. After
    :meth:`close` the model the driver wrote at the end (``-f``) is what :meth:`save` copies.
    The driver starts on the first event, so a resumed replay with nothing left to learn
    keeps its model byte for byte.

    Parameters
    ----------
    args, model_file
        As for :class:`WorkspaceCB`.
    workdir
        The driver's working directory (the model directory): save paths are given to
        the driver relative to it, and its final model is written there until saved.
    """

    FINAL = ".cb-final.part"
    START = ".cb-start.part"
    _SYNC = ".cb-sync.part"

    def __init__(self, args: str, model_file=None, *, workdir):
        self.args = args
        self.workdir = Path(workdir)
        self.model_file = None
        if model_file is not None:  # a copy: the set it comes from may be replaced before the driver starts
            self.model_file = self.workdir / self.START
            shutil.copyfile(model_file, self.model_file)
        tokens = split_args(args) if model_file is None else (
            reload_args(args) + ["-i", self.START, "--preserve_performance_counters"]
        )
        self.cmd = [sys.executable, "-m", "vowpalwabbit", *tokens, "-d", "/dev/stdin", "-f", self.FINAL]
        self.proc = None
        self._buffer: list = []
        self.peak_rss_mb = 0.0
        self.closed = False

    def _start(self) -> None:
        for name in (self.FINAL, self._SYNC):
            if os.path.lexists(self.workdir / name):
                os.unlink(self.workdir / name)
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stderr=self._stderr, stdout=subprocess.DEVNULL,
                                     bufsize=0, cwd=self.workdir)
        _widen_pipe(self.proc.stdin.fileno())  # writes return at once unless VW is a whole MB behind

    def predict(self, shared, actions) -> list:
        raise NotImplementedError("the CB in VW's driver only learns (offline replay); load the model to predict")

    def learn(self, shared: str, actions: Sequence[str], index: int, cost: float, prob: float) -> None:
        if self.proc is None:
            self._start()
        lines = adf_lines(shared, actions, index, cb_label(cost, prob))
        text = "\n".join(lines) + "\n\n"
        if text.count("\n") != len(lines) + 1:  # a line that is two would be a command to the driver
            raise ValueError(f"an example's lines must be single lines, got {lines[:3]!r}"[:300])
        self._feed(text)

    def save(self, path) -> None:
        """Write the model to ``path`` (mid-stream while running, else the driver's final model)."""
        path = Path(path)
        if self.proc is None:  # nothing learned here: the model it started from
            if self.model_file is not None:
                shutil.copyfile(self.model_file, path)
            return
        if self.closed:
            shutil.copyfile(self.workdir / self.FINAL, path)
            return
        relative = os.path.relpath(path.resolve(), self.workdir.resolve())
        if escape(relative.replace("/", "")) != relative.replace("/", ""):  # no blank, '|' or ':' in the command
            raise ValueError(f"{path}: VW's driver cannot save to a path with blanks, '|' or ':' in it")
        sync = self.workdir / self._SYNC
        if os.path.lexists(sync):
            os.unlink(sync)
        # Saves run in order: once the second file exists, the first is complete.
        self._feed(f"'save_{relative}|\n\n'save_{self._SYNC}|\n\n")
        self._flush()
        while not sync.exists():
            if self.proc.poll() is not None:
                self.close()  # raises with VW's message
            time.sleep(0.001)
        sync.unlink()

    def _feed(self, text: str) -> None:
        self._buffer.append(text)
        if len(self._buffer) >= 64:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            try:
                data = memoryview("".join(self._buffer).encode())
                while data:  # unbuffered: a write may take only part
                    data = data[self.proc.stdin.write(data):]
            except BrokenPipeError:
                self.close()  # raises with VW's message
            self._buffer = []

    def close(self) -> None:
        """End the stream; the driver writes its final model. Raises with VW's message if it failed."""
        if self.closed:
            return
        self.closed = True
        if self.proc is None:
            return
        try:
            self._flush()
        except BrokenPipeError:
            pass
        self.peak_rss_mb = peak_rss_mb(self.proc.pid)
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        if os.path.lexists(self.workdir / self._SYNC):
            os.unlink(self.workdir / self._SYNC)
        if rc != 0:
            raise RuntimeError(f"VW's driver for the CB failed (exit {rc}): {' '.join(self.cmd)}\n{err[-2000:]}")

    def discard(self) -> None:
        """Remove the driver's final model once it is closed and what it learned is saved elsewhere."""
        if self.closed and os.path.lexists(self.workdir / self.FINAL):
            os.unlink(self.workdir / self.FINAL)

    def kill(self) -> None:
        """Stop the driver without a final model (an interrupted replay)."""
        if self.proc is not None and not self.closed:
            self.proc.kill()
            self.proc.wait()
            self._stderr.close()
        self.closed = True
        if os.path.lexists(self.workdir / self.FINAL):
            os.unlink(self.workdir / self.FINAL)


def _widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Grow a pipe's kernel buffer (Linux; 64 KB by default) so both ends work without waiting."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError):
        pass


def peak_rss_mb(pid="self") -> float:
    """A process's peak resident memory in MB (Linux ``VmHWM``; 0 where unknown).

    Not ``ru_maxrss``: that keeps the high-water mark of the process it was forked
    from, so a replay started by a big process would report the parent's.
    """
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0

