import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from iglp_vw import IGLP
from iglp_vw.cli import main
from iglp_vw.logs import read_events
from iglp_vw.replay import NAMESPACE_WINDOW, label_log, replay
from iglp_vw.sim import GroundedSimulation
from iglp_vw.sim.logging import write_log

DATA = Path(__file__).resolve().parent.parent / "data"
MODELS = ("cb.model", "ik.model", "ik_prior.model", "state.json", "config.json")


@pytest.fixture(scope="module")
def logs(tmp_path_factory, digits):
    """A seeded grounded log (text and DSJSON, same events) and its hidden truth."""
    out = tmp_path_factory.mktemp("logs")
    X, y = digits
    for fmt, name in (("text", "g.txt"), ("dsjson", "g.dsjson")):
        sim = GroundedSimulation(X, y, n_users=20, n_words=10, passes=1, seed=3)
        write_log(sim, out / name, fmt=fmt, seed=3, limit=1200, truth=out / "truth.csv")
    return out


def _same_models(a: Path, b: Path, names=MODELS):
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _weights(model: Path, tmp: Path) -> str:
    """VW's readable dump of a model's weights (the header's pass counter aside)."""
    out = tmp / (model.parent.name + "-" + model.name + ".txt")
    subprocess.run([sys.executable, "-m", "vowpalwabbit", "-i", str(model), "-t", "-d", "/dev/null", "--quiet",
                    "--readable_model", str(out)], check=True, timeout=60)
    return out.read_text()


@pytest.mark.parametrize("ik_model", ["slot", "features"])
def test_replay_learns_what_the_api_learns(logs, tmp_path, ik_model):
    """The CB in VW's driver and the IK in-process give the models IGLP.learn gives."""
    replay([logs / "g.txt"], tmp_path / "replay", learner_params={"seed": 1, "ik_model": ik_model})
    api = IGLP(10 if ik_model == "slot" else None, seed=1, ik_model=ik_model)
    for event in list(read_events(logs / "g.txt"))[:NAMESPACE_WINDOW]:  # as the replay does
        api.see_namespaces(event.context, event.actions)
    for event in read_events(logs / "g.txt"):
        api.learn(event.context, event.actions, event.action, event.prob, event.feedback)
    api.save(tmp_path / "api")
    _same_models(tmp_path / "replay", tmp_path / "api", ("ik.model", "ik_prior.model", "state.json", "config.json"))
    assert _weights(tmp_path / "replay" / "cb.model", tmp_path) == _weights(tmp_path / "api" / "cb.model", tmp_path)


def test_replay_is_seeded_and_text_equals_dsjson_rewards(logs, tmp_path):
    a = replay([logs / "g.txt"], tmp_path / "a", learner_params={"seed": 0})
    replay([logs / "g.txt"], tmp_path / "b", learner_params={"seed": 0})
    _same_models(tmp_path / "a", tmp_path / "b")
    d = replay([logs / "g.dsjson"], tmp_path / "d", learner_params={"seed": 0})
    assert a.events == d.events == 1200
    assert a.rewards == d.rewards  # the same events, whatever the format


def test_resume_gives_byte_identical_models(logs, tmp_path):
    straight = tmp_path / "straight"
    replay([logs / "g.txt", logs / "g.dsjson"], straight, checkpoint_every=300)
    part = tmp_path / "part"
    first = replay([logs / "g.txt", logs / "g.dsjson"], part, checkpoint_every=300, limit=1000)
    assert first.events == 1000
    done = replay([logs / "g.txt", logs / "g.dsjson"], part, checkpoint_every=300, resume=True)
    assert done.events == 2400
    _same_models(straight, part)
    # ...and the same as a replay without any checkpoint: restarts of the driver are exact.
    replay([logs / "g.txt", logs / "g.dsjson"], tmp_path / "plain")
    _same_models(straight, tmp_path / "plain", ("cb.model", "ik.model", "ik_prior.model", "state.json"))


def test_resume_refuses_other_options(logs, tmp_path):
    runner = CliRunner()
    args = ["replay", str(logs / "g.txt"), "--model-dir", str(tmp_path), "--limit", "100"]
    assert runner.invoke(main, args).exit_code == 0
    result = runner.invoke(main, args[:-2] + ["--resume", "--seed", "5"])
    assert result.exit_code == 2 and "other options" in result.output
    assert "learner_params: was" in result.output and "'seed': 5" in result.output
    result = runner.invoke(main, args[:-2] + ["--continue"])  # a --limit run is unfinished
    assert result.exit_code == 2 and "finish it with --resume" in result.output
    result = CliRunner().invoke(main, ["replay", str(logs / "g.txt"), "--model-dir", str(tmp_path / "new"), "--resume"])
    assert result.exit_code == 2 and "no checkpoint" in result.output


