"""Random bytes and mutated valid events never get past the readers and the replay as anything
but the package's own errors (and never reach one of VW's crash paths: a crash would kill
this process)."""

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iglp_vw import IGLP
from iglp_vw.logs import Event, LogError, UnsupportedLogError, read_events
from iglp_vw.replay import replay

DATA = Path(__file__).resolve().parent.parent / "data"
TEXT = (DATA / "example.txt").read_text()
DSJSON = (DATA / "example.dsjson").read_text()
ALPHABET = st.sampled_from(list("|:{}[]\",' \n\t0123456789.-eE_abcsharedo") + ["\x00", "é", "nan", "inf", "1e999"])

# IGLP_FUZZ_EXAMPLES=5000 for a deeper run than CI's.
FUZZ = settings(max_examples=int(os.environ.get("IGLP_FUZZ_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(text: str, edits) -> str:
    chars = list(text)
    for kind, pos, token in edits:
        if not chars:
            break
        i = pos % len(chars)
        if kind == 0:
            del chars[i]
        elif kind == 1:
            chars.insert(i, token)
        else:
            chars[i] = token
    return "".join(chars)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), ALPHABET), min_size=1, max_size=6)


def _read_all(path, fmt):
    """Every item is an Event or a LogError; the only exception is the CCB/slates refusal."""
    try:
        items = list(read_events(path, fmt))
    except UnsupportedLogError:
        return []
    except LogError as err:  # the whole file is unreadable (a broken gzip stream)
        assert err.field == "file"
        return []
    assert all(isinstance(x, (Event, LogError)) for x in items)
    for x in items:
        if isinstance(x, Event):
            assert 0 <= x.action < len(x.actions) and 0 < x.prob <= 1
    return items


def _through_vw(events):
    """Every event the readers accept goes through real VW workspaces (IK and CB) without crashing."""
    for event in events:
        if not isinstance(event, Event):
            continue
        learner = IGLP(max(2, len(event.actions)), seed=0)
        try:
            learner.learn(event.context, event.actions, event.action, event.prob, event.feedback)
            learner.predict(event.context, event.actions)
        except ValueError:
            pass  # VW's parser refused it, as a Python error


@FUZZ
@given(data=st.binary(max_size=600), fmt=st.sampled_from([None, "text", "dsjson"]))
def test_random_bytes(tmp_path, data, fmt):
    path = tmp_path / "random.log"
    path.write_bytes(data)
    _through_vw(_read_all(path, fmt))


@FUZZ
@given(edits=EDITS, source=st.sampled_from(["text", "dsjson"]))
def test_mutated_events(tmp_path, edits, source):
    path = tmp_path / "mutated.log"
    path.write_text(_mutate(TEXT if source == "text" else DSJSON, edits))
    _through_vw(_read_all(path, source))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.none(), st.booleans(), st.integers(-5, 20), st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8), st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
    key=st.sampled_from(["_labelIndex", "_label_Action", "_label_probability", "_label_cost", "o", "c", "a", "p", "_skipLearn"]),
)
def test_mutated_dsjson_fields(tmp_path, value, key):
    obj = json.loads(DSJSON.splitlines()[0])
    obj[key] = value
    path = tmp_path / "field.json"
    path.write_text(DSJSON.splitlines()[1] + "\n" + json.dumps(obj) + "\n")
    items = _read_all(path, "dsjson")
    assert isinstance(items[0], Event)  # the valid neighbour survives
    _through_vw(items)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=EDITS, source=st.sampled_from(["text", "dsjson"]))
def test_replay_on_mutated_logs_only_raises_package_errors(tmp_path_factory, edits, source):
    """The whole replay (IK in-process, CB in VW's driver) with --on-bad-line skip."""
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "mutated.log"
    base = TEXT if source == "text" else DSJSON
    path.write_text(base + _mutate(base, edits))
    try:
        summary = replay([path], tmp / "m", fmt=source, on_bad_line="skip", learner_params={"num_actions": 4})
    except UnsupportedLogError:
        return
    assert summary.events >= 3  # the intact copy is all learned
