"""Readers of logged bandit events: VW text multiline ADF and VW's DSJSON (gzip accepted).

Both give the same :class:`Event`: the context and the actions as VW text, the
logged action (0-based) and its logging probability, and the feedback as VW text.
A malformed event becomes a :class:`LogError` naming file, line and field; the
readers yield it in the event's place (they never raise for one bad event), so a
caller decides whether to stop or to skip it, and no valid event around it is lost.
Nothing read here reaches VW before it has been checked, so no log can reach one
of VW's crash paths.

VW text ADF (what ``--cb_explore_adf`` reads)::

    shared |User id=u17 |x f0:0.31 |Feedback like
    |Action id=0
    0:0:0.1 |Action id=1
    |Action id=2
    <blank line>

The labelled line is the action shown, ``index:cost:probability``; the feedback
is the shared line's ``Feedback`` namespace (``feedback_namespace``), taken out of
the context. No feedback namespace means "no feedback" (:data:`NO_FEEDBACK`).

DSJSON (Decision Service logs, the input of VW's ``--dsjson``; also VW's own ``--json``
ADF lines, whose context is the object itself and whose labels are ``_label_Cost`` and
``_label_Probability``): one JSON object per line, ``c`` the context with ``_multi`` the
actions, ``_labelIndex`` (0-based; else ``_label_Action``, 1-based) the action shown,
``_label_probability`` its probability,
``o`` the outcomes, each ``{"v": {...}, "_definitely_bad": bool}`` as for VW's
``--experimental_igl``. Features become VW text as VW's JSON parser names them: a
string value ``"id": "u17"`` is the feature ``idu17``, a number ``"f": 0.3`` is
``f:0.3``, ``true`` is ``f``, a nested object is a namespace; ``_``-prefixed keys
are ignored (``_text`` is split into words).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import shlex
import zlib
from pathlib import Path
from typing import Iterator, Optional, Union

from .vw import VWText, VWTexts, adf_lines, cb_label, escape, feature_problem

__all__ = [
    "Event",
    "LogError",
    "UnsupportedLogError",
    "NO_FEEDBACK",
    "DEFINITELY_BAD",
    "detect_format",
    "open_log",
    "read_events",
    "format_text_event",
    "format_dsjson_event",
    "check_action_count",
]

# The feedback of an event that carries none: "no feedback" is itself a feedback value.
NO_FEEDBACK = VWText("|Feedback none")
# Feature added to an event's feedback when a DSJSON outcome says ``"_definitely_bad": true``.
DEFINITELY_BAD = "_definitely_bad"

FORMATS = ("text", "dsjson")


class LogError(ValueError):
    """A malformed event: ``path:line: field: message``."""

    def __init__(self, path, line: int, field: str, message: str):
        self.path, self.line, self.field, self.message = str(path), int(line), field, message
        super().__init__(f"{self.path}:{self.line}: {field}: {message}")

    def __reduce__(self):  # picklable (the replay's reader process sends them)
        return (type(self), (self.path, self.line, self.field, self.message))


class UnsupportedLogError(LogError):
    """An event of a kind this tool does not learn from (CCB, slates): the whole log is refused,
    whatever the bad-line policy (the models as of the last good event are kept)."""


class Event:
    """One logged decision.

    ``context`` and ``actions`` are VW text (namespaces, no labels; checked by the
    readers), ``action`` the index of the action shown, ``prob`` its logging
    probability (both ``None`` for an event without a label: VW scores such an event and
    learns nothing from it, and so do the replay and the evaluation), ``feedback`` VW text. ``line``/``end_line``: its first and last line
    in ``path``; ``source``: the index of ``path`` in a :class:`~iglp_vw.stream.LogStream`.
    ``event_id``: DSJSON's ``EventId`` when there is one. ``raw`` keeps what the
    writers need to write the event back (the parsed JSON object; ``None`` for text).
    """

    __slots__ = ("path", "line", "context", "actions", "action", "prob", "feedback", "cost", "has_feedback",
                 "pmf", "raw", "end_line", "source", "event_id")

    def __init__(self, path, line, context, actions, action, prob, feedback, cost=None, has_feedback=True,
                 pmf=None, raw=None, end_line=0, source=0, event_id=None):
        self.path, self.line, self.context, self.actions = path, line, context, actions
        self.action, self.prob, self.feedback, self.cost = action, prob, feedback, cost
        self.has_feedback, self.pmf, self.raw, self.end_line = has_feedback, pmf, raw, end_line
        self.source, self.event_id = source, event_id

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __reduce__(self):
        # Plain strings and a plain tuple: cheap to pickle (the replay's reader process sends
        # events); the texts are marked checked again on the way in.
        fields = list(self._fields())
        fields[2], fields[3], fields[6] = str(self.context), list(self.actions), str(self.feedback)
        return (_checked_event, tuple(fields))

    def __eq__(self, other) -> bool:
        return isinstance(other, Event) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return (f"Event({self.path}:{self.line}, action={self.action}, prob={self.prob}, "
                f"{len(self.actions)} actions, feedback={self.feedback!r})")

    def replace(self, **changes) -> "Event":
        """A copy with some fields changed."""
        fields = dict(zip(self.__slots__, self._fields()))
        fields.update(changes)
        return Event(**fields)


def _checked_event(path, line, context, actions, *rest) -> Event:
    """An event read back from a pickle: its texts were checked by the reader that made it."""
    return Event(path, line, VWText(context), VWTexts(actions), rest[0], rest[1], VWText(rest[2]), *rest[3:])


# Limits that keep one event from taking the process's memory or time: an event with more
# candidates than MAX_ACTIONS, or a text event longer than MAX_EVENT_CHARS (no blank line to
# end it), is refused with a LogError naming its line.
MAX_ACTIONS = 1024
MAX_EVENT_CHARS = 16 << 20
# JSON nesting beyond this is refused (a nested object is a namespace; VW's own logs use 1-2).
MAX_JSON_DEPTH = 32


def check_action_count(path, line: int, count: int, num_actions: Optional[int]) -> Optional[LogError]:
    """A :class:`LogError` when an event offers ``count`` actions, more than a model of ``num_actions``
    slots knows (``None``: a model of any number of actions)."""
    if num_actions is not None and count > num_actions:
        return LogError(path, line, "actions", f"{count} actions, more than the model's {num_actions} (--num-actions)")
    return None


class _GzipStream(io.RawIOBase):
    """A gzip file's decompressed bytes, multi-member, that ends cleanly where a truncated or
    corrupt file stops (``truncated`` says why), keeping every byte decompressed before: Python's
    ``gzip`` raises instead and loses the block it was reading."""

    def __init__(self, path):
        self._fh = open(path, "rb")
        self._z = zlib.decompressobj(31)
        self._started = False  # the current member has had input
        self._pending = b""
        self._pos = 0
        self.truncated: Optional[str] = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while self._pos >= len(self._pending):
            if self._z is None:
                return 0
            if self._z.eof:  # the member ended: another may follow
                self._z, self._started = zlib.decompressobj(31), False
            data = self._z.unconsumed_tail or self._fh.read(1 << 16)
            if not data:
                if self._started:
                    self.truncated = "the gzip stream ends before its end marker (a truncated file)"
                self._z = None
                return 0
            self._pending, self._pos = self._decompress(data), 0
        n = min(len(buf), len(self._pending) - self._pos)
        buf[:n] = self._pending[self._pos:self._pos + n]
        self._pos += n
        return n

    def _decompress(self, data: bytes) -> bytes:
        out = []
        try:
            self._started = True
            out.append(self._z.decompress(data, 1 << 20))
            while self._z.eof and self._z.unused_data:  # the next member starts in this chunk
                rest = self._z.unused_data
                self._z = zlib.decompressobj(31)
                out.append(self._z.decompress(rest, 1 << 20))
        except zlib.error as err:
            self.truncated = f"the gzip stream is corrupt ({err})"
            self._z = None
        return b"".join(out)

    def close(self) -> None:
        self._fh.close()
        super().close()


def open_log(path) -> io.TextIOBase:
    """Open a log as text, gunzipping when it is gzip (by its magic bytes, not its name).

    A UTF-8 byte-order mark is dropped. A truncated gzip file reads up to where it stops;
    :func:`truncation` then says so.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such log file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a log file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        raw = io.BufferedReader(_GzipStream(path), 1 << 20)
        _check_encoding(path, raw.peek(4)[:4], gzipped=True)
        return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace")
    _check_encoding(path, head)
    return open(path, "r", encoding="utf-8-sig", errors="replace")