def test_continue_on_a_new_log_equals_one_replay_of_both(logs, tmp_path):
    """Yesterday's model + today's log (--continue) == one replay of yesterday's and today's logs."""
    both = tmp_path / "both"
    replay([logs / "g.txt", logs / "g.dsjson"], both)
    daily = tmp_path / "daily"
    replay([logs / "g.txt"], daily)
    day2 = replay([logs / "g.dsjson"], daily, continue_training=True)
    assert day2.events == 1200 and day2.continued_from == 1200
    _same_models(both, daily, ("cb.model", "ik.model", "ik_prior.model", "state.json"))
    # and through the CLI, with its report
    args = ["replay", str(logs / "g.txt"), "--model-dir", str(daily), "--continue", "--limit", "10"]
    result = CliRunner().invoke(main, args)  # day 1's log again: refused (issue 24 item 8)
    assert result.exit_code == 2 and "has already learned from" in result.output and "--repeat" in result.output
    result = CliRunner().invoke(main, args + ["--repeat"])
    assert result.exit_code == 0, result.output
    assert "continued a model trained on 2,400 events" in result.output


def test_a_trained_model_is_not_replaced_silently(logs, tmp_path):
    runner = CliRunner()
    args = ["replay", str(logs / "g.txt"), "--model-dir", str(tmp_path / "m")]
    assert runner.invoke(main, args + ["--limit", "300"]).exit_code == 0
    before = (tmp_path / "m" / "cb.model").read_bytes()
    result = runner.invoke(main, args + ["--limit", "3"])
    assert result.exit_code == 2
    assert "holds an interrupted replay (trained on 300 events; last log: g.txt)" in result.output  # --limit
    assert "--resume goes on from where it stopped" in result.output and "--overwrite" in result.output
    assert (tmp_path / "m" / "cb.model").read_bytes() == before
    result = runner.invoke(main, args + ["--limit", "3", "--overwrite"])
    assert result.exit_code == 0 and "events: 3 " in result.output
    assert runner.invoke(main, args + ["--overwrite"]).exit_code == 0
    result = runner.invoke(main, args + ["--continue", "--states", "3", "--seed", "4"])  # options are named
    assert result.exit_code == 2 and "seed: the model's is 0, given 4; states: the model's is 2, given 3" in result.output


def _bad_log(logs, tmp_path, bad_text, at=5):
    lines = (logs / "g.dsjson").read_text().splitlines()[:10]
    lines[at] = bad_text
    path = tmp_path / "bad.dsjson"
    path.write_text("\n".join(lines) + "\n")
    clean = tmp_path / "clean.dsjson"
    clean.write_text("\n".join(lines[:at] + lines[at + 1:]) + "\n")
    return path, clean


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda o: o.pop("_labelIndex") and o.update(_label_Action="x"), "_label_Action"),
        (lambda o: o.update(_label_probability=0), "_label_probability"),
        (lambda o: o.update(_labelIndex=10), "_labelIndex"),
        (lambda o: o.update(o=[{"v": {"word": "w1"}, "stars": 5}]), "o[0].stars"),
        (None, "json"),
    ],
)
def test_bad_event_fails_with_file_line_field_and_keeps_models(logs, tmp_path, mutate, field):
    obj = json.loads((logs / "g.dsjson").read_text().splitlines()[5])
    if mutate is None:
        text = json.dumps(obj)[:-7]
    else:
        mutate(obj)
        text = json.dumps(obj)
    bad, clean = _bad_log(logs, tmp_path, text)
    result = CliRunner().invoke(main, ["replay", str(bad), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert f"{bad}:6: {field}: " in result.output
    assert "Traceback" not in result.output
    # Models as of the last good event are on disk.
    kept = IGLP.load(tmp_path / "m")
    assert kept.n_learned == 5
    # Skipping: counted, reported, and nothing else lost (same models as the log without it).
    result = CliRunner().invoke(main, ["replay", str(bad), "--model-dir", str(tmp_path / "s"), "--on-bad-line", "skip"])
    assert result.exit_code == 0, result.output
    assert "bad lines skipped: 1" in result.output and f"skipped: {bad}:6: {field}" in result.output
    replay([clean], tmp_path / "c")
    _same_models(tmp_path / "s", tmp_path / "c", ("ik.model", "ik_prior.model", "state.json"))


def test_text_bad_event_through_cli(tmp_path):
    log = tmp_path / "bad.txt"
    text = (DATA / "example.txt").read_text().replace("0:-1:0.5 |Action id=0", "0:-1:0.5 |Action id=0\n0:0:0.5 |Action x")
    log.write_text(text)
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 2 and f"{log}:9: label: label on two actions (lines 8 and 9)" in result.output


def test_more_actions_than_the_model(tmp_path):
    """The default IK takes action sets of any size; the slot IK has K slots."""
    log = tmp_path / "grow.txt"
    ex = (DATA / "example.txt").read_text()
    log.write_text(ex + "shared |User id=u1\n|A a\n|A b\n|A c\n|A d\n0:0:0.2 |A e\n\n")
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 0 and "events: 4" in result.output, result.output
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "s"), "--ik-model", "slot"])
    assert result.exit_code == 2 and f"{log}:19: actions: 5 actions, more than the model's 4" in result.output
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "n"), "--ik-model", "slot",
                                       "--num-actions", "5"])
    assert result.exit_code == 0, result.output


