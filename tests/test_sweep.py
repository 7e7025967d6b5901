import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from iglp_vw.cli import main
from iglp_vw.sweep import expand_jobs, load_config, sweep

DATA = Path(__file__).resolve().parent.parent / "data"

SIM = {
    "mode": "simulate",
    "seeds": [0, 1],
    "learner": {"cb_args": ["--cb_explore_adf --epsilon 0.05", "--cb_explore_adf --epsilon 0.2"]},
    "simulator": {"dataset": "digits", "passes": 1, "limit": 700, "users": 20, "words": 10},
}


def _table(path):
    return pd.read_csv(path).drop(columns="seconds")


def test_grid_expansion_and_stable_ids():
    jobs = expand_jobs(SIM)
    assert len(jobs) == 4
    assert {j["seed"] for j in jobs} == {0, 1} and {j["passes"] for j in jobs} == {1}
    again = expand_jobs({**SIM, "seeds": [1, 0]})  # reordered grid: same job ids
    assert {j["job"] for j in jobs} == {j["job"] for j in again}
    explicit = expand_jobs({"mode": "simulate", "jobs": [{"seed": 3, "passes": 1}]})
    assert explicit[0]["seed"] == 3
    with pytest.raises(ValueError, match="unknown \\[learner\\] keys"):
        expand_jobs({"learner": {"epsilon": [0.1]}})
    with pytest.raises(ValueError, match="needs `logs`"):
        expand_jobs({"mode": "replay"})


def test_serial_local_cluster_and_scheduler_give_the_same_results(tmp_path):
    from dask.distributed import LocalCluster

    serial = sweep(SIM, tmp_path / "serial.csv", scheduler="serial")
    assert len(serial) == 4 and (serial.rounds == 700).all()
    local = sweep(SIM, tmp_path / "local.csv", workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = sweep(SIM, tmp_path / "remote.csv", scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(_table(tmp_path / "serial.csv"), _table(tmp_path / "local.csv"))
    pd.testing.assert_frame_equal(_table(tmp_path / "serial.csv"), _table(tmp_path / "remote.csv"))
    assert local.reward_last20.notna().all() and remote.error.fillna("").eq("").all()
    # Every parameter is a column; the jobs differ in what they were given.
    assert {"seed", "cb_args", "dataset", "passes", "users", "words", "job"} <= set(serial.columns)


def test_failed_job_is_reported_and_others_finish(tmp_path):
    config = {"mode": "simulate", "seeds": [0], "learner": {"states": [2, 7]},
              "simulator": {"limit": 200, "users": 10, "words": 4}}
    table = sweep(config, tmp_path / "r.csv", scheduler="serial")
    good, bad = table[table.states == 2].iloc[0], table[table.states == 7].iloc[0]
    assert good.error == "" and good.rounds == 200
    assert "states" in bad.error and pd.isna(bad.get("rounds"))


def test_resume_skips_finished_jobs(tmp_path):
    out = tmp_path / "r.csv"
    sweep(SIM, out, scheduler="serial")
    results = sorted((tmp_path / "r.csv.jobs").glob("*/result.json"))
    assert len(results) == 4
    stamp = {p: p.stat().st_mtime_ns for p in results}
    first = _table(out)
    results[0].unlink()  # one job "lost"
    table = sweep(SIM, out, scheduler="serial", resume=True)
    assert len(table) == 4
    assert [p.stat().st_mtime_ns == stamp[p] for p in results[1:]] == [True] * 3  # not rerun
    pd.testing.assert_frame_equal(_table(out), first)


def test_replay_sweep_with_truth_through_the_cli(tmp_path):
    log = str(DATA / "grounded_digits.txt.gz")
    config = {
        "mode": "replay",
        "logs": [log],
        "truth": {log: str(DATA / "grounded_digits.truth.csv.gz")},
        "learner": {"states": 2, "group_window": [50, 100]},
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "r.csv"), "--scheduler", "serial"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "r.csv")
    assert len(table) == 2 and (table.events == 8985).all()
    assert (table.precision > 0.95).all() and (table.recall > 0.6).all()


def test_toml_config_and_bad_configs(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('mode = "simulate"\nseeds = [0, 1]\n[learner]\nalpha = [0.5, 1.0]\n')
    assert len(expand_jobs(load_config(toml))) == 4
    (tmp_path / "bad.toml").write_text("mode = [")
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and "not valid TOML" in result.output
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "none.toml"), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and "no such config" in result.output


def test_logs_by_fsspec_url(tmp_path):
    """A job reads its log from any fsspec URL (here a compressed one behind fsspec's gzip layer:
    jobs run in processes of their own, so an in-memory filesystem would not reach them)."""
    import gzip

    source = tmp_path / "example.txt.gz"
    source.write_bytes(gzip.compress((DATA / "example.txt").read_bytes()))
    url = f"simplecache::local://{source}"
    config = {"mode": "replay", "logs": [url], "seeds": [0]}
    table = sweep(config, tmp_path / "r.csv", scheduler="serial")
    assert table.error.iloc[0] == "" and table.events.iloc[0] == 3


def test_a_crashing_job_is_one_failed_row(tmp_path, monkeypatch):
    """A job whose process dies of a segfault is reported in its row; the others finish.

    The crash is injected from outside the package: a sitecustomize on PYTHONPATH makes the
    job's own process send itself SIGSEGV when its directory is the chosen job's."""
    config = {"mode": "simulate", "seeds": [0, 1], "simulator": {"limit": 50, "users": 5, "words": 4}}
    doomed = [j["job"] for j in expand_jobs(config) if j["seed"] == 1][0]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, signal, sys\n"
        f"if sys.argv[:1] == ['-m'] and sys.argv[-1].endswith({doomed!r}):\n"
        "    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(hook))
    table = sweep(config, tmp_path / "r.csv", scheduler="serial")
    rows = table.set_index("seed")
    assert not isinstance(rows.loc[0, "error"], str) or rows.loc[0, "error"] == ""  # it ran (NaN: no error)
    assert rows.loc[0, "rounds"] == 50
    assert "SIGSEGV" in rows.loc[1, "error"]