# Byte-order marks of the encodings a log might come in that VW (and this reader) do not read.
_OTHER_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"), (b"\xff\xfe", "UTF-16LE"),
               (b"\xfe\xff", "UTF-16BE"))


def _check_encoding(path, head: bytes, gzipped: bool = False) -> None:
    """Refuse a log in UTF-16 or UTF-32 (by its byte-order mark, or NUL bytes at its start), saying
    how to convert it, rather than reading it as UTF-8 and stopping at its first NUL."""
    name = next((enc for bom, enc in _OTHER_BOMS if head.startswith(bom)), None)
    if name is None and b"\x00" in head:
        name = "UTF-16LE" if head[1:2] == b"\x00" else "UTF-16BE" if head[:1] == b"\x00" else None
        if name is None:
            return  # a NUL further in: the reader names its line
    if name is not None:
        has_bom = any(head.startswith(bom) for bom, _ in _OTHER_BOMS)
        fix = f"iconv -f {name[:-2] if has_bom else name} -t UTF-8"  # with a BOM iconv reads the byte order
        src, out = shlex.quote(str(path)), shlex.quote(str(path).removesuffix(".gz") + ".utf8")
        fix = f"gzip -dc {src} | {fix} > {out}" if gzipped else f"{fix} {src} > {out}"
        raise UnsupportedLogError(
            path, 1, "file", f"the log is {name} (by its first bytes {head.hex(' ')}); VW logs are UTF-8: convert "
            f"it first, e.g. {fix}")


