"""A model directory: one writer at a time, model sets published atomically, nothing in it trusted.

Layout::

    DIR/current -> v-000007      the published set (a relative link, replaced atomically)
    DIR/v-000007/                cb.model, ik.model, ik_prior.model, config.json, state.json,
                                 (ik_guess.model, ik_guess_prior.model, replay.json), manifest.json
    DIR/cb.model -> current/cb.model   (and the other files): so that plain VW reads
                                 ``-i DIR/cb.model`` and people find the files where they look
    DIR/.lock                    locked (``flock``) by the one process writing DIR; its pid

A set is written into a hidden temporary directory, flushed to disk, given its manifest
(each file's size and SHA-256), renamed to ``v-NNNNNN`` and published by replacing
``current``: a reader sees the old set or the new one, never a mix, whatever happens to
the writer. The lock is the kernel's, so a writer that dies leaves nothing stuck.

Reading trusts nothing in the directory: ``current`` must name a ``v-NNNNNN`` set inside
it, files must be regular files (no links out), and every file must match the manifest,
so a mixed, partial or hand-edited set is refused naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Callable, Dict, Optional, Union

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock (documented)
    fcntl = None

__all__ = ["ModelDirError", "ModelDirBusy", "writer", "publish", "open_set", "reading", "has_model", "current_name", "MANIFEST"]

CURRENT = "current"
MANIFEST = "manifest.json"
LOCK = ".lock"
# Files of a set that also appear at the top of DIR (links through `current`).
LINKED = ("cb.model", "ik.model", "ik_prior.model", "ik_guess.model", "ik_guess_prior.model", "config.json",
          "state.json", "replay.json")
_VERSION = re.compile(r"v-(\d{6,})")
_TMP_VERSION = re.compile(r"\.v-(\d{6,})\.tmp")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# What a finished writer (or an older version of iglp-vw) leaves at the top of a model directory.
_STALE = re.compile(r"\.checkpoint-\d+-\d+-\d+|checkpoint\.json|cb\.model\.(part|tmp)|\.cb-sync\.model|"
                    r"\.cb-driver\.log|\.cb-final\.part|\.cb-sync\.part|\.cb-start\.part")
_MAX_MANIFEST = 1 << 20


class ModelDirError(ValueError):
    """A model directory that cannot be written or read, with the path it is about."""


class ModelDirBusy(ModelDirError):
    """Another process holds the model directory's lock."""


_HELD: Dict[str, list] = {}  # real path -> [lock fd, depth]: this process's locks (re-entrant)


def _forget_locks_in_child() -> None:
    # A forked child (the log reader, a Dask worker) must not keep the parent's locks alive
    # after the parent dies: flock holds while any descriptor of the lock file is open.
    for fd, _ in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


def _error(path, err: OSError, doing: str) -> ModelDirError:
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOTDIR: "a path component is a file, not a directory",
        errno.ELOOP: "a link where a file was expected",
    }.get(err.errno, err.strerror or str(err))
    where = err.filename or path
    return ModelDirError(f"{where}: cannot {doing}: {reason}")


