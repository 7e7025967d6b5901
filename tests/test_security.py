"""A log (or a model directory) is data: it never writes a file, crashes the process or mixes two models.

Each case is tried as an attacker or a careless user would: through the command line in a
real subprocess where a crash would show as exit code 139, and through the API.
"""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from iglp_vw import IGLP
from iglp_vw import modeldir
from iglp_vw.cli import main
from iglp_vw.logs import Event, LogError, read_events
from iglp_vw.modeldir import ModelDirBusy, ModelDirError
from iglp_vw.replay import replay

DATA = Path(__file__).resolve().parent.parent / "data"
DSJSON = (DATA / "example.dsjson").read_text().splitlines()
TEXT = (DATA / "example.txt").read_text()
CLI = [sys.executable, "-m", "iglp_vw.cli"]


def _cli(*args, timeout=120):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def _dsjson(tmp_path, mutate, name="log.dsjson", keep_neighbours=True):
    obj = json.loads(DSJSON[0])
    mutate(obj)
    lines = [json.dumps(obj)] + (DSJSON[1:] if keep_neighbours else [])
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------ critical: injection


@pytest.mark.parametrize("ik_model", ["slot", "features"])
@pytest.mark.parametrize(
    "where",
    [
        lambda o, v: o["c"]["_multi"][2]["Action"].__setitem__("id", v),
        lambda o, v: o["c"]["User"].__setitem__("id", v),
        lambda o, v: o["o"][0]["v"].__setitem__("word", v),
        lambda o, v: o["c"].__setitem__("x", {v: 1.0}),
        lambda o, v: o["c"].__setitem__(v, {"a": 1}),
    ],
)
def test_a_newline_in_a_logged_value_is_never_a_command(tmp_path, where, ik_model):
    target = tmp_path / "outside" / "overwritten"
    target.parent.mkdir()
    value = f"2\n\n'save_{target}|\n\n'save_{target}\n"
    log = _dsjson(tmp_path, lambda o: where(o, value))
    proc = _cli("replay", log, "--model-dir", tmp_path / "m", "--ik-model", ik_model)
    assert proc.returncode == 0, proc.stderr  # escaped and learned, not refused
    assert "events: 3" in proc.stdout
    assert not target.exists()
    assert sorted(os.listdir(tmp_path / "outside")) == []
    proc = _cli("label", log, "--model-dir", tmp_path / "m", "--out", tmp_path / "labelled.dsjson")
    assert proc.returncode == 0, proc.stderr
    assert not target.exists()


def test_a_context_value_ending_in_a_newline_does_not_crash(tmp_path):
    log = _dsjson(tmp_path, lambda o: o["c"]["User"].__setitem__("id", "u17\n"))
    for args in (["replay", log, "--model-dir", tmp_path / "m"],
                 ["label", log, "--model-dir", tmp_path / "m", "--out", tmp_path / "l.dsjson"],
                 ["predict", log, "--model-dir", tmp_path / "m"]):
        proc = _cli(*args)
        assert proc.returncode == 0, (args[0], proc.returncode, proc.stderr)


@pytest.mark.parametrize(
    "context, actions, feedback, match",
    [
        ("|User id=u17\n |x a:1", None, "|F w", "control characters"),
        ("|User id=u17 |x a:1", ["|A a\n'save_/tmp/x|", "|A b"], "|F w", "control characters"),
        ("|User id=u17", ["|A a", "|A b"], "|F w\n\n|F v", "control characters"),
        ("User id=u17", None, "|F w", "must start with '|'"),
        ("|User id=u17 |x a:b", None, "|F w", "not name or name:number"),
        ("|User\x00 id=u17", None, "|F w", "control characters"),
    ],
)
def test_api_refuses_vw_text_that_is_not_one_line(context, actions, feedback, match):
    """Through the API (in this process: a crash would end the test run)."""
    learner = IGLP(4, seed=0)
    actions = actions or [f"|A a{k}" for k in range(4)]
    with pytest.raises(ValueError, match=match):
        learner.learn(context, actions, 1, 0.5, feedback)
    with pytest.raises(ValueError, match=match):
        learner.learn(context, actions, 1, 0.5, feedback)  # the same learner still works after
    assert learner.learn("|User id=u17", [f"|A a{k}" for k in range(4)], 1, 0.5, "|F w") == 0.0