def truncation(fh) -> Optional[str]:
    """Why a log opened by :func:`open_log` stopped early (a truncated gzip stream), or ``None``."""
    raw = getattr(getattr(fh, "buffer", None), "raw", None)
    return getattr(raw, "truncated", None)


def detect_format(path) -> str:
    """``"dsjson"`` when the first non-blank character is ``{``, else ``"text"``."""
    with open_log(path) as fh:
        try:
            for line in fh:
                stripped = line.strip()
                if stripped:
                    return "dsjson" if stripped.startswith("{") else "text"
        except (OSError, EOFError) as err:
            raise LogError(path, 1, "file", f"cannot be read: {err}") from None
    return "text"


def read_events(
    path,
    fmt: Optional[str] = None,
    feedback_namespace: str = "Feedback",
    feedback_from_cost: bool = False,
    skip_lines: int = 0,
    max_actions: int = MAX_ACTIONS,
) -> Iterator[Union[Event, LogError]]:
    """Yield the events of one log, a :class:`LogError` in place of each bad one.

    ``fmt``: ``"text"``, ``"dsjson"`` or ``None`` to detect it. ``skip_lines``:
    resume after that many lines (a checkpoint's position). ``feedback_from_cost``:
    for logs that carry only a cost (Decision Service ``_label_cost``, or the text
    label's cost), the logged cost is the feedback value (``|Feedback cost=-1``) of
    events that have no other feedback. ``max_actions``: an event with more
    candidates is a :class:`LogError` (its time and memory grow with them).
    """
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {fmt!r}")
    reader = _read_text if fmt == "text" else _read_dsjson
    with open_log(path) as fh:
        try:
            yield from reader(str(path), fh, feedback_namespace, feedback_from_cost, skip_lines, max_actions)
        except (OSError, EOFError) as err:  # the file could not be read
            yield LogError(path, 0, "file", f"cannot be read to the end: {err}")


# ---------------------------------------------------------------------------- text


# Characters no VW text line may hold (tab and the newlines that separate lines aside).
_BOM_AT_LINE = re.compile("\n\ufeff")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _check_features(path, line_no, text: str, where: str) -> Optional[LogError]:
    """Check VW text features (``|ns[:w] name[:value] ...``) so VW never sees a malformed one."""
    problem = feature_problem(text)
    return None if problem is None else LogError(path, line_no, f"{where} {problem[0]}", problem[1])


