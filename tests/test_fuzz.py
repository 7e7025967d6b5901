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
ALPHABET = st.sampled_from(
    list("|:{}[]\",' \n\t0123456789.-eE_abcsharedo")
    + ["\x00", "é", "nan", "inf", "1e999", "\r", "\x0c", "\u2028", "\ufeff", "\\n", "\n\n", "\n'save_fuzz|\n",
       "'save_fuzz|", "9" * 400, "[" * 40, "{\"a\":" * 40, "\\u0000"]
)

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
            if x.action is None:  # an event without a label (VW reads it, for prediction only)
                assert x.prob is None and len(x.actions) >= 1
            else:
                assert 0 <= x.action < len(x.actions) and 0 < x.prob <= 1
    return items


def _through_vw(events):
    """Every event the readers accept goes through real VW workspaces (IK and CB, both IK kinds)
    without crashing, and never writes a file (a `'save_` command would)."""
    for event in events:
        if not isinstance(event, Event):
            continue
        for ik_model in ("slot", "features"):
            learner = IGLP(max(2, len(event.actions)), seed=0, ik_model=ik_model)
            try:
                if event.action is not None:
                    learner.learn(event.context, event.actions, event.action, event.prob, event.feedback)
                learner.predict(event.context, event.actions)
                if event.action is not None:
                    learner.infer_reward(event.context, len(event.actions), event.action, event.prob,
                                         event.feedback, actions=event.actions)
            except ValueError:
                pass  # VW's parser refused it, as a Python error
    assert not any(Path(p).exists() for p in ("fuzz", "save_fuzz"))


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


@FUZZ
@given(data=st.binary(max_size=400), cut=st.integers(0, 10_000))
def test_truncated_and_corrupt_gzip(tmp_path, data, cut):
    """A gzip file cut anywhere, or with random bytes after a valid start, reads to where it stops."""
    import gzip

    whole = gzip.compress((TEXT * 3).encode() + data)
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: cut % (len(whole) + 1)] + data[: cut % 7])
    _through_vw(_read_all(path, None))


VALUES = st.one_of(
    st.text(max_size=12), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.sampled_from(["u\n\n'save_fuzz|\n", "\r\n", "|:", "\x00", "\ud800"]),
)
NAMES = st.one_of(st.text(max_size=6), st.sampled_from(["", "\n", "'save_fuzz|", "|", ":"]))


@FUZZ
@given(
    context=st.dictionaries(NAMES, st.dictionaries(NAMES, VALUES, max_size=3), max_size=3),
    actions=st.lists(st.dictionaries(NAMES, st.dictionaries(NAMES, VALUES, max_size=2), max_size=2), min_size=1,
                     max_size=4),
    feedback=st.one_of(st.none(), st.dictionaries(NAMES, st.dictionaries(NAMES, VALUES, max_size=2), max_size=2),
                       st.text(max_size=20)),
    text=st.text(max_size=30),
)
def test_api_with_any_values(context, actions, feedback, text):
    """The API's dict features (any names and values) and VW text (any string): a pmf or a
    ValueError/TypeError, never a crash, never a file."""
    learner = IGLP(4, seed=0)
    for ctx in (context, text):
        try:
            pmf = learner.predict(ctx, actions)
            assert len(pmf) == len(actions)
            learner.learn(ctx, actions, 0, pmf[0] or 0.5, feedback)
        except (ValueError, TypeError):
            pass
    assert not Path("save_fuzz").exists() and not Path("fuzz").exists()
