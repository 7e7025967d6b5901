"""Sweeps: many IGL-P configurations x logs (or simulator settings) x seeds, run on Dask.

One replay is sequential by nature; a sweep is many independent jobs, and those spread
out. Each job is a full replay of a log (``mode = "replay"``) or an on-policy run of
the grounded simulator (``mode = "simulate"``), and gives one row: every parameter as a
column, then its metrics, then ``error`` (empty when it succeeded) and ``seconds``.

A config (TOML or JSON)::

    mode = "simulate"            # or "replay"
    seeds = [0, 1]

    [learner]                    # IGLP arguments; a list is a grid axis
    cb_args = ["--cb_explore_adf --epsilon 0.05", "--cb_explore_adf --epsilon 0.1"]
    states = 2

    [simulator]                  # mode = "simulate": GroundedSimulation settings
    dataset = "digits"
    passes = [1, 2]
    bizarro_share = 0.5

    # mode = "replay" instead: logs (paths or fsspec URLs), each a grid axis value
    # logs = ["data/grounded_digits.txt.gz"]
    # truth = {"data/grounded_digits.txt.gz" = "data/grounded_digits.truth.csv.gz"}

``jobs = [{...}, ...]`` (each a flat dict of the same keys: ``seed``, learner and
simulator keys, ``log``) lists jobs explicitly instead of a grid.

Runs serially (``scheduler="serial"``), on a ``LocalCluster`` with one single-threaded
worker process per core (default), or on an existing ``dask.distributed`` scheduler
(its address). Results do not depend on which: every job is seeded and writes only its
own directory (tested; ``seconds`` aside).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

import pandas as pd

from ._util import can_fork, write_json
from .learner import IGLP

__all__ = ["load_config", "expand_jobs", "run_job", "sweep"]

SIM_DEFAULTS = {
    "dataset": "digits", "covertype_path": None, "passes": 1, "users": 100, "words": 100, "bizarro_share": 0.5,
    "limit": None,
}
# IGLP's constructor arguments a config may set (its signature, less what a job sets itself).
LEARNER_KEYS = set(IGLP.param_names()) - {"num_actions", "seed", "cb"}


def load_config(path) -> dict:
    """Read a sweep config from ``.toml`` or ``.json``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such config file")
    if path.suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        with open(path, "rb") as fh:
            try:
                return tomllib.load(fh)
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{path}: not valid TOML: {err}") from None
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON: {err}") from None
    raise ValueError(f"{path}: a sweep config must be .toml or .json")


def _axes(section: dict) -> list:
    return [(k, v if isinstance(v, list) and k != "definitely_negative" else [v]) for k, v in section.items()]