def _split_label(line: str):
    """``'0:1:0.5 tag|Action a'`` -> ``('0:1:0.5', '|Action a')``: the label and the features, the
    example's tag (VW: the label area's last word when it touches the ``|`` or starts with
    ``'``) dropped, as it says nothing iglp-vw reads."""
    bar = line.find("|")
    area, feats = (line, "") if bar < 0 else (line[:bar], line[bar:].rstrip())
    words = area.split()
    if words and bar >= 0 and (words[-1].startswith("'") or not area[-1:].isspace()):
        words = words[:-1]
    elif words and words[-1].startswith("'"):
        words = words[:-1]
    return " ".join(words), feats


def _parse_text_event(path, lines, first_line, feedback_namespace, feedback_from_cost) -> Union[Event, LogError]:
    shared = None
    start = 0
    if lines[0].startswith("shared"):
        head, shared = _split_label(lines[0][len("shared"):])
        if head:
            return LogError(path, first_line, "shared", f"unexpected {head!r} before the shared features")
        start = 1
    if start == len(lines):
        return LogError(path, first_line, "actions", "event has a shared line but no action lines")
    context_chunks, feedback_chunks = [], []
    if shared:
        err = _check_features(path, first_line, shared, "shared")
        if err:
            return err
        for chunk in shared.split("|")[1:]:
            name = chunk.split(None, 1)[0].split(":")[0] if chunk.strip() and chunk[0] not in " \t" else ""
            (feedback_chunks if name == feedback_namespace else context_chunks).append("|" + chunk.strip())
    actions, labelled, cost, prob = [], None, None, None
    for i, line in enumerate(lines[start:]):
        line_no = first_line + start + i
        if line[0] == "|":  # most action lines: no label
            if ":" in line:
                err = _check_features(path, line_no, line, "action")
                if err:
                    return err
            actions.append(line.rstrip())
            continue
        label, feats = _split_label(line)
        if label.startswith("shared"):
            return LogError(path, line_no, "shared", "a shared line must be the event's first line")
        err = _check_features(path, line_no, feats, "action")
        if err:
            return err
        if label:
            parts = label.split()[0].split(":")
            if len(parts) == 2:  # VW reads action:cost, with no probability
                return LogError(path, line_no, "probability",
                                f"label {label!r} has no logging probability (index:cost:probability)")
            if len(parts) != 3:
                return LogError(path, line_no, "label", f"{label!r} is not index:cost:probability")
            if labelled is not None:
                return LogError(path, line_no, "label", f"label on two actions (lines {first_line + start + labelled} and {line_no})")
            try:
                cost = float(parts[1])
            except ValueError:
                cost = None
            if cost is None or not math.isfinite(cost):
                return LogError(path, line_no, "cost", f"{parts[1]!r} is not a finite number")
            try:
                prob = float(parts[2])
            except ValueError:
                return LogError(path, line_no, "probability", f"{parts[2]!r} is not a number")
            if not 0 < prob <= 1:
                return LogError(path, line_no, "probability", f"{prob!r} is outside (0, 1]")
            labelled = i
        actions.append(feats)
    has_feedback = bool(feedback_chunks)
    if has_feedback:
        feedback = VWText(" ".join(feedback_chunks))
    elif feedback_from_cost and cost is not None:
        feedback = VWText(f"|{escape(feedback_namespace)} cost={cost:g}")
        has_feedback = True
    else:
        feedback = NO_FEEDBACK
    return Event(
        path, first_line, VWText(" ".join(context_chunks)), VWTexts(actions), labelled, prob, feedback, cost, has_feedback,
        end_line=first_line + len(lines) - 1,
    )


# The end of an event: a newline followed by one or more blank (or whitespace-only) lines.
_EVENT_END = re.compile(r"\n(?:[ \t]*\n)+")