@contextlib.contextmanager
def writer(directory):
    """Hold ``directory``'s writer lock (created if needed) for the ``with`` block.

    Re-entrant within a process; another process gets :class:`ModelDirBusy` naming the
    holder's pid. The lock is released when the block ends or the process dies.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ModelDirError(f"{directory}: exists and is not a directory") from None
    except OSError as err:
        raise _error(directory, err, "create the model directory") from None
    if not directory.is_dir():
        raise ModelDirError(f"{directory}: exists and is not a directory")
    key = os.path.realpath(directory)
    held = _HELD.get(key)
    if held is not None:
        held[1] += 1
        try:
            yield directory
        finally:
            held[1] -= 1
        return
    path = directory / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as err:
        raise _error(path, err, "lock the model directory") from None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ModelDirBusy(
                f"{directory}: another process (pid {holder}) is writing this model directory; "
                "wait for it to finish, or use another directory"
            ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid is for people; the lock is what counts
    _HELD[key] = [fd, 1]
    try:
        yield directory
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # releases the lock


def publish(directory, write: Callable[[Path], None]) -> Path:
    """Write a new model set with ``write(set_dir)`` and make it the current one, atomically.

    ``write`` puts regular files (no subdirectories) into the empty directory it is given.
    Returns the published set's directory. On any error nothing is published and the
    previous set stays current.
    """
    directory = Path(directory)
    with writer(directory):
        number = _next_version(directory)
        tmp = directory / f".v-{number:06d}.tmp"
        try:
            tmp.mkdir()
            write(tmp)
            _write_manifest(tmp)
            final = directory / f"v-{number:06d}"
            os.rename(tmp, final)
            _point(directory, final.name)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _error(directory, err, "write the model") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _tidy(directory, final.name)
        return final


def has_model(directory) -> bool:
    """Whether ``directory`` holds a published model set (or the files of an older layout)."""
    directory = Path(directory)
    return os.path.lexists(directory / CURRENT) or (directory / "config.json").exists()


def current_name(directory) -> Optional[str]:
    """The name ``current`` points to (``None`` when there is none): a reader that saw it change
    knows a writer published a new set meanwhile."""
    try:
        return os.readlink(Path(directory) / CURRENT)
    except OSError:
        return None


@contextlib.contextmanager
def reading(directory, attempts: int = 5):
    """The current set's directory, checked (:func:`open_set`) and kept from removal for the
    ``with`` block: a shared lock on it, which the writer's clean-up respects. If a writer
    publishes a new set and removes this one before the lock is taken, the new one is read."""
    for attempt in range(attempts):
        before = current_name(directory)
        if before is not None and not _VERSION.fullmatch(before):
            open_set(directory)  # raises, naming the bad link
        set_dir = open_set(directory) if before is None else Path(directory) / before
        try:
            fd = os.open(set_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            if attempt + 1 < attempts and current_name(directory) != before:
                continue
            raise ModelDirError(f"{set_dir}: the model set vanished while being read") from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                checked = open_set(directory) if before is None else (_verify(set_dir) or set_dir)
            except ModelDirError:
                if attempt + 1 < attempts and current_name(directory) != before:
                    continue
                raise
            yield checked
            return
        finally:
            os.close(fd)


def open_set(directory) -> Path:
    """The directory of ``directory``'s current model set, checked against its manifest.

    ``directory`` is a model directory (its ``current`` set is used) or a set itself (a
    directory with a ``manifest.json``). Raises :class:`ModelDirError` naming the file for
    anything that does not hold: a link out of the directory, a file that is not a regular
    file, a file that differs from the manifest.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"{directory} is not an IGLP model directory: no such directory")
    current = directory / CURRENT
    if os.path.lexists(current):
        if not current.is_symlink():
            raise ModelDirError(f"{current}: must be a link to the current v-NNNNNN set")
        target = os.readlink(current)
        if not _VERSION.fullmatch(target):
            raise ModelDirError(f"{current}: points to {target!r}, not to a v-NNNNNN set inside the directory")
        set_dir = directory / target
        mode = _mode(set_dir)
        if mode is None:
            raise ModelDirError(f"{current}: points to {target}, which does not exist")
        if not stat.S_ISDIR(mode):
            raise ModelDirError(f"{set_dir}: must be a directory")
    elif os.path.lexists(directory / MANIFEST):
        set_dir = directory
    elif (directory / "config.json").exists():
        raise ModelDirError(
            f"{directory}: written by an older iglp-vw (no manifest of its files), so a mixed set cannot be told "
            "from a whole one; train it again with this version"
        )
    else:
        raise ModelDirError(f"{directory} is not an IGLP model directory: no '{CURRENT}' set and no {MANIFEST}")
    _verify(set_dir)
    return set_dir


# ------------------------------------------------------------------------------ internals


