"""A new user's first day with their own logs: each silent mistake of issue 24 becomes a message.

Every test meets the mistake as a user does: a real ``iglp-vw`` invocation (click's CliRunner)
on a real file, or a call of the public API.
"""
import pandas as pd
import pytest
from click.testing import CliRunner

from iglp_vw import IGLP
from iglp_vw.cli import main


def _text_log(path, n=300, late_x_from=1, feedback_ns="Feedback", extra_ctx=""):
    """A VW text ADF log: users, 3 items, a click every fifth event; ``|x`` from event ``late_x_from``."""
    events = []
    for i in range(n):
        ctx = f"shared |User id=u{i % 7}{extra_ctx}" + (f" |x f{i % 3}" if i >= late_x_from else "")
        if i % 5 == 0:
            ctx += f" |{feedback_ns} click"
        acts = [(f"{j}:0:0.333 " if j == i % 3 else "") + f"|A item{j}" for j in range(3)]
        events.append(ctx + "\n" + "\n".join(acts) + "\n")
    path.write_text("\n".join(events))
    return path


def _replay(*args):
    return CliRunner().invoke(main, ["replay", *map(str, args)])


def _cb_line(output):
    return next(line for line in output.splitlines() if line.startswith("CB: "))


# ---------------------------------------------------------------- item 1: interactions
def test_a_first_event_without_a_namespace_still_gets_its_interactions(tmp_path):
    """Issue 24 item 1: the first event lacks ``|x``; the CB crosses ``x`` anyway."""
    log = _text_log(tmp_path / "late.txt", late_x_from=1)
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    cb = _cb_line(result.output)
    assert "-q UA" in cb and "-q xA" in cb and "--cubic xxA" in cb
    assert "do not cross" not in result.output


def test_a_namespace_after_the_first_window_is_named_with_the_fix(tmp_path, monkeypatch):
    """A namespace first seen after the window the interactions came from: the summary names it,
    the event it came at, and the --cb-args that cross it."""
    import iglp_vw.replay

    monkeypatch.setattr(iglp_vw.replay, "NAMESPACE_WINDOW", 20)
    log = _text_log(tmp_path / "later.txt", late_x_from=100)
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "-q xA" not in _cb_line(result.output)
    assert "context namespace 'x' (first at event 101)" in result.output
    assert "--cb-args '--cb_explore_adf --epsilon 0.05 -q UA --cubic UUA -q xA --cubic xxA'" in result.output
    # the suggested arguments do cross it, and the note goes away
    fixed = _replay(log, "--model-dir", tmp_path / "m2", "--cb-args",
                    "--cb_explore_adf --epsilon 0.05 -q UA --cubic UUA -q xA --cubic xxA")
    assert fixed.exit_code == 0, fixed.output
    assert "-q xA" in _cb_line(fixed.output) and "do not cross" not in fixed.output


def test_the_api_names_a_late_namespace_and_see_namespaces_resolves_it():
    def events():
        for i in range(40):
            ctx = {"User": {"id": f"u{i % 5}"}}
            if i >= 10:
                ctx["x"] = {"f": i % 3}
            yield ctx, [{"A": {"id": j}} for j in range(3)], i % 3, 1 / 3, {"Feedback": {"click": 1}} if i % 4 == 0 else None

    late = IGLP(3, seed=0)
    for event in events():
        late.learn(*event)
    notes = [d for d in late.diagnostics() if "do not cross" in d]
    assert len(notes) == 1 and "context namespace 'x' (first at event 11)" in notes[0]
    assert "-q xA --cubic xxA" in notes[0]

    resolved = IGLP(3, seed=0)
    for event in events():
        resolved.see_namespaces(event[0], event[1])
    for event in events():
        resolved.learn(*event)
    assert "-q xA" in resolved.cb_full_args
    assert not [d for d in resolved.diagnostics() if "do not cross" in d]


def test_learn_many_on_a_dataframe_crosses_every_rows_namespaces():
    rows = [{"context": {"User": {"id": f"u{i % 4}"}, **({"x": {"f": i}} if i > 0 else {})},
             "actions": [{"A": {"id": j}} for j in range(3)], "action": i % 3, "prob": 1 / 3,
             "feedback": None} for i in range(30)]
    model = IGLP(3, seed=0)
    model.learn_many(pd.DataFrame(rows))
    assert "-q xA" in model.cb_full_args and "-q UA" in model.cb_full_args