def _read_text(path, fh, feedback_namespace, feedback_from_cost, skip_lines, max_actions=MAX_ACTIONS):
    # Blocks of text split into events by one regex scan, rather than a Python loop per line.
    for _ in itertools.islice(fh, skip_lines):
        pass
    line_no = skip_lines + 1  # line number where `text[pos:]` starts
    carry = ""
    skipping = False  # inside an event too long to keep, until the next blank line
    while True:
        block = fh.read(1 << 20)
        text = carry + block if carry else block
        pos = 0
        for match in _EVENT_END.finditer(text):
            piece = text[pos:match.start()]
            if skipping:
                skipping = False
            else:
                yield from _text_pieces(path, piece, line_no, feedback_namespace, feedback_from_cost, max_actions)
            line_no += piece.count("\n") + match.group().count("\n")
            pos = match.end()
        carry = text[pos:]
        if len(carry) > MAX_EVENT_CHARS:
            if not skipping:
                yield LogError(path, line_no, "event", f"no blank line ends the event within {MAX_EVENT_CHARS:,} "
                               "characters (a text ADF event ends with an empty line); skipped to the next one")
                skipping = True
            cut = max(carry.rfind("\n"), 0)  # keep what may start the blank line that ends it
            line_no += carry.count("\n", 0, cut)
            carry = carry[cut:]
        if not block:
            break
    stopped = truncation(fh)
    if stopped:
        yield LogError(path, line_no, "file", f"{stopped}: the event from this line on is incomplete and was not read")
    elif not skipping:
        yield from _text_pieces(path, carry, line_no, feedback_namespace, feedback_from_cost, max_actions)


def _text_pieces(path, piece: str, line_no: int, *args):
    """The events of ``piece`` (the text between two blank lines): one, or more where a byte-order
    mark starts a line (UTF-8 files concatenated, ``cat a b > log``: where b begins, so does an
    event, even without the blank line a's last event lacks)."""
    if "\ufeff" not in piece:
        event = _text_piece(path, piece, line_no, *args)
        if event is not None:
            yield event
        return
    starts = [0] + [m.start() + 1 for m in _BOM_AT_LINE.finditer(piece)]
    for begin, end in zip(starts, starts[1:] + [len(piece)]):
        part = piece[begin:end].lstrip("\ufeff")
        event = _text_piece(path, part, line_no + piece.count("\n", 0, begin), *args)
        if event is not None:
            yield event


def _text_piece(path, piece: str, line_no: int, feedback_namespace, feedback_from_cost, max_actions=MAX_ACTIONS):
    bad = _CONTROL.search(piece)
    if bad:
        return LogError(path, line_no + piece.count("\n", 0, bad.start()), "text",
                        f"control character U+{ord(bad.group()):04X} (VW text lines must not contain one)")
    lines = piece.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    lines = [line for line in lines[start:] if line.strip()]
    if not lines:
        return None
    if len(lines) > max_actions + 1:
        return LogError(path, line_no + start, "actions", f"{len(lines) - 1:,} action lines, more than the limit "
                        f"of {max_actions:,} (--max-actions)")
    return _parse_text_event(path, lines, line_no + start, feedback_namespace, feedback_from_cost)


def format_text_event(event: Event, cost: Optional[float] = None, feedback_namespace: Optional[str] = "Feedback") -> str:
    """The event as VW text ADF (ending in a blank line), with ``cost`` on the shown action.

    The feedback namespace is left out unless ``feedback_namespace`` is ``None``
    (then the shared line is written as logged), so a CB trained on the output
    does not see the feedback as a context feature.
    """
    cost = event.cost if cost is None else cost
    ctx = event.context
    if feedback_namespace is None and event.has_feedback and event.feedback != NO_FEEDBACK:
        ctx = f"{ctx} {event.feedback}".strip()
    label = "" if event.action is None else cb_label(cost, event.prob)
    return "\n".join(adf_lines(ctx, event.actions, event.action, label)) + "\n\n"


# -------------------------------------------------------------------------- DSJSON

_DS_METADATA = {"EventId", "ActionTaken", "Timestamp"}
# VW's --json ADF spells two label fields with capitals; DSJSON does not.
_VW_JSON_LABELS = {"_label_Cost": "_label_cost", "_label_Probability": "_label_probability"}