def expand_jobs(config: dict) -> list:
    """The config's jobs: flat dicts of parameters, each with a stable ``job`` id."""
    mode = config.get("mode", "simulate")
    if mode not in ("simulate", "replay"):
        raise ValueError(f"`mode` must be 'simulate' or 'replay', got {mode!r}")
    unknown = set(config) - {"mode", "seeds", "learner", "simulator", "logs", "truth", "jobs", "replay"}
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    bad = set(config.get("learner", {})) - LEARNER_KEYS
    if bad:
        raise ValueError(f"unknown [learner] keys: {sorted(bad)} (IGLP arguments: {sorted(LEARNER_KEYS)})")
    if "jobs" in config:
        jobs = [dict(j) for j in config["jobs"]]
    else:
        axes = [("seed", list(config.get("seeds", [0])))] + _axes(config.get("learner", {}))
        if mode == "simulate":
            sim = dict(SIM_DEFAULTS, **config.get("simulator", {}))
            bad = set(sim) - set(SIM_DEFAULTS)
            if bad:
                raise ValueError(f"unknown [simulator] keys: {sorted(bad)} (known: {sorted(SIM_DEFAULTS)})")
            axes += _axes(sim)
        else:
            logs = config.get("logs")
            if not logs:
                raise ValueError("mode = 'replay' needs `logs` (a list of log paths or URLs)")
            axes.append(("log", list(logs)))
        names = [k for k, _ in axes]
        jobs = [dict(zip(names, values)) for values in itertools.product(*[v for _, v in axes])]
    truth = config.get("truth", {})
    for job in jobs:
        job.setdefault("seed", 0)
        job["mode"] = mode
        if mode == "replay" and "log" not in job:
            raise ValueError(f"a replay job needs `log`: {job}")
        if mode == "replay" and job["log"] in truth:
            job["truth"] = truth[job["log"]]
        job["job"] = job_id(job)
    ids = [j["job"] for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("the config lists the same job twice")
    return jobs


def job_id(job: dict) -> str:
    """A short stable id from the job's parameters (so ``resume`` survives reordering the grid)."""
    blob = json.dumps({k: v for k, v in job.items() if k != "job"}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def run_job(job: dict, workdir: str) -> dict:
    """Run one job in ``workdir/<job id>/``, in a process of its own; a row of parameters and
    metrics (never raises: a failed job, even one whose process crashed, is its row's ``error``)."""
    start = time.perf_counter()
    out = Path(workdir) / job["job"]
    out.mkdir(parents=True, exist_ok=True)
    result = out / "result.json"
    if result.exists():
        result.unlink()
    proc = subprocess.run([sys.executable, "-m", "iglp_vw.sweep", str(out)], input=json.dumps(job),
                          capture_output=True, text=True)
    if result.exists():
        return json.loads(result.read_text())
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        error = f"the job's process was killed by {name}"
    else:
        error = f"the job's process ended with exit code {proc.returncode}"
    tail = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
    row = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in job.items()}
    row["error"] = error + (f": {tail[0][:300]}" if tail else "")
    row["seconds"] = round(time.perf_counter() - start, 3)
    (out / "error.txt").write_text(proc.stderr[-20000:])
    write_json(result, row, default=str)
    return row


def _run_here(job: dict, out: Path) -> dict:
    """A job run in this process (the child :func:`run_job` starts): its row, also in ``result.json``."""
    start = time.perf_counter()
    row = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in job.items()}
    try:
        metrics = _simulate(job, out) if job["mode"] == "simulate" else _replay(job, out)
        row.update(metrics)
        row["error"] = ""
    except Exception as err:  # a failed job is reported in its row; the others go on
        row["error"] = f"{type(err).__name__}: {err}"
        (out / "error.txt").write_text(traceback.format_exc())
    row["seconds"] = round(time.perf_counter() - start, 3)
    write_json(out / "result.json", row, default=str)
    return row


def _learner_params(job: dict) -> dict:
    params = {k: v for k, v in job.items() if k in LEARNER_KEYS}
    params["seed"] = job["seed"]
    return params


def _simulate(job: dict, out: Path) -> dict:
    from .sim import GroundedSimulation, load_dataset, run

    X, y = load_dataset(job.get("dataset", "digits"), seed=job["seed"], path=job.get("covertype_path"))
    sim = GroundedSimulation(
        X, y, n_users=job.get("users", 100), n_words=job.get("words", 100),
        bizarro_share=job.get("bizarro_share", 0.5), passes=job.get("passes", 1), seed=job["seed"],
    )
    learner = IGLP(sim.num_actions, **_learner_params(job))
    frame = run(learner, sim, seed=job["seed"], limit=job.get("limit"))
    tail = frame[frame.t >= int(0.8 * len(frame))]
    learner.save(out / "model")
    return {
        "rounds": len(frame),
        "reward": float(frame.reward.mean()),
        "reward_last20": float(tail.reward.mean()),
        "reward_last20_normal": float(tail[~tail.bizarro].reward.mean()),
        "reward_last20_bizarro": float(tail[tail.bizarro].reward.mean()),
        "inferred_positive_share": float((frame.inferred_reward > 0).mean()),
    }


