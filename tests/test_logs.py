import gzip
import json
from pathlib import Path

import pytest

from iglp_vw.logs import (
    NO_FEEDBACK,
    Event,
    LogError,
    UnsupportedLogError,
    detect_format,
    format_dsjson_event,
    format_text_event,
    read_events,
)

DATA = Path(__file__).resolve().parent.parent / "data"

# VW's own IGL test data (test/train-sets/igl_3states.dsjson): "o" before "c", 0-based "a".
VW_IGL_EVENT = (
    '{"_label_cost": 0, "_label_probability": 0.25, "_label_Action": 4, "_labelIndex": 3, "o": [{"v": {"v=none": 1}, '
    '"_definitely_bad": false}], "a": [0, 1, 2, 3], "c": {"User": {"user=Anna": 1, "time_of_day=afternoon": 1}, '
    '"_multi": [{"Action": {"action=politics": 1}}, {"Action": {"action=sports": 1}}, {"Action": {"action=music": 1}}, '
    '{"Action": {"action=food": 1}}]}, "p": [0.25, 0.25, 0.25, 0.25], "_original_label_cost": 0}'
)


def test_text_example_events():
    events = list(read_events(DATA / "example.txt"))
    assert [type(e) for e in events] == [Event] * 3
    first, second, third = events
    assert first.context == "|User id=u17 |x f0:0.31 f5:1"  # the feedback namespace is out of the context
    assert first.feedback == "|Feedback word=w42" and first.has_feedback
    assert (first.action, first.prob, first.cost, first.line, first.end_line) == (1, 0.25, 0.0, 1, 5)
    assert first.actions == [f"|Action id={k}" for k in range(4)]
    assert (second.action, second.prob, second.cost, second.feedback) == (0, 0.5, -1.0, "|Feedback like")
    assert third.feedback == NO_FEEDBACK and not third.has_feedback


def test_dsjson_example_events():
    events = list(read_events(DATA / "example.dsjson"))
    assert [type(e) for e in events] == [Event] * 3
    first, second, third = events
    # Features named as VW's JSON parser names them (key + string value).
    assert first.context == "|User idu17 |x f0:0.31 f5:1"
    assert first.actions[1] == "|Action id1" and first.feedback == "|v wordw42"
    assert (first.action, first.prob, first.pmf) == (1, 0.25, [0.25] * 4)
    # Two outcomes stay two feedback features; "o" after "c" and extra fields are fine.
    assert second.feedback == "|v dislike:1 comment:1 _definitely_bad"
    assert second.pmf == [0.5, 0.2, 0.2, 0.1] and second.cost == -1.0
    assert third.feedback == NO_FEEDBACK and not third.has_feedback


def test_vw_igl_dsjson_and_label_action_fallback(tmp_path):
    obj = json.loads(VW_IGL_EVENT)
    del obj["_labelIndex"]
    path = tmp_path / "igl.json"
    path.write_text(VW_IGL_EVENT + "\n" + json.dumps(obj) + "\n")
    a, b = read_events(path)
    assert a.action == b.action == 3 and a.pmf == [0.25] * 4
    assert a.context == "|User user=Anna:1 time_of_day=afternoon:1" and a.feedback == "|v v=none:1"


def test_gzip_and_detection(tmp_path):
    gz = tmp_path / "log.anything"
    gz.write_bytes(gzip.compress((DATA / "example.dsjson").read_bytes()))
    assert detect_format(gz) == "dsjson"
    assert [e.action for e in read_events(gz)] == [1, 0, 3]
    assert detect_format(DATA / "example.txt") == "text"


def test_skip_lines_resumes_after_an_event():
    events = list(read_events(DATA / "example.txt"))
    rest = list(read_events(DATA / "example.txt", skip_lines=events[0].end_line))
    assert [e.line for e in rest] == [7, 13]


def test_ccb_and_slates_are_refused(tmp_path):
    path = tmp_path / "ccb.json"
    path.write_text('{"c": {"_multi": [{"a": {"x": 1}}], "_slots": [{"_id": "s"}]}, "_outcomes": []}\n')
    with pytest.raises(UnsupportedLogError, match="CCB or slates"):
        list(read_events(path))


def test_skip_learn_events_are_left_out(tmp_path):
    obj = json.loads(VW_IGL_EVENT)
    obj["_skipLearn"] = True
    path = tmp_path / "s.json"
    path.write_text(json.dumps(obj) + "\n" + VW_IGL_EVENT + "\n")
    assert [e.line for e in read_events(path)] == [2]


TEXT_OK = "shared |User id=u1 |Feedback like\n|A a\n0:0:0.5 |A b\n"