def _number(value, where: str, path, line_no) -> str:
    """A JSON number as VW text; a LogError for one that is not finite (``1e999``, ``10**400``)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LogError(path, line_no, where, f"{value!r} is not a finite number")
    elif not -_MAX_INT < value < _MAX_INT:
        raise LogError(path, line_no, where, f"an integer of {len(str(abs(value)))} digits is not a finite float")
    return repr(value)


_MAX_INT = 2 ** 1023


def _namespaces(obj: dict, ns: str, out: dict, where: str, path, line_no, depth: int = 0):
    """VW JSON semantics: ``obj``'s features into ``out[ns]``; nested objects are namespaces."""
    if depth > MAX_JSON_DEPTH:
        raise LogError(path, line_no, where, f"objects nested more than {MAX_JSON_DEPTH} deep")
    feats = out.setdefault(ns, [])
    for key, value in obj.items():
        if not isinstance(key, str) or key.startswith("_"):
            if key == "_text" and isinstance(value, str):
                feats.extend(escape(w) for w in value.split())
            continue
        name = escape(key)
        if isinstance(value, bool):
            if value:
                feats.append(name)
        elif isinstance(value, (int, float)):
            if value:
                feats.append(f"{name}:{_number(value, f'{where}.{key}', path, line_no)}")
        elif isinstance(value, str):
            feats.append(name + escape(value))
        elif isinstance(value, dict):
            _namespaces(value, name, out, f"{where}.{key}", path, line_no, depth + 1)
        elif isinstance(value, list):
            for j, item in enumerate(value):
                if isinstance(item, dict):
                    _namespaces(item, name, out, f"{where}.{key}[{j}]", path, line_no, depth + 1)
                elif isinstance(item, (int, float)) and not isinstance(item, bool):
                    if item:
                        out.setdefault(name, []).append(f"{j}:{_number(item, f'{where}.{key}[{j}]', path, line_no)}")
                else:
                    raise LogError(path, line_no, f"{where}.{key}[{j}]", f"unsupported value {_short(item)}")
        elif value is not None:
            raise LogError(path, line_no, f"{where}.{key}", f"unsupported value {_short(value)}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _vw_text(obj: dict, where: str, path, line_no) -> VWText:
    out: dict = {}
    _namespaces(obj, " ", out, where, path, line_no)
    parts = []
    for ns, feats in out.items():
        if feats:
            parts.append(("| " if ns == " " else f"|{ns} ") + " ".join(feats))
    return VWText(" ".join(parts))


def _int(value) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _parse_dsjson_event(path, line, line_no, feedback_from_cost, max_actions=MAX_ACTIONS,
                        feedback_namespace: str = "Feedback") -> Union[Event, LogError, None]:
    try:
        obj = json.loads(line)
    except RecursionError:
        return LogError(path, line_no, "json", "broken JSON: nested too deep")
    except ValueError as err:  # JSONDecodeError, and an integer too long to read
        return LogError(path, line_no, "json", f"broken JSON: {str(err)[:200]}")
    if not isinstance(obj, dict):
        return LogError(path, line_no, "json", f"an event must be a JSON object, got {type(obj).__name__}")
    if "_outcomes" in obj or (isinstance(obj.get("c"), dict) and "_slots" in obj["c"]):
        raise UnsupportedLogError(
            path, line_no, "event", "this is a CCB or slates event (it has _slots/_outcomes); iglp-vw learns "
            "from contextual-bandit events only (one action chosen from '_multi')"
        )
    if obj.get("_skipLearn") is True:
        return None
    if "c" not in obj and isinstance(obj.get("_multi"), list):  # VW's --json: the context at the top
        obj = {"c": {k: v for k, v in obj.items() if not k.startswith("_label")},
               **{_VW_JSON_LABELS.get(k, k): v for k, v in obj.items() if k.startswith("_label")}}
    c = obj.get("c")
    if not isinstance(c, dict):
        return LogError(path, line_no, "c", "missing context object 'c'")
    multi = c.get("_multi")
    if not isinstance(multi, list) or not multi or not all(isinstance(a, dict) for a in multi):
        return LogError(path, line_no, "c._multi", "missing or empty action list (a list of objects)")
    if len(multi) > max_actions:
        return LogError(path, line_no, "c._multi", f"{len(multi):,} actions, more than the limit of {max_actions:,} "
                        "(--max-actions)")
    index = _int(obj.get("_labelIndex"))
    if index is None and "_labelIndex" in obj:
        return LogError(path, line_no, "_labelIndex", f"{obj['_labelIndex']!r} is not an integer")
    if index is None and "_label_Action" in obj:
        action_id = _int(obj.get("_label_Action"))
        if action_id is None:
            return LogError(path, line_no, "_label_Action", f"{_short(obj['_label_Action'])} is not an integer")
        index = action_id - 1
    if index is None:  # no label: an event to score, not to learn from (as VW reads it)
        texts = _dsjson_texts(obj, c, multi, path, line_no, feedback_namespace)
        if isinstance(texts, LogError):
            return texts
        context, actions, feedback, has_feedback = texts
        return Event(path, line_no, context, actions, None, None, feedback, None, has_feedback, raw=obj,
                     end_line=line_no, event_id=_event_id(obj.get("EventId")))
    if not 0 <= index < len(multi):
        return LogError(path, line_no, "_labelIndex", f"action index {index} is out of range for {len(multi)} actions")
    prob = obj.get("_label_probability")
    if isinstance(prob, bool) or not isinstance(prob, (int, float)):
        return LogError(path, line_no, "_label_probability", f"missing or not a number: {prob!r}")
    if not 0 < prob <= 1:
        return LogError(path, line_no, "_label_probability", f"{prob!r} is outside (0, 1]")
    cost = obj.get("_label_cost")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))
                             or not -_MAX_INT < cost < _MAX_INT or not math.isfinite(cost)):
        return LogError(path, line_no, "_label_cost", f"{_short(cost)} is not a finite number")
    texts = _dsjson_texts(obj, c, multi, path, line_no, feedback_namespace)
    if isinstance(texts, LogError):
        return texts
    context, actions, feedback, has_feedback = texts
    if not has_feedback and feedback_from_cost and cost is not None:
        feedback, has_feedback = VWText(f"|v cost={cost:g}"), True
    return Event(
        path, line_no, context, actions, index, float(prob), feedback,
        None if cost is None else float(cost), has_feedback, pmf=_logged_pmf(obj, len(multi)), raw=obj,
        end_line=line_no, event_id=_event_id(obj.get("EventId")),
    )