def test_api_escapes_every_dict_value(tmp_path):
    learner = IGLP(3, seed=0)
    nasty = "u\n\n'save_/tmp/iglp-nope|\r\x00\u2028 :|"
    context = {"User": {"id": nasty}, nasty: {nasty: 1.0, "k": nasty}}
    actions = [{"A": {"id": nasty}}, {}, {"A": {"id": 0}}]  # featureless actions stay actions
    pmf = learner.predict(context, actions)
    assert len(pmf) == 3
    learner.learn(context, actions, 1, pmf[1], {"F": {"w": nasty}})
    assert not Path("/tmp/iglp-nope").exists()


# ------------------------------------------------------------------------ model directories


def _hold_lock(directory):
    code = ("import sys, time; from iglp_vw import modeldir\n"
            "with modeldir.writer(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_model_directory_has_one_writer(tmp_path):
    holder = _hold_lock(tmp_path / "m")
    try:
        result = CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(tmp_path / "m")])
        assert result.exit_code == 2 and f"another process (pid {holder.pid})" in result.output
        with pytest.raises(ModelDirBusy):
            IGLP(3).save(tmp_path / "m")
    finally:
        holder.kill()
        holder.wait()
    # The holder died: nothing is stuck.
    result = CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output


def test_two_replays_at_once_never_mix_their_models(tmp_path):
    """Two real replays into one directory: one wins, the other is refused; the set loads whole."""
    log = tmp_path / "log.txt"
    proc = _cli("simulate", "grounded", "--passes", "1", "--users", "20", "--words", "10", "--out", log)
    assert proc.returncode == 0, proc.stderr
    procs = [subprocess.Popen(CLI + ["replay", str(log), "--model-dir", str(tmp_path / "m"), "--seed", str(s)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    outs = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    codes = sorted(rc for _, _, rc in outs)
    assert codes in ([0, 0], [0, 2]), outs  # serialized by luck of timing, or the second refused
    for _, err, rc in outs:
        if rc == 2:
            assert "another process" in err
    learner = IGLP.load(tmp_path / "m")  # a whole set, manifest-checked
    assert learner.seed in (1, 2) and learner.n_learned == 1797


def test_a_failed_save_leaves_the_previous_set_current(tmp_path):
    learner = IGLP(3, seed=4)
    learner.save(tmp_path / "m")

    def broken(target):
        (target / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")

    with pytest.raises(ModelDirError, match="no space left"):
        modeldir.publish(tmp_path / "m", broken)
    assert IGLP.load(tmp_path / "m").seed == 4
    assert [n for n in os.listdir(tmp_path / "m") if n.startswith(".v-")] == []


def _set_dir(model_dir):
    return model_dir / os.readlink(model_dir / "current")


def _remanifest(set_dir):
    """What an attacker who edits a set does: recompute the manifest so the hashes match
    (through links too)."""
    import hashlib

    files = {}
    for name in sorted(os.listdir(set_dir)):
        if name != "manifest.json":
            data = (set_dir / name).read_bytes()
            files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (set_dir / "manifest.json").write_text(json.dumps({"format": 1, "files": files}))


def _trained(tmp_path, name="m", seed=0):
    learner = IGLP(4, seed=seed)
    actions = [f"|A a{k}" for k in range(4)]
    for t in range(30):
        learner.learn(f"|User id=u{t % 3}", actions, t % 4, 0.25, f"|F w{t % 2}")
    learner.save(tmp_path / name)
    return tmp_path / name


def test_a_mixed_or_partial_set_is_refused_naming_the_file(tmp_path):
    a, b = _trained(tmp_path, "a", 1), _trained(tmp_path, "b", 2)
    os.replace(_set_dir(b) / "cb.model", _set_dir(a) / "cb.model")  # one file from another set
    with pytest.raises(ModelDirError, match=r"cb\.model: does not match the set's manifest"):
        IGLP.load(a)
    c = _trained(tmp_path, "c", 3)
    os.unlink(_set_dir(c) / "state.json")  # a partial set
    with pytest.raises(ModelDirError, match=r"state\.json: missing"):
        IGLP.load(c)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d, m, out: (os.unlink(m / "current"), os.symlink(str(out), m / "current")), "not to a v-NNNNNN set"),
        (lambda d, m, out: (os.unlink(m / "current"), os.symlink("../outside", m / "current")), "not to a v-NNNNNN"),
        (lambda d, m, out: (os.unlink(d / "ik.model"), os.symlink(out / "secret", d / "ik.model"), _remanifest(d)),
         "a model set holds regular files|must be a regular file"),
        (lambda d, m, out: _edit_config(d, "ik_args", f"--invert_hash {out / 'written'}"), "--invert_hash"),
        (lambda d, m, out: _edit_config(d, "cb_full_args", f"--cb_explore_adf -f {out / 'written'}"), "'-f'"),
        (lambda d, m, out: _edit_config(d, "num_actions", 10 ** 9), "num_actions"),
        (lambda d, m, out: _edit_config(d, "extra", 1), "unknown parameters"),
        (lambda d, m, out: ((d / "config.json").write_text("{"), _remanifest(d)), "config.json: the configuration is not valid JSON"),
        (lambda d, m, out: ((d / "state.json").write_text('{"decoder": 1}'), _remanifest(d)), "state.json: not a learner state"),
    ],
)
def test_a_crafted_model_directory_touches_nothing_outside(tmp_path, edit, match):
    m = _trained(tmp_path)
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret").write_text("keep me")
    edit(_set_dir(m), m, out)
    with pytest.raises(ModelDirError, match=match):
        IGLP.load(m)
    result = CliRunner().invoke(main, ["predict", str(DATA / "example.txt"), "--model-dir", str(m)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert sorted(os.listdir(out)) == ["secret"] and (out / "secret").read_text() == "keep me"


def _edit_config(set_dir, key, value):
    config = json.loads((set_dir / "config.json").read_text())
    if key == "cb_full_args":
        config[key] = value
    else:
        config["params"][key] = value
    (set_dir / "config.json").write_text(json.dumps(config))
    _remanifest(set_dir)


def test_an_old_checkpoint_pointer_cannot_remove_anything_outside(tmp_path):
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "precious").write_text("x")
    m = tmp_path / "m"
    m.mkdir()
    (m / "checkpoint.json").write_text(json.dumps({"dir": str(out), "events": 3}))
    for extra in ([], ["--resume"]):
        CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(m), *extra])
        assert (out / "precious").exists()


