"""Small helpers shared by the learner, the replay and the sweep."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path, obj, **dump_kwargs) -> None:
    """Write ``obj`` as JSON atomically: a temporary file, flushed to disk, then renamed."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, **dump_kwargs)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def can_fork() -> bool:
    """Whether this platform can start processes by ``fork`` (they then inherit the imports)."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def open_text(path, mode: str = "w"):
    """A text file, gzipped when its name ends in ``.gz`` (as VW reads it)."""
    import gzip

    path = Path(path)
    if path.suffix == ".gz" or path.name.endswith(".gz.part"):
        return gzip.open(path, mode + "t", compresslevel=6)
    return open(path, mode)