def _dsjson_texts(obj, c, multi, path, line_no, feedback_namespace="Feedback"):
    """``(context, actions, feedback, has_feedback)`` of a DSJSON event as checked VW text, or the LogError.

    The feedback is the outcomes ``o``, and the context's ``feedback_namespace`` object when it
    has one (as in VW text, where it is a namespace of the shared line): taken out of the
    context, it is feedback, not a feature of the policy.
    """
    try:
        context = _vw_text({k: v for k, v in c.items() if k != "_multi" and k != feedback_namespace}, "c", path, line_no)
        actions = VWTexts(_vw_text(a, f"c._multi[{i}]", path, line_no) for i, a in enumerate(multi))
        feedback, has_feedback = _outcomes(obj.get("o"), path, line_no)
        inline = c.get(feedback_namespace)
        if inline is not None and inline != {}:
            if isinstance(inline, str):  # "Feedback": "click" reads as {"click": true}
                inline = {inline: True}
            if not isinstance(inline, dict) or any(isinstance(v, dict) for v in inline.values()):
                raise LogError(path, line_no, f"c.{feedback_namespace[:80]}", "the feedback namespace must be a string "
                               f"or an object of features (not nested), got {_short(inline)}")
            text = _vw_text({feedback_namespace: inline}, "c", path, line_no)
            if text.strip("| "):
                feedback = VWText(f"{feedback} {text}" if has_feedback else text)
                has_feedback = True
    except LogError as err:
        return err
    return context, actions, feedback, has_feedback


def _event_id(value) -> Optional[str]:
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30:
        return str(value)
    return None