def _next_version(directory: Path) -> int:
    numbers = [0]
    for name in os.listdir(directory):
        m = _VERSION.fullmatch(name) or _TMP_VERSION.fullmatch(name)
        if m:
            numbers.append(int(m.group(1)))
    return max(numbers) + 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_manifest(set_dir: Path) -> None:
    files = {}
    for name in sorted(os.listdir(set_dir)):
        path = set_dir / name
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode) or not _FILE_NAME.fullmatch(name) or name == MANIFEST:
            raise ModelDirError(f"{path}: a model set holds regular files with plain names only")
        _fsync(path)
        files[name] = {"size": os.lstat(path).st_size, "sha256": _sha256(path)}
    manifest = set_dir / MANIFEST
    with open(manifest, "w") as fh:
        json.dump({"format": 1, "files": files}, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync(set_dir)


def _point(directory: Path, name: str) -> None:
    """Make ``current`` point to ``name`` (one atomic rename), and flush the directory."""
    tmp = directory / f".{CURRENT}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(name, tmp)
    os.replace(tmp, directory / CURRENT)
    _fsync(directory)


def _tidy(directory: Path, keep: str) -> None:
    """Links at the top for the new set's files; older sets, stale temporaries and the files
    of older layouts removed. Only names this module writes are touched, and only as
    what they should be (a directory is removed only if it is one, not through a link)."""
    with os.scandir(directory) as entries:
        names = {e.name: e for e in entries}
    kept = set(os.listdir(directory / keep))
    for name in LINKED:
        link = directory / name
        want = f"{CURRENT}/{name}"
        entry = names.get(name)
        if name in kept:
            if entry is not None and entry.is_symlink() and os.readlink(link) == want:
                continue
            tmp = directory / f".{name}.link"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(want, tmp)
            if entry is not None and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(link, ignore_errors=True)
            os.replace(tmp, link)
        elif entry is not None and not entry.is_dir(follow_symlinks=False):
            os.unlink(link)
    for name, entry in names.items():
        if name == keep:
            continue
        if _VERSION.fullmatch(name) or _TMP_VERSION.fullmatch(name) or _STALE.fullmatch(name):
            if entry.is_dir(follow_symlinks=False):
                _remove_unless_read(entry.path)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _mode(path) -> Optional[int]:
    """``path``'s own mode (a link is not followed), or ``None`` when nothing is there."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _remove_unless_read(path: str) -> None:
    """Remove an old set's directory unless a reader holds it (then a later clean-up will)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)


def _verify(set_dir: Path) -> None:
    manifest_path = set_dir / MANIFEST
    mode = _mode(manifest_path)
    if mode is None:
        raise ModelDirError(f"{manifest_path}: missing (a partial model set)")
    if not stat.S_ISREG(mode):
        raise ModelDirError(f"{manifest_path}: must be a regular file")
    try:
        with open(manifest_path, "rb") as fh:
            raw = fh.read(_MAX_MANIFEST + 1)
        if len(raw) > _MAX_MANIFEST:
            raise ValueError("too large")
        manifest = json.loads(raw)
        files = manifest["files"]
        if manifest.get("format") != 1 or not isinstance(files, dict):
            raise ValueError("not a manifest of format 1")
    except (ValueError, KeyError, TypeError) as err:
        raise ModelDirError(f"{manifest_path}: not a valid manifest ({err})") from None
    for name in ("config.json", "state.json"):
        if name not in files:
            raise ModelDirError(f"{set_dir / name}: not in the set's manifest (a partial model set)")
    for name, entry in files.items():
        path = set_dir / str(name)
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or name == MANIFEST:
            raise ModelDirError(f"{manifest_path}: names a file {str(name)[:80]!r} a model set cannot hold")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise ModelDirError(f"{path}: missing from the model set (a partial set)") from None
        if not stat.S_ISREG(st.st_mode):
            raise ModelDirError(f"{path}: must be a regular file (not a link or a directory)")
        if not isinstance(entry, dict) or st.st_size != entry.get("size") or _sha256(path) != entry.get("sha256"):
            raise ModelDirError(
                f"{path}: does not match the set's manifest (a mixed or partial model set, or a file changed "
                "after it was saved); refusing to load it"
            )
    for name in LINKED:  # a model file the manifest does not list is another set's
        path = set_dir / name
        if name not in files and os.path.lexists(path) and not path.is_symlink():
            raise ModelDirError(f"{path}: not part of the set its manifest describes (a mixed set)")


def read_json(path: Union[str, Path], what: str = "file", limit: int = 256 << 20):
    """JSON from a checked set's file, with errors that name it."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as err:
        raise _error(path, err, f"read the {what}") from None
    if len(raw) > limit:
        raise ModelDirError(f"{path}: the {what} is larger than {limit:,} bytes")
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ModelDirError(f"{path}: the {what} is not valid JSON ({err})") from None