def test_unsupported_and_missing_inputs(tmp_path):
    ccb = tmp_path / "ccb.json"
    ccb.write_text('{"c": {"_multi": [{"a": {"x": 1}}], "_slots": [{"_id": "s"}]}}\n')
    result = CliRunner().invoke(main, ["replay", str(ccb), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 2 and "CCB or slates" in result.output
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "nope.txt"), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 2 and "no such log file" in result.output


def test_no_feedback_warns(tmp_path):
    log = tmp_path / "nofb.txt"
    log.write_text("shared |User id=u1\n0:0:0.5 |A a\n|A b\n\n" * 3)
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 0 and "warning: no event carried feedback" in result.output
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m"), "--feedback-from-cost"])
    assert "warning" not in result.output


def test_trace_and_summary(logs, tmp_path):
    summary = replay([logs / "g.txt"], tmp_path / "m", trace=tmp_path / "t.csv")
    trace = pd.read_csv(tmp_path / "t.csv")
    assert len(trace) == 1200 and set(trace.inferred_reward) <= {0.0, 1.0}
    assert summary.rewards[1.0] == (trace.inferred_reward == 1).sum() > 0
    shares = summary.shares()
    assert shares["+"] + shares["0"] + shares["-"] == pytest.approx(1.0)
    report = summary.report()
    assert "events: 1,200" in report and "per feedback value:" in report


def test_three_states_with_definitely_bad_outcomes(tmp_path):
    """DSJSON outcomes marked _definitely_bad are definitely negative with --states 3."""
    replay([DATA / "example.dsjson"], tmp_path / "m", learner_params={"states": 3, "alpha": 0.5})
    learner = IGLP.load(tmp_path / "m")
    assert learner.states == 3 and "_definitely_bad" in learner.params["definitely_negative"]


def test_end_to_end_simulate_replay_predict(tmp_path):
    """simulate -> replay -> predict through the installed command (a real subprocess)."""
    exe = [sys.executable, "-m", "iglp_vw.cli"]
    run = lambda *a: subprocess.run(exe + list(a), capture_output=True, text=True, timeout=300)  # noqa: E731
    proc = run("simulate", "grounded", "--passes", "2", "--users", "20", "--words", "10", "--out",
               str(tmp_path / "log.dsjson.gz"), "--format", "dsjson", "--truth", str(tmp_path / "truth.csv"))
    assert proc.returncode == 0, proc.stderr
    proc = run("replay", str(tmp_path / "log.dsjson.gz"), "--model-dir", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    assert "events: 3,594" in proc.stdout
    proc = run("predict", "--model-dir", str(tmp_path / "m"), str(tmp_path / "log.dsjson.gz"), "--out",
               str(tmp_path / "pred.jsonl"))
    assert proc.returncode == 0, proc.stderr
    preds = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    truth = pd.read_csv(tmp_path / "truth.csv")
    greedy = np.array([int(np.argmax(p["pmf"])) for p in preds])
    accuracy = (greedy == truth.label.to_numpy()).mean()
    assert accuracy > 0.5, accuracy  # uniform is 0.1: the learned reward taught the CB the labels
    assert all(abs(sum(p["pmf"]) - 1) < 1e-4 and 0 <= p["action"] < 10 for p in preds)


def test_predict_is_seeded(logs, tmp_path):
    replay([logs / "g.txt"], tmp_path / "m", limit=300)
    outs = []
    for _ in range(2):
        result = CliRunner().invoke(main, ["predict", "--model-dir", str(tmp_path / "m"), str(logs / "g.dsjson")])
        assert result.exit_code == 0, result.output
        outs.append(result.output)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 1200


def test_label_writes_inferred_costs_vw_can_train_on(logs, tmp_path):
    for name in ("g.txt", "g.dsjson"):
        replay([logs / name], tmp_path / name)
        out = tmp_path / ("labelled-" + name)
        result = CliRunner().invoke(main, ["label", "--model-dir", str(tmp_path / name), str(logs / name), "--out",
                                           str(out), "--trace", str(tmp_path / "t.csv")])
        assert result.exit_code == 0, result.output
        events = list(read_events(out))
        trace = pd.read_csv(tmp_path / "t.csv")
        assert len(events) == len(trace) == 1200
        assert [-e.cost for e in events] == trace.inferred_reward.tolist()
        assert (trace.inferred_reward == 1).mean() > 0.03
        assert {"ik_probability", "prior"} <= set(trace.columns)
        args = ["--cb_explore_adf", "-d", str(out), "--quiet"] + (["--dsjson"] if name.endswith("dsjson") else [])
        proc = subprocess.run([sys.executable, "-m", "vowpalwabbit", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert "Feedback" not in (tmp_path / "labelled-g.txt").read_text()  # the CB must not see the feedback


def test_commands_have_help():
    for cmd in (["replay"], ["predict"], ["label"], ["simulate", "grounded"]):
        result = CliRunner().invoke(main, cmd + ["--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_killed_replay_resumes_to_identical_models(tmp_path, digits):
    """SIGKILL a replay mid-run (real subprocess); --resume ends byte-identical to an uninterrupted run."""
    import os
    import signal
    import time

    X, y = digits
    log = tmp_path / "long.txt"
    write_log(GroundedSimulation(X, y, n_users=20, n_words=10, passes=12, seed=4), log, seed=4)
    cmd = [sys.executable, "-m", "iglp_vw.cli", "replay", str(log), "--checkpoint-every", "500", "--model-dir"]
    proc = subprocess.Popen(cmd + [str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "replay.json"  # the published set's, through `current`
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            events = json.loads(state.read_text())["summary"]["events"]
        except (OSError, ValueError):
            events = 0
        if events >= 2000:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    result = CliRunner().invoke(main, ["replay", str(log), "--checkpoint-every", "500", "--resume", "--model-dir",
                                       str(tmp_path / "killed")])
    assert result.exit_code == 0, result.output
    assert "events: 21,564" in result.output
    replay([log], tmp_path / "straight", checkpoint_every=500)
    _same_models(tmp_path / "killed", tmp_path / "straight")
    assert killed, "the replay finished before it could be killed: make the log longer"


def test_cb_model_from_dsjson_scores_dsjson_in_plain_vw(logs, tmp_path):
    """Features are named as VW's JSON parser names them: VW's own --dsjson scoring agrees with predict."""
    replay([logs / "g.txt"], tmp_path / "m")
    ours = CliRunner().invoke(main, ["predict", "--model-dir", str(tmp_path / "m"), str(logs / "g.dsjson")])
    assert ours.exit_code == 0
    ours = [json.loads(line)["pmf"] for line in ours.output.splitlines()]
    proc = subprocess.run([sys.executable, "-m", "vowpalwabbit", "--dsjson", "-t", "-i", str(tmp_path / "m" / "cb.model"),
                           "-d", str(logs / "g.dsjson"), "-p", str(tmp_path / "vw.txt"), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    theirs = [line for line in (tmp_path / "vw.txt").read_text().splitlines() if line.strip()]
    assert len(theirs) == len(ours) == 1200
    for pmf, line in zip(ours, theirs):
        scores = {int(a): float(p) for a, p in (pair.split(":") for pair in line.split(","))}
        assert [round(scores[i], 4) for i in range(len(pmf))] == [round(p, 4) for p in pmf]


def test_changing_action_sets_are_warned_about_with_the_slot_ik(logs, tmp_path):
    fixed = replay([logs / "g.txt"], tmp_path / "a", learner_params={"ik_model": "slot"})
    assert fixed.action_set_changes == 0 and "warning" not in fixed.report()
    rng = np.random.default_rng(0)
    shuffled = tmp_path / "shuffled.txt"
    with open(shuffled, "w") as out:
        for event in list(read_events(logs / "g.txt"))[:300]:
            order = rng.permutation(len(event.actions))
            event.actions = [event.actions[i] for i in order]
            event.action = int(np.flatnonzero(order == event.action)[0])
            from iglp_vw.logs import format_text_event

            out.write(format_text_event(event, feedback_namespace=None))
    summary = replay([shuffled], tmp_path / "b", learner_params={"ik_model": "slot"})
    assert summary.action_set_changes > 250 and "the action set changed between consecutive events" in summary.report()
    summary = replay([shuffled], tmp_path / "c")  # the default IK: nothing to warn about
    assert "action set changed" not in summary.report()


def test_parquet_trace_equals_the_csv_one_and_survives_a_resume(logs, tmp_path):
    pytest.importorskip("pyarrow")
    replay([logs / "g.txt"], tmp_path / "a", trace=tmp_path / "t.csv")
    replay([logs / "g.txt"], tmp_path / "b", trace=tmp_path / "t.parquet", limit=500)
    replay([logs / "g.txt"], tmp_path / "b", trace=tmp_path / "t.parquet", resume=True)
    csv, pq = pd.read_csv(tmp_path / "t.csv"), pd.read_parquet(tmp_path / "t.parquet")
    assert len(pq) == len(csv) == 1200
    assert pq.line.dtype.kind == "i" and pq.inferred_reward.dtype.kind == "f"
    for column in ("line", "action", "extreme", "inferred_reward"):
        assert (pq[column].to_numpy() == csv[column].to_numpy()).all(), column
    assert np.allclose(pq.ik_probability, csv.ik_probability, rtol=1e-5)


def _with_gaps(src: Path, dst: Path) -> None:
    """``src`` (VW text ADF) with an unlabelled event after every 97th, a bad line (a label of
    probability 0) in place of every 211th event's label, and an 11th action in every 300th."""
    events = src.read_text().strip("\n").split("\n\n")
    out = []
    for i, event in enumerate(events):
        if i % 211 == 7:
            event = event.replace(":0.1 |", ":0 |", 1)
        if i % 300 == 150:  # more actions than a slot IK of 10 has: a bad line the learner finds
            event += "\n|Action id=extra"
        out.append(event)
        if i % 97 == 5:  # the same event without its label line's label
            out.append("\n".join(line.split(" ", 1)[1] if line[:1].isdigit() else line for line in event.splitlines()))
    dst.write_text("\n\n".join(out) + "\n\n")


@pytest.mark.parametrize("ik_model", ["features", "slot"])
def test_ik_process_gives_the_models_of_the_ik_in_this_process(logs, tmp_path, ik_model):
    """The IK in a process of its own (the default where the machine can fork) runs a few batches
    behind the rest of Algorithm 1; the models, the state, the trace and the summary are those of
    the IK in this process, byte for byte, with unlabelled events and skipped bad lines among the
    events, checkpoints, a --limit and a --resume."""
    log = tmp_path / "gaps.txt"
    _with_gaps(logs / "g.txt", log)
    runs = {}
    for name, kw in (("inline", {"ik_process": False}), ("process", {"ik_process": True})):
        out = tmp_path / name
        common = dict(checkpoint_every=173, on_bad_line="skip", trace=tmp_path / f"{name}.csv",
                      learner_params={"ik_model": ik_model}, **kw)
        first = replay([log, logs / "g.txt"], out, limit=777, **common)
        assert first.events == 777
        runs[name] = replay([log, logs / "g.txt"], out, resume=True, **common)
    inline, process = runs["inline"], runs["process"]
    bad = 6 + 4 * (ik_model == "slot")  # labels of probability 0, and events of 11 actions for the slot IK
    assert inline.events == process.events == 2400 - bad
    assert inline.bad_lines == process.bad_lines == bad and inline.unlabelled == process.unlabelled == 13
    assert inline.rewards == process.rewards and inline.errors == process.errors
    assert process.ik_peak_rss_mb > 0 and inline.ik_peak_rss_mb == 0
    _same_models(tmp_path / "inline", tmp_path / "process")
    assert (tmp_path / "inline.csv").read_bytes() == (tmp_path / "process.csv").read_bytes()


class _Refuses:
    """An IK stand-in for the process's plumbing: refuses the text 'bad' (as VW refuses text)."""

    def learn(self, text, code, action, weight, action_texts=()):
        if text == "bad":
            raise ValueError("VW could not parse the example 'bad'")
        return [len(text)], [action]

    def prepare(self, text, action_texts=()):
        pass


def test_ik_process_reports_what_it_refused_and_holds_no_other_pipe():
    import os
    import select

    from iglp_vw.ik import IKProcess, IKProcessError

    read_end, write_end = os.pipe()  # open in this process when the IK process starts
    proc = IKProcess(_Refuses())
    try:
        os.close(write_end)
        # The IK process closed its copy: the pipe is at its end at once (a CB driver's stdin
        # held open by it would never see the end of its input).
        assert select.select([read_end], [], [], 5)[0] and os.read(read_end, 1) == b""
        proc.send([(None, "ab", "u", 1, 1.0, ()), (None, "abc", "u", 2, 1.0, ())])
        assert proc.receive() == [([2], [1]), ([3], [2])]
        proc.send([(None, "ab", "u", 0, 1.0, ()), (None, "bad", "u", 0, 1.0, ()), (None, "a", "u", 0, 1.0, ())])
        with pytest.raises(IKProcessError, match="could not parse") as err:
            proc.receive()
        assert err.value.index == 1 and err.value.done == [([2], [0])]
        assert proc.learn("abcd", "u", 3, 1.0) == ([4], [3])  # still serving
    finally:
        os.close(read_end)
        proc.close()
    assert proc.closed


def test_online_labels_with_the_ik_in_a_process_of_their_own_are_the_same(logs, tmp_path):
    """``label --online`` keeps the IK learning: in a process of its own (the default) it writes
    the same labelled log and trace as in this process, unlabelled events and bad lines in place."""
    log = tmp_path / "gaps.txt"
    _with_gaps(logs / "g.txt", log)
    replay([logs / "g.txt"], tmp_path / "m")
    outs = {}
    for name, ik_process in (("inline", False), ("process", True)):
        summary = label_log(tmp_path / "m", [log], tmp_path / f"{name}.txt", on_bad_line="skip", online=True,
                            trace=tmp_path / f"{name}.csv", ik_process=ik_process)
        outs[name] = summary
    assert outs["inline"].rewards == outs["process"].rewards and outs["process"].bad_lines == 6
    assert outs["process"].unlabelled == 13 and outs["process"].rewards[1.0] > 30
    for ext in ("txt", "csv"):
        assert (tmp_path / f"inline.{ext}").read_bytes() == (tmp_path / f"process.{ext}").read_bytes(), ext


def test_a_short_replay_that_inferred_nothing_says_so(tmp_path, digits):
    """A day too short for the extreme-event test: the summary and diagnostics() say why nothing was inferred."""
    X, y = digits
    log = tmp_path / "short.txt"
    write_log(GroundedSimulation(X, y, n_users=20, n_words=10, passes=1, seed=4), log, fmt="text", seed=4, limit=300)
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "inferred reward: +1 0.0%" in result.output
    assert "no reward inferred yet after 300 events" in result.output and "--continue" in result.output
    notes = IGLP.load(tmp_path / "m").diagnostics()
    assert any("no reward inferred yet" in n for n in notes)


def test_fading_models_are_byte_identical_across_checkpoints_resume_and_continue(logs, tmp_path):
    """With evidence fading (and users forgotten), a checkpointed, interrupted and resumed replay,
    one without checkpoints and day 1 + --continue day 2 all give the same bytes."""
    params = {"decoder_args": {"half_life": 300}, "max_users": 8}
    paths = [logs / "g.txt", logs / "g.dsjson"]
    straight = tmp_path / "straight"
    replay(paths, straight, learner_params=params, checkpoint_every=300)
    part = tmp_path / "part"
    replay(paths, part, learner_params=params, checkpoint_every=300, limit=1000)
    replay(paths, part, learner_params=params, checkpoint_every=300, resume=True)
    _same_models(straight, part)
    replay(paths, tmp_path / "plain", learner_params=params)
    _same_models(straight, tmp_path / "plain", ("cb.model", "ik.model", "ik_prior.model", "state.json"))
    daily = tmp_path / "daily"
    replay(paths[:1], daily, learner_params=params)
    replay(paths[1:], daily, learner_params=params, continue_training=True)
    _same_models(tmp_path / "plain", daily, ("cb.model", "ik.model", "ik_prior.model", "state.json"))
    state = json.loads((straight / "state.json").read_text())["decoder"]
    assert state["params"]["half_life"] == 300 and state["evicted_users"] > 0