def test_the_namespaces_seen_survive_save_and_load(tmp_path):
    model = IGLP(3, seed=0)
    for i in range(12):
        ctx = {"User": {"id": "u"}, **({"x": {"f": 1}} if i > 5 else {})}
        model.learn(ctx, [{"A": {"id": j}} for j in range(3)], 0, 1 / 3, None)
    model.save(tmp_path / "m")
    loaded = IGLP.load(tmp_path / "m")
    assert [d for d in loaded.diagnostics() if "do not cross" in d] == [d for d in model.diagnostics()
                                                                         if "do not cross" in d] != []


# ---------------------------------------------------------------- item 7: arguments that do nothing
def test_an_interaction_naming_no_namespace_is_named(tmp_path):
    log = _text_log(tmp_path / "l.txt")
    result = _replay(log, "--model-dir", tmp_path / "m", "--cb-args", "--cb_explore_adf -q zA -q UA")
    assert result.exit_code == 0, result.output
    assert "namespace letter(s) z that no event has" in result.output
    assert "'User'" in result.output  # the namespaces it did see


def test_two_namespaces_sharing_a_first_letter_are_named(tmp_path):
    log = _text_log(tmp_path / "l.txt", extra_ctx=" |ctx a:1 |cookie b")
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "context namespace 'ctx' and context namespace 'cookie' begin with the same letter 'c'" in result.output


def test_a_cb_args_typo_gets_a_suggestion(tmp_path):
    log = _text_log(tmp_path / "l.txt", n=20)
    result = _replay(log, "--model-dir", tmp_path / "m", "--cb-args", "--cb_explore_adf --epsilonn 0.1")
    assert result.exit_code == 2
    assert "did you mean '--epsilon'?" in result.output
    fixed = _replay(log, "--model-dir", tmp_path / "m", "--cb-args", "--cb_explore_adf --epsilon 0.1")
    assert fixed.exit_code == 0, fixed.output  # the refused run left nothing in the way


@pytest.mark.parametrize("args", [["--cb-args", "--cb_explore_adf -q UA -q xA"], []])
def test_an_ordinary_log_gets_no_namespace_note(tmp_path, args):
    """The notes above must not fire on a log whose interactions are right."""
    log = _text_log(tmp_path / "l.txt")
    result = _replay(log, "--model-dir", tmp_path / "m", *args)
    assert result.exit_code == 0, result.output
    for phrase in ("do not cross", "that no event has", "same letter"):
        assert phrase not in result.output


# ---------------------------------------------------------------- item 2: feedback in another namespace
def test_feedback_in_another_namespace_is_refused_before_training_with_the_option(tmp_path):
    log = _text_log(tmp_path / "signals.txt", feedback_ns="Signals")
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 2
    assert "'Signals', named like feedback" in result.output
    assert "--feedback-namespace Signals" in result.output
    assert "CB: " not in result.output  # nothing was trained
    fixed = _replay(log, "--model-dir", tmp_path / "m", "--feedback-namespace", "Signals")
    assert fixed.exit_code == 0, fixed.output
    assert "with feedback: 60" in fixed.output and "-q SA" not in _cb_line(fixed.output)
    assert "|Signals click:" in fixed.output  # the per-feedback rows name it


def test_feedback_in_a_lowercase_namespace_is_named_too(tmp_path):
    log = _text_log(tmp_path / "lower.txt", feedback_ns="feedback")
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 2 and "--feedback-namespace feedback" in result.output


def test_no_feedback_anywhere_lists_the_namespaces_seen(tmp_path):
    log = _text_log(tmp_path / "none.txt", feedback_ns="Feedback")
    log.write_text(log.read_text().replace(" |Feedback click", ""))
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    note = next(line for line in result.output.splitlines() if "no event carried feedback" in line)
    assert "The context namespaces seen: 'User', 'x'" in note
    assert "--feedback-namespace NAME" in note and "--feedback-from-cost" in note