def _local_copy(url: str, out: Path) -> Path:
    """A log by path, or copied from any fsspec URL (s3://, gcs://, http://, ...)."""
    if "://" not in url or url.startswith("file://"):
        return Path(url[len("file://"):] if url.startswith("file://") else url)
    try:
        import fsspec
    except ImportError:
        raise ImportError(f"reading {url} needs fsspec (pip install fsspec and its protocol's package)") from None
    local = out / ("log-" + Path(url.split("?")[0]).name)
    with fsspec.open(url, "rb") as src, open(local, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    return local


def _replay(job: dict, out: Path) -> dict:
    from .replay import replay

    log = _local_copy(job["log"], out)
    trace = out / "trace.csv" if job.get("truth") else None
    # parallel_read off: the sweep spreads jobs over the cores, and Dask's worker
    # processes are daemonic (they may not start a multiprocessing child).
    summary = replay([log], out / "model", learner_params=_learner_params(job), parallel_read=False, trace=trace)
    shares = summary.shares()
    metrics = {
        "events": summary.events,
        "bad_lines": summary.bad_lines,
        "inferred_positive_share": shares["+"],
        "inferred_zero_share": shares["0"],
        "inferred_negative_share": shares["-"],
    }
    if trace is not None:
        from .sim.truth import inference_scores

        scores = inference_scores(trace, _local_copy(job["truth"], out))
        metrics["precision"], metrics["recall"] = scores["precision"], scores["recall"]
    return metrics


def _dask():
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError(
            "running a sweep on Dask needs the optional extra: pip install 'iglp-vw[dask]' "
            "(or use scheduler='serial')"
        ) from None
    return Client, LocalCluster, as_completed


def sweep(
    config,
    out,
    scheduler: Optional[str] = None,
    workers: Optional[int] = None,
    resume: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Run every job of ``config`` (a dict or a config path); write and return the results table.

    ``out``: the results CSV; per-job directories go to ``<out>.jobs/``.
    ``scheduler``: ``None`` for a local cluster of ``workers`` processes (default: one per
    core), ``"serial"`` for this process, or a ``dask.distributed`` scheduler address.
    ``resume``: keep the rows of jobs that already have a result, run the others.
    """
    if not isinstance(config, dict):
        config = load_config(config)
    jobs = expand_jobs(config)
    from . import sim  # noqa: F401  (imported before any fork: workers inherit it)
    out = Path(out)
    workdir = out.with_name(out.name + ".jobs")
    workdir.mkdir(parents=True, exist_ok=True)
    done = {}
    if resume:
        for job in jobs:
            path = workdir / job["job"] / "result.json"
            if path.exists():
                done[job["job"]] = json.loads(path.read_text())
    todo = [j for j in jobs if j["job"] not in done]
    rows = dict(done)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=len(done), unit=" jobs", disable=None)
    if scheduler == "serial" or not todo:
        for job in todo:
            rows[job["job"]] = run_job(job, str(workdir))
            if bar is not None:
                bar.update(1)
    else:
        Client, LocalCluster, as_completed = _dask()
        cluster = None
        if scheduler is None:
            import dask

            n = workers or os.cpu_count() or 1
            # Workers forked from this process start with numpy, VW and iglp_vw already
            # imported (spawned ones import them again, ~1.5 s of each sweep's wall time).
            method = "fork" if can_fork() else "spawn"
            with dask.config.set({"distributed.worker.multiprocessing-method": method}):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler)
        try:
            futures = client.map(run_job, todo, workdir=str(workdir.resolve()), pure=False)
            for future in as_completed(futures):
                row = future.result()
                rows[row["job"]] = row
                if bar is not None:
                    bar.update(1)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    if bar is not None:
        bar.close()
    table = pd.DataFrame([rows[j["job"]] for j in jobs])
    tmp = out.with_name(out.name + ".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return table


if __name__ == "__main__":  # a job's own process: python -m iglp_vw.sweep OUTDIR < job.json
    _run_here(json.loads(sys.stdin.read()), Path(sys.argv[1]))