@pytest.mark.parametrize("kind", ["read-only", "under a file"])
def test_unwritable_model_directories_are_clear_errors(tmp_path, kind):
    if kind == "read-only":
        if os.geteuid() == 0:  # root writes anywhere but in sysfs
            target = Path("/sys/iglp-vw-test/m")
        else:
            (tmp_path / "ro").mkdir(mode=0o500)
            target = tmp_path / "ro" / "m"
    else:
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "m"
    result = CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(target)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "Traceback" not in result.output


def test_a_full_disk_is_a_clear_error(tmp_path):
    """/dev/full fails every write with ENOSPC: the trace file there."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    result = CliRunner().invoke(main, ["replay", str(DATA / "example.txt"), "--model-dir", str(tmp_path / "m"),
                                       "--trace", "/dev/full"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_killing_a_replay_leaves_no_reader_process(tmp_path):
    log = tmp_path / "log.txt"
    assert _cli("simulate", "grounded", "--passes", "3", "--users", "20", "--words", "10", "--out", log).returncode == 0
    proc = subprocess.Popen(CLI + ["replay", str(log), "--model-dir", str(tmp_path / "m")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not children and proc.poll() is None:
        children = _children(proc.pid)
        time.sleep(0.02)
    assert children, "the replay started no child process"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(c) for c in children):
        time.sleep(0.05)
    assert not any(_alive(c) for c in children), "a child of the killed replay is still running"


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ----------------------------------------------------------------------------- medium / low

def _gz(path, text):
    path.write_bytes(gzip.compress(text.encode()))
    return path


BAD_INPUTS = [
    # (name, writer(tmp) -> log path, expected: "learn" (exit 0, events), or "error" (exit 2, field))
    ("featureless actions", lambda t: _dsjson(t, lambda o: (o["c"]["_multi"].__setitem__(1, {}),
                                                            o["c"]["_multi"].__setitem__(3, {"Action": {"id": 0}}))),
     ("learn", 3)),
    ("huge integer", lambda t: _dsjson(t, lambda o: o["c"]["x"].__setitem__("f0", 10 ** 400)), ("error", "c.x.f0")),
    ("integer too long to read", lambda t: (t / "l.dsjson").write_text(DSJSON[0].replace('"f5":1', '"f5":' + "9" * 5000)
                                                                       + "\n" + "\n".join(DSJSON[1:]) + "\n")
     and t / "l.dsjson", ("error", "json")),
    ("huge integer value", lambda t: _dsjson(t, lambda o: o["c"]["x"].__setitem__("f0", 10 ** 320)), ("error", "c.x.f0")),
    ("huge cost", lambda t: _dsjson(t, lambda o: o.__setitem__("_label_cost", 10 ** 320)), ("error", "_label_cost")),
    ("deep nesting", lambda t: t.joinpath("deep.dsjson").write_text('{"c": ' + "[" * 5000 + "]" * 5000 + "}\n" + "\n".join(DSJSON[1:]) + "\n") and t / "deep.dsjson",
     ("error", "json")),
    ("nested objects", lambda t: _dsjson(t, lambda o: o["c"].__setitem__("n", _nest(40))), ("error", "c.n")),
    ("BOM, DSJSON", lambda t: (t / "bom.dsjson").write_bytes(b"\xef\xbb\xbf" + "\n".join(DSJSON).encode()) and t / "bom.dsjson",
     ("learn", 3)),
    ("BOM, text", lambda t: (t / "bom.txt").write_bytes(b"\xef\xbb\xbf" + TEXT.encode()) and t / "bom.txt", ("learn", 3)),
    ("control character in text", lambda t: (t / "c.txt").write_text(TEXT.replace("id=u3", "id=u\x0c3")) and t / "c.txt",
     ("error", "text")),
    ("non-ASCII namespaces", lambda t: _dsjson(t, lambda o: (o["c"].__setitem__("été", {"a": 1}),
                                                             o["c"]["_multi"][0].__setitem__("Ünïcode", {"b": 1}))),
     ("learn", 3)),
    ("a non-finite cost", lambda t: (t / "n.txt").write_text(TEXT.replace("0:-1:0.5", "0:nan:0.5")) and t / "n.txt",
     ("error", "cost")),
    ("100,000 actions", lambda t: _dsjson(t, lambda o: o["c"].__setitem__("_multi", [{"A": {"i": k}} for k in range(100_000)])),
     ("error", "c._multi")),
]


def _nest(depth):
    obj = {"leaf": 1}
    for i in range(depth):
        obj = {f"n{i}": obj}
    return obj


@pytest.mark.parametrize("name, make, expected", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_are_learned_or_refused_cleanly(tmp_path, name, make, expected):
    log = make(tmp_path)
    start = time.monotonic()
    result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m"), "--num-actions", "4"])
    assert "Traceback" not in result.output and time.monotonic() - start < 60
    kind, detail = expected
    if kind == "learn":
        assert result.exit_code == 0, result.output
        assert f"events: {detail}" in result.output
    else:
        assert result.exit_code == 2, result.output
        assert f": {detail}" in result.output and f"{log}:" in result.output, result.output
        skipped = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "s"),
                                            "--num-actions", "4", "--on-bad-line", "skip"])
        assert skipped.exit_code == 0, skipped.output  # valid neighbours are learned
        assert "bad lines skipped: 1" in skipped.output and "events: 2" in skipped.output


def test_featureless_actions_keep_the_event_whole(tmp_path):
    log = _dsjson(tmp_path, lambda o: o["c"]["_multi"].__setitem__(1, {}), keep_neighbours=False)
    (event,) = list(read_events(log))
    assert len(event.actions) == 4 and event.actions[1] == ""
    learner = IGLP(4, seed=0)
    assert len(learner.predict(event.context, event.actions)) == 4
    learner.learn(event.context, event.actions, event.action, event.prob, event.feedback)


def test_a_truncated_gzip_log_keeps_every_event_before_the_cut(tmp_path):
    events = "".join(TEXT.strip() + "\n\n" for _ in range(400))
    whole = _gz(tmp_path / "whole.txt.gz", events)
    data = whole.read_bytes()
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    items = list(read_events(cut))
    good = [e for e in items if isinstance(e, Event)]
    assert isinstance(items[-1], LogError) and items[-1].field == "file" and "truncated" in items[-1].message
    import zlib

    recoverable = zlib.decompressobj(31).decompress(data[: len(data) * 2 // 3]).decode().count("\n\n")
    assert len(good) >= recoverable - 1 > 100  # all but the event cut in two
    result = CliRunner().invoke(main, ["replay", str(cut), "--model-dir", str(tmp_path / "m"), "--on-bad-line", "skip"])
    assert result.exit_code == 0 and f"events: {len(good):,}" in result.output
    result = CliRunner().invoke(main, ["replay", str(cut), "--model-dir", str(tmp_path / "f")])
    assert result.exit_code == 2 and "truncated" in result.output


def test_a_text_event_without_end_is_bounded(tmp_path, monkeypatch):
    from iglp_vw import logs

    monkeypatch.setattr(logs, "MAX_EVENT_CHARS", 1 << 16)
    log = tmp_path / "long.txt"
    log.write_text(TEXT + "shared |User id=u1\n" + "|A x\n" * 50_000 + "\n" + TEXT)
    items = list(read_events(log))
    assert [type(x).__name__ for x in items].count("Event") == 6
    assert any(isinstance(x, LogError) and x.field in ("event", "actions") for x in items)


def test_a_ccb_line_mid_log_keeps_the_models_before_it(tmp_path):
    lines = list(DSJSON) + ['{"c": {"_multi": [{"a": {"x": 1}}], "_slots": [{"_id": "s"}]}}'] + list(DSJSON)
    log = tmp_path / "mixed.dsjson"
    log.write_text("\n".join(lines) + "\n")
    for policy in ("fail", "skip"):
        result = CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / policy),
                                           "--on-bad-line", policy])
        assert result.exit_code == 2 and f"{log}:4: event: this is a CCB" in result.output
        assert IGLP.load(tmp_path / policy).n_learned == 3


def test_an_output_file_that_is_an_input_log_is_refused(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text(TEXT)
    for args in (["replay", str(log), "--model-dir", str(tmp_path / "m"), "--trace", str(log)],
                 ["label", str(log), "--model-dir", str(tmp_path / "m"), "--out", str(log)]):
        if args[0] == "label":
            CliRunner().invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m")])
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "would destroy the log" in result.output
        assert log.read_text() == TEXT


def test_a_tiny_logged_probability_does_not_swamp_inference(tmp_path):
    """p = 1e-300 weighs at most MAX_IMPORTANCE_WEIGHT, not 1e299: inference goes on."""
    log = tmp_path / "log.txt"
    assert _cli("simulate", "grounded", "--passes", "1", "--users", "20", "--words", "10", "--out", log).returncode == 0
    import re

    tiny = re.sub(r"(?m)^0:(-?\d+):0\.1 ", r"0:\1:1e-300 ", log.read_text(), count=1)
    assert tiny != log.read_text()
    (tmp_path / "tiny.txt").write_text(tiny)
    a = replay([log], tmp_path / "a")
    b = replay([tmp_path / "tiny.txt"], tmp_path / "b")
    assert b.shares()["+"] > 0.7 * a.shares()["+"] > 0


@pytest.mark.parametrize("value", [np.float32(0.5), np.int64(3), np.bool_(True), np.float16(2.0), np.int8(-1)])
def test_numpy_scalars_are_feature_values(value):
    learner = IGLP(3, seed=0)
    plain = IGLP(3, seed=0)
    context = {"User": {"id": "u1"}, "x": {"f": value}}
    as_python = {"User": {"id": "u1"}, "x": {"f": value.item()}}
    actions = [{"A": {"i": str(k)}} for k in range(3)]
    assert learner.predict(context, actions) == plain.predict(as_python, actions)
    assert learner.learn(context, actions, 0, 0.5, None) == plain.learn(as_python, actions, 0, 0.5, {})


def test_readers_see_whole_sets_while_a_replay_publishes(tmp_path):
    """Load the model again and again while a replay publishes a checkpoint every 50 events."""
    log = tmp_path / "log.txt"
    assert _cli("simulate", "grounded", "--passes", "2", "--users", "20", "--words", "10", "--out", log).returncode == 0
    m = tmp_path / "m"
    proc = subprocess.Popen(CLI + ["replay", str(log), "--model-dir", str(m), "--checkpoint-every", "50"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    loads, seen = 0, set()
    while proc.poll() is None:
        if modeldir.current_name(m) is None:
            time.sleep(0.01)
            continue
        learner = IGLP.load(m)  # never a mix, never a half-removed set
        seen.add(learner.n_learned)
        loads += 1
    assert proc.returncode == 0, proc.stderr
    assert loads >= 5 and len(seen) >= 3, (loads, seen)
    assert IGLP.load(m).n_learned == 3594