def _dsjson_log(path, n=200, where="c"):
    import json

    lines = []
    for i in range(n):
        c = {"User": {"id": f"u{i % 5}"}, "_multi": [{"A": {"id": j}} for j in range(3)]}
        obj = {"_label_cost": 0, "_label_probability": 1 / 3, "_labelIndex": i % 3, "a": [1, 2, 3],
               "p": [1 / 3] * 3, "EventId": f"e{i}"}
        if i % 4 == 0 and where == "c":
            c["Feedback"] = {"click": 1}
        elif i % 4 == 0:
            c["Reactions"] = {"click": 1}
        lines.append(json.dumps({**obj, "c": c}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_dsjson_feedback_in_the_context_is_feedback(tmp_path):
    log = _dsjson_log(tmp_path / "fb.dsjson")
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "with feedback: 50" in result.output and "|Feedback click:1" in result.output
    assert "-q FA" not in _cb_line(result.output)


def test_dsjson_feedback_under_another_name_is_refused_with_the_option(tmp_path):
    log = _dsjson_log(tmp_path / "r.dsjson", where="other")
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 2 and "--feedback-namespace Reactions" in result.output
    fixed = _replay(log, "--model-dir", tmp_path / "m", "--feedback-namespace", "Reactions")
    assert fixed.exit_code == 0 and "with feedback: 50" in fixed.output, fixed.output


# ---------------------------------------------------------------- item 5: a failed replay says what to run next
def test_a_failed_replay_says_how_to_go_on_and_that_works(tmp_path):
    log = _text_log(tmp_path / "bad.txt", n=40)
    text = log.read_text().split("\n\n")
    text[5] = text[5].replace("0.333", "1.5", 1)
    log.write_text("\n\n".join(text))
    args = [log, "--model-dir", tmp_path / "m"]
    failed = _replay(*args)
    assert failed.exit_code == 2
    assert "probability: 1.5 is outside (0, 1]" in failed.output
    assert "--resume --on-bad-line skip to pass over bad lines" in failed.output
    again = _replay(*args)  # the same command again: refused, and told how to go on
    assert again.exit_code == 2 and "holds an interrupted replay (trained on 5 events" in again.output
    assert "--resume goes on from where it stopped" in again.output
    resumed = _replay(*args, "--resume", "--on-bad-line", "skip")
    assert resumed.exit_code == 0, resumed.output
    assert "events: 39  bad lines skipped: 1" in resumed.output


# ---------------------------------------------------------------- item 6: learn_many names the row
def _rows(n=40):
    import numpy as np

    return [{"context": {"User": {"id": f"u{i % 4}"}}, "actions": [{"A": {"id": j}} for j in range(3)],
             "action": i % 3, "prob": 1 / 3, "feedback": {"Feedback": {"click": 1}} if i % 3 == 0 else np.nan}
            for i in range(n)]


@pytest.mark.parametrize("ik_process", [False, True])
def test_learn_many_names_the_row_of_a_bad_event_and_keeps_the_rows_before(ik_process):
    rows = _rows()
    rows[25]["prob"] = 1.5
    frame = pd.DataFrame(rows)
    frame.index += 1000
    model = IGLP(3, seed=0)
    with pytest.raises(ValueError, match=r"^row 25 \(index 1025\): `prob` must be in \(0, 1\], got 1.5"):
        model.learn_many(frame, ik_process=ik_process)
    assert model.n_learned == 25
    with pytest.raises(ValueError, match=r"^event 25: `prob`"):
        IGLP(3, seed=0).learn_many(rows)


def test_learn_many_takes_nan_feedback_as_none_and_names_the_columns_it_needs():
    rows = _rows()
    with_nan = IGLP(3, seed=0).learn_many(pd.DataFrame(rows))
    as_none = IGLP(3, seed=0).learn_many([{**r, "feedback": None if i % 3 else r["feedback"]}
                                          for i, r in enumerate(rows)])
    assert list(with_nan) == list(as_none) and len(with_nan) == 40
    with pytest.raises(ValueError, match=r"no column\(s\) \['prob'\].*needed: \['context', 'actions', 'action', 'prob'\]"):
        IGLP(3, seed=0).learn_many(pd.DataFrame(rows)[["context", "actions", "action"]])


# ---------------------------------------------------------------- smaller ones
def test_labelled_dsjson_has_no_negative_zero_and_the_model_dir_no_leftovers(tmp_path):
    log = _dsjson_log(tmp_path / "fb.dsjson")
    assert _replay(log, "--model-dir", tmp_path / "m").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".") and p.name != ".lock") == []
    result = CliRunner().invoke(main, ["label", str(log), "--model-dir", str(tmp_path / "m"),
                                       "--out", str(tmp_path / "out.dsjson")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out.dsjson").read_text()
    assert '"_label_cost": 0.0' in text.replace('":0.0', '": 0.0') and "-0.0" not in text


# ---------------------------------------------------------------- item 8: the same log twice
def test_continue_refuses_a_log_the_model_has_learned_whatever_its_name(tmp_path):
    day1 = _text_log(tmp_path / "day1.txt", n=60)
    assert _replay(day1, "--model-dir", tmp_path / "m").exit_code == 0
    before = (tmp_path / "m" / "cb.model").read_bytes()
    copy = tmp_path / "copy.txt"
    copy.write_bytes(day1.read_bytes())
    for log in (day1, copy):
        result = _replay(log, "--model-dir", tmp_path / "m", "--continue")
        assert result.exit_code == 2
        assert f"has already learned from {log} (learned as 'day1.txt'" in result.output and "--repeat" in result.output
    assert (tmp_path / "m" / "cb.model").read_bytes() == before
    day2 = _text_log(tmp_path / "day2.txt", n=50)
    assert _replay(day2, "--model-dir", tmp_path / "m", "--continue").exit_code == 0
    again = _replay(day2, "--model-dir", tmp_path / "m", "--continue")  # remembered over continues too
    assert again.exit_code == 2 and "day2.txt" in again.output
    forced = _replay(copy, "--model-dir", tmp_path / "m", "--continue", "--repeat")
    assert forced.exit_code == 0 and "continued a model trained on 110 events" in forced.output


# ---------------------------------------------------------------- item 9: encodings
@pytest.mark.parametrize("blank_between", [False, True])
def test_utf8_files_with_byte_order_marks_concatenated_read_as_both(tmp_path, blank_between):
    one = _text_log(tmp_path / "one.txt", n=30)
    bom = b"\xef\xbb\xbf" + one.read_bytes().rstrip(b"\n") + b"\n" + (b"\n" if blank_between else b"")
    log = tmp_path / "both.txt"
    log.write_bytes(bom + bom)
    result = _replay(log, "--model-dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "events: 60  bad lines skipped: 0" in result.output
    dsjson = _dsjson_log(tmp_path / "one.dsjson", n=10)
    both = tmp_path / "both.dsjson"
    both.write_bytes((b"\xef\xbb\xbf" + dsjson.read_bytes()) * 2)
    result = _replay(both, "--model-dir", tmp_path / "m2")
    assert result.exit_code == 0 and "events: 20  bad lines skipped: 0" in result.output, result.output


@pytest.mark.parametrize("encoding, named, command", [
    ("utf-16", "UTF-16LE", "iconv -f UTF-16 -t UTF-8"),
    ("utf-16-le", "UTF-16LE", "iconv -f UTF-16LE -t UTF-8"),
    ("utf-32", "UTF-32LE", "iconv -f UTF-32 -t UTF-8"),
])
def test_a_utf16_or_utf32_log_is_named_with_the_command_that_converts_it(tmp_path, encoding, named, command):
    import shutil
    import subprocess

    text = _text_log(tmp_path / "u8.txt", n=5).read_text()
    log = tmp_path / "u.txt"
    log.write_bytes(text.encode(encoding))
    result = _replay(log, "--model-dir", tmp_path / "m", "--on-bad-line", "skip")
    assert result.exit_code == 2
    assert f"u.txt:1: file: the log is {named}" in result.output and f"{command} {log} > {log}.utf8" in result.output
    assert "control character" not in result.output
    if shutil.which("iconv"):
        converted = subprocess.run(command.split() + [str(log)], capture_output=True, check=True).stdout
        assert converted.decode() == text  # the command given does convert it


# ---------------------------------------------------------------- item 10: truncated and piped logs
def _bad_text_log(tmp_path, n=40):
    log = _text_log(tmp_path / "bad.txt", n=n)
    text = log.read_text().split("\n\n")
    text[5] = text[5].replace("0.333", "1.5", 1)
    log.write_text("\n\n".join(text))
    return log


def test_errors_on_standard_input_name_it_and_say_how_to_go_on(tmp_path):
    log = _bad_text_log(tmp_path)
    result = CliRunner().invoke(main, ["replay", "-", "--model-dir", str(tmp_path / "m")], input=log.read_text())
    assert result.exit_code == 2
    assert "error: <stdin>:29: probability: 1.5" in result.output and "iglp-vw-stdin" not in result.output
    assert "--overwrite" in result.output and "--resume" not in result.output  # standard input cannot be resumed
    skipped = CliRunner().invoke(main, ["replay", "-", "--model-dir", str(tmp_path / "m2"), "--on-bad-line", "skip"],
                                 input=log.read_text())
    assert skipped.exit_code == 0 and "skipped: <stdin>:29" in skipped.output and "iglp-vw-stdin" not in skipped.output


def test_predict_leaves_no_partial_output_and_evaluate_skips_bad_lines(tmp_path):
    good = _text_log(tmp_path / "good.txt", n=40)
    assert _replay(good, "--model-dir", tmp_path / "m").exit_code == 0
    bad = _bad_text_log(tmp_path)
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(main, ["predict", str(bad), "--model-dir", str(tmp_path / "m"), "--out", str(out)])
    assert result.exit_code == 2 and "bad.txt:29" in result.output
    assert not out.exists() and not list(tmp_path.glob("scores.jsonl*"))
    result = CliRunner().invoke(main, ["predict", str(bad), "--model-dir", str(tmp_path / "m"), "--out", str(out),
                                       "--on-bad-line", "skip"])
    assert result.exit_code == 0 and len(out.read_text().splitlines()) == 39
    failed = CliRunner().invoke(main, ["evaluate", str(bad), "--model-dir", str(tmp_path / "m"), "--bootstrap", "20"])
    assert failed.exit_code == 2 and "bad.txt:29" in failed.output
    result = CliRunner().invoke(main, ["evaluate", str(bad), "--model-dir", str(tmp_path / "m"), "--bootstrap", "20",
                                       "--on-bad-line", "skip"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad events (first: " in result.output and " 39 " in result.output


# ---------------------------------------------------------------- the smaller ones of issue 24
def test_predict_names_candidates_without_an_id_feature_by_their_first_feature(tmp_path):
    log = _text_log(tmp_path / "l.txt", n=30)  # candidates are |A item0, |A item1, |A item2
    assert _replay(log, "--model-dir", tmp_path / "m").exit_code == 0
    result = CliRunner().invoke(main, ["predict", str(log), "--model-dir", str(tmp_path / "m")])
    import json

    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 30 and all(r["action_id"] == f"item{r['action']}" for r in rows)


def test_evaluate_with_signals_keeps_the_inferred_reward_first(tmp_path):
    log = _text_log(tmp_path / "l.txt", n=60)
    assert _replay(log, "--model-dir", tmp_path / "m").exit_code == 0
    result = CliRunner().invoke(main, ["evaluate", str(log), "--model-dir", str(tmp_path / "m"), "--signal", "click",
                                       "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()[1:3]]
    assert rows[0][1:3] == ["inferred", "reward"] and rows[1][1] == "click"


def test_a_text_day_continues_a_dsjson_day_with_three_states(tmp_path):
    """--states 3 on DSJSON adds _definitely_bad to the model's definitely-negative names; a text
    log the next day is the same model's options, not a mismatch naming what the user never passed."""
    assert _replay(_dsjson_log(tmp_path / "d1.dsjson"), "--model-dir", tmp_path / "m", "--states", "3").exit_code == 0
    result = _replay(_text_log(tmp_path / "d2.txt"), "--model-dir", tmp_path / "m", "--states", "3", "--continue")
    assert result.exit_code == 0, result.output
    assert "_definitely_bad" not in result.output


def test_a_numeric_dsjson_outcome_is_a_number():
    import json

    from iglp_vw.logs import _parse_dsjson_event

    obj = {"_label_cost": 0, "_label_probability": 0.5, "_labelIndex": 0, "o": [{"v": 0.8}, {"v": "like"}],
           "c": {"_multi": [{"A": {"id": 1}}, {"A": {"id": 2}}]}}
    event = _parse_dsjson_event("f", json.dumps(obj), 1, False)
    assert str(event.feedback) == "|v v:0.8 v=like"