@pytest.mark.parametrize(
    "text, line, field",
    [
        ("shared |User id=u1\n0:0:1.5 |A a\n|A b\n", 2, "probability"),  # outside (0, 1]
        ("shared |User id=u1\n0:0:0 |A a\n|A b\n", 2, "probability"),
        ("shared |User id=u1\n0:0:x |A a\n|A b\n", 2, "probability"),
        ("shared |User id=u1\n0:0:0.5 |A a\n0:1:0.5 |A b\n", 3, "label"),  # label on two actions
        ("shared |User id=u1\n0:z:0.5 |A a\n", 2, "cost"),
        ("shared |User id=u1 f:x:y\n0:0:0.5 |A a\n", 1, "shared feature"),
        ("shared |User id=u1\n0:0:0.5 |A a:nan\n", 2, "action feature"),
        ("shared |User:abc id\n0:0:0.5 |A a\n", 1, "shared namespace User"),
        ("shared |User id=u1\n", 1, "actions"),
        ("|A a\nshared |User\n0:0:0.5 |A b\n", 2, "shared"),
    ],
)
def test_text_bad_events_name_line_and_field(tmp_path, text, line, field):
    path = tmp_path / "bad.txt"
    path.write_text(TEXT_OK + "\n" + "\n".join([""] * 0) + text + "\n" + TEXT_OK)
    events = list(read_events(path))
    assert isinstance(events[0], Event) and isinstance(events[2], Event)  # neighbours survive
    err = events[1]
    assert isinstance(err, LogError)
    assert (err.path, err.line, err.field) == (str(path), line + 4, field)
    assert str(err).startswith(f"{path}:{line + 4}: {field}: ")


GOOD = json.loads(VW_IGL_EVENT)


def _mut(**changes):
    obj = json.loads(VW_IGL_EVENT)
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj)


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"c": {"_multi": [', "json"),  # broken JSON
        ("[1, 2]", "json"),
        (_mut(_labelIndex=None, _label_Action="x"), "_label_Action"),  # a label that is not a number
        (_mut(_labelIndex=4), "_labelIndex"),  # action index out of range
        (_mut(_labelIndex=-1), "_labelIndex"),
        (_mut(_labelIndex="2"), "_labelIndex"),
        (_mut(_label_probability=0), "_label_probability"),
        (_mut(_label_probability=1.01), "_label_probability"),
        (_mut(_label_probability=None), "_label_probability"),
        (_mut(_label_cost="x"), "_label_cost"),
        (_mut(o=[{"v": {"v=none": 1}, "mood": "happy"}]), "o[0].mood"),  # unknown feedback field
        (_mut(o=[{"v": {"x": 1}, "_definitely_bad": "yes"}]), "o[0]._definitely_bad"),
        (_mut(o=["click"]), "o[0]"),
        (_mut(o={"v": 1}), "o"),
        (_mut(c={"User": {"a": 1}}), "c._multi"),
        (_mut(c=[1]), "c"),
        (_mut(_labelIndex=0, c={"User": {"a": [None]}, "_multi": [{"A": {"a": 1}}]}), "c.User.a[0]"),
    ],
)
def test_dsjson_bad_events_name_line_and_field(tmp_path, line, field):
    path = tmp_path / "bad.json"
    path.write_text("\n".join([VW_IGL_EVENT, line, VW_IGL_EVENT]) + "\n")
    events = list(read_events(path))
    assert isinstance(events[0], Event) and isinstance(events[2], Event)
    err = events[1]
    assert isinstance(err, LogError) and (err.line, err.field) == (2, field), err


def test_feedback_from_cost(tmp_path):
    obj = json.loads(VW_IGL_EVENT)
    del obj["o"]
    obj["_label_cost"] = -1
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(obj) + "\n")
    (event,) = read_events(path)
    assert event.feedback == NO_FEEDBACK and not event.has_feedback
    (event,) = read_events(path, feedback_from_cost=True)
    assert event.feedback == "|v cost=-1" and event.has_feedback


def test_writers_round_trip(tmp_path):
    for name, writer in (("example.txt", format_text_event), ("example.dsjson", format_dsjson_event)):
        events = list(read_events(DATA / name))
        out = tmp_path / name
        out.write_text("".join(writer(e, cost=-1.0) for e in events))
        again = list(read_events(out))
        assert [(e.context, e.actions, e.action, e.prob) for e in again] == [
            (e.context, e.actions, e.action, e.prob) for e in events
        ]
        assert all(e.cost == -1.0 for e in again)
    # DSJSON: the logged cost kept, "o" written before "c" (VW crashes the other way round).
    line = format_dsjson_event(next(iter(read_events(DATA / "example.dsjson", skip_lines=1))), cost=-1.0)
    assert line.index('"o"') < line.index('"c"')
    assert json.loads(line)["_original_label_cost"] == -1 and json.loads(line)["_label_cost"] == -1.0


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such log file"):
        list(read_events("/nonexistent/log.txt"))


def test_events_without_a_label_are_read_to_be_scored(tmp_path):
    """As VW reads them: an ADF event with no labelled action is a test example."""
    text = tmp_path / "unlabelled.txt"
    text.write_text("shared |User id=u1\n|A a\n|A b\n\n" + TEXT_OK)
    first, second = list(read_events(text))
    assert first.action is None and first.prob is None and len(first.actions) == 2
    assert isinstance(second, Event) and second.action is not None
    ds = tmp_path / "unlabelled.json"
    ds.write_text(_mut(_labelIndex=None, _label_Action=None, _label_probability=None) + "\n")
    (event,) = list(read_events(ds))
    assert event.action is None and len(event.actions) == 4