def _outcomes(outcomes, path, line_no):
    if outcomes is None or outcomes == []:
        return NO_FEEDBACK, False
    if not isinstance(outcomes, list):
        raise LogError(path, line_no, "o", f"outcomes must be a list, got {type(outcomes).__name__}")
    namespaces: dict = {}
    bad = False
    for i, outcome in enumerate(outcomes):
        if not isinstance(outcome, dict):
            raise LogError(path, line_no, f"o[{i}]", f"an outcome must be an object, got {_short(outcome)}")
        for key, value in outcome.items():
            if key == "_definitely_bad":
                if not isinstance(value, bool):
                    raise LogError(path, line_no, f"o[{i}]._definitely_bad", f"must be true or false, got {value!r}")
                bad = bad or value
            elif key.startswith("_") or key in _DS_METADATA:
                continue
            elif isinstance(value, dict):
                _namespaces(value, escape(key), namespaces, f"o[{i}].{key}", path, line_no, 1)
            elif key == "v" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
                if isinstance(value, str):  # a categorical outcome: "v": "like" is v=like
                    namespaces.setdefault("v", []).append(f"v={escape(value)}")
                else:  # a numeric one (Azure Personalizer's reward, "v": 0.8): a number, bucketed as dwell is
                    namespaces.setdefault("v", []).append(f"v:{_number(value, f'o[{i}].v', path, line_no)}")
            else:
                raise LogError(path, line_no, f"o[{i}].{key[:80]}", f"unknown feedback field {_short(key)}")
    if bad:
        namespaces.setdefault("v", []).append(DEFINITELY_BAD)
    parts = [f"|{ns} " + " ".join(feats) for ns, feats in namespaces.items() if feats]
    if not parts:
        return NO_FEEDBACK, False
    return VWText(" ".join(parts)), True


def _logged_pmf(obj, k) -> Optional[list]:
    """The logging pmf in action-index order from ``a`` (action ids) and ``p``, when both are usable."""
    a, p = obj.get("a"), obj.get("p")
    if not (isinstance(a, list) and isinstance(p, list) and len(a) == len(p) == k):
        return None
    ids = [_int(x) for x in a]
    if any(x is None for x in ids) or sorted(ids) not in (list(range(k)), list(range(1, k + 1))):
        return None
    base = min(ids)
    pmf = [0.0] * k
    for x, q in zip(ids, p):
        if isinstance(q, bool) or not isinstance(q, (int, float)):
            return None
        pmf[x - base] = float(q)
    return pmf


def _read_dsjson(path, fh, feedback_namespace, feedback_from_cost, skip_lines, max_actions=MAX_ACTIONS):
    line_no = 0
    while True:
        line = fh.readline(MAX_EVENT_CHARS)
        if not line:
            break
        line_no += 1
        if not line.endswith("\n") and len(line) >= MAX_EVENT_CHARS:
            while line and not line.endswith("\n"):  # the rest of this line
                line = fh.readline(MAX_EVENT_CHARS)
            if line_no > skip_lines:
                yield LogError(path, line_no, "json", f"a line longer than {MAX_EVENT_CHARS:,} characters")
            continue
        if line_no <= skip_lines or not line.strip():
            continue
        if not line.endswith("\n") and truncation(fh):
            break  # cut off where the file stops: reported below
        if line.startswith("\ufeff"):  # a byte-order mark inside the file: UTF-8 files concatenated
            line = line[1:]
        event = _parse_dsjson_event(path, line, line_no, feedback_from_cost, max_actions, feedback_namespace)
        if event is not None:
            yield event
    stopped = truncation(fh)
    if stopped:
        yield LogError(path, max(line_no, 1), "file", f"{stopped}: the log stops at this line")


def format_dsjson_event(event: Event, cost: Optional[float] = None) -> str:
    """The event as one DSJSON line with ``_label_cost`` set to ``cost``.

    The logged cost is kept in ``_original_label_cost`` (as Decision Service does),
    and ``o`` is written before ``c`` (VW crashes on IGL events the other way round).
    """
    obj = dict(event.raw)
    if cost is not None and event.action is not None:
        if "_original_label_cost" not in obj and event.cost is not None:
            obj["_original_label_cost"] = event.cost
        obj["_label_Cost" if "_label_Cost" in obj else "_label_cost"] = cost + 0.0  # -0.0 (ρ̂ = 0) is 0.0
    if "o" in obj and "c" in obj:
        ordered = {k: v for k, v in obj.items() if k not in ("o", "c")}
        obj = {"o": obj["o"], **ordered, "c": obj["c"]}
    return json.dumps(obj, separators=(",", ":")) + "\n"
