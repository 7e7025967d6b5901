"""The one place that talks to Vowpal Wabbit.

Builds argument strings (pure functions, testable without VW), turns the API's
``{namespace: {feature: value}}`` dicts into VW text, and owns
:class:`Workspace`, a thin guard around ``vowpalwabbit.pyvw.Workspace`` that
always finishes the examples it parsed (VW crashes on ``finish_example`` of an
example never learned or predicted, and leaks memory when one is never
finished) and turns VW's parse errors into :class:`ValueError`.
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
import os
import re
import shlex
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from vowpalwabbit import pyvw
from vowpalwabbit.pyvw import pylibvw

Namespaces = Mapping[str, Mapping[str, Union[str, int, float, bool]]]
Features = Union[str, Namespaces]

# ----------------------------------------------------------------------------------------
# The one escaping layer. VW's text format gives meaning to a few characters: a newline ends
# an example (and a line whose tag starts with "save" is a command to VW's driver), an empty
# line ends a multiline example, whitespace ends a token, '|' starts a namespace and ':'
# splits a name from its value. Every text bound for VW is built here from escaped tokens
# (dict features, DSJSON values) or checked here (VW text given as such), so no logged value
# can become a command, an extra example or a crash.

# In a token (a namespace, a feature name, a categorical value): every character VW or
# Python's str.split() would split on, '|', ':', control characters and lone surrogates.
_UNSAFE_TOKEN = re.compile("[\\s|:\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# In VW text given as such: control characters (tab aside, VW's other separator) and
# the characters Python treats as line ends.
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# A ':' not followed by a plain finite number (at most 30 digits, 2-digit exponent) that ends
# at whitespace, '|' or the end of the line: one C-level scan finds the text worth a closer look.
_SUSPECT = re.compile(r":(?![+-]?(?:\d{1,30}\.?\d{0,30}|\.\d{1,30})(?:[eE][+-]?\d{1,2})?(?:[\s|]|$))")
# Numbers VW reads as floats: beyond this an int would overflow to inf.
_MAX_NUMBER = 2.0 ** 1023


class VWText(str):
    """VW text that passed this module's checks (:func:`check_text`, :func:`format_namespaces`)
    or the log readers' (which apply the same rules): one line, no control character, starting
    with ``|`` (or empty), every ``name:value`` a finite number. Taken as is wherever text bound
    for VW is expected, so checked text is not checked again on every use."""

    __slots__ = ()


class VWTexts(list):
    """A list of action texts that passed the same checks as :class:`VWText` (the readers make
    them): one mark per event rather than one per action."""

    __slots__ = ()


@functools.lru_cache(maxsize=8192)  # feature names and values repeat; ids do not
def escape(token: str) -> str:
    """``token`` made safe as one VW token: separators, ``|``, ``:`` and control characters become ``_``.

    >>> escape("u 17|x:1\\n'save_/tmp/f")
    "u_17_x_1_'save_/tmp/f"
    """
    return _UNSAFE_TOKEN.sub("_", token) if _UNSAFE_TOKEN.search(token) else token




def check_text(text: str, what: str = "features") -> str:
    """VW text features (``|ns name name:value ...``) given as such, checked: one line, no
    control character, starting with ``|`` (or empty), and every ``name:value`` a finite number.

    Returns ``text`` stripped; raises :class:`ValueError` naming ``what`` otherwise.

    >>> check_text(" |User id=u17 |x f0:0.31 ")
    '|User id=u17 |x f0:0.31'
    >>> check_text("|User id=u17\\n'save_x|")
    Traceback (most recent call last):
    ...
    ValueError: `features` must be one line of VW text without control characters, got "|User id=u17\\n'save_x|" (U+000A at 12)
    """
    bad = _UNSAFE_TEXT.search(text)
    if bad:
        raise ValueError(
            f"`{what}` must be one line of VW text without control characters, got {text[:80]!r} "
            f"(U+{ord(bad.group()):04X} at {bad.start()})"
        )
    text = text.strip()
    if text and text[0] != "|":
        raise ValueError(f"`{what}` as VW text must start with '|', got {text[:80]!r}")
    problem = feature_problem(text)
    if problem:
        raise ValueError(f"`{what}` {problem[0]}: {problem[1]}")
    return VWText(text)


def feature_problem(text: str) -> Optional[tuple]:
    """What is wrong with the features of VW text ``|ns[:w] name[:value] ...``: ``(part, message)``,
    or ``None`` when nothing (VW's parser stops or misreads a value that is not a finite number).

    >>> feature_problem("|x a:1 b:2.5e-3"), feature_problem("|x a:b")
    (None, ('feature', "'a:b' is not name or name:number"))
    """
    if ":" not in text or not _SUSPECT.search(text):
        return None
    for chunk in text.split("|")[1:]:
        tokens = chunk.split()
        if chunk and chunk[0] not in " \t":
            head, tokens = tokens[0], tokens[1:]
            if ":" in head:
                name, _, weight = head.partition(":")
                if not _finite(weight):
                    return f"namespace {name}", f"weight {weight!r} is not a finite number"
        for token in tokens:
            if ":" in token:
                name, _, value = token.rpartition(":")
                if not _finite(value) or ":" in name:
                    return "feature", f"{token!r} is not name or name:number"
    return None


def _finite(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _number(value, where: str) -> str:
    """A finite number as VW text (``repr``: the shortest exact form); ``ValueError`` otherwise."""
    if not -_MAX_NUMBER < value < _MAX_NUMBER:  # also false for nan
        raise ValueError(f"`{where}` must be finite, got {value!r}"[:200])
    return repr(value)


def format_namespaces(features: Features, what: str = "features") -> str:
    """VW text for ``features``: ``{"User": {"id": "u17"}, "x": {"f0": 0.31}}`` -> ``|User id=u17 |x f0:0.31``.

    A ``str`` value is a categorical feature (``name=value``), a number (numpy's
    included) a numeric one (``name:value``; zeros are dropped as VW would),
    ``True`` a present feature, ``False`` and ``None`` an absent one. Names and
    values are escaped (:func:`escape`). A plain string is taken as VW text
    already and checked (:func:`check_text`).

    >>> format_namespaces({"User": {"id": "u 17\\n"}, "x": {"f0": 0.5, "f1": 0}})
    '|User id=u_17_ |x f0:0.5'
    """
    if type(features) is VWText:
        return features
    if isinstance(features, str):
        return check_text(features, what)
    if not isinstance(features, (dict, Mapping)):
        raise TypeError(f"`{what}` must be a dict of namespace -> {{feature: value}} or VW text, got {type(features).__name__}")
    parts = []
    for namespace, feats in features.items():
        if not isinstance(feats, (dict, Mapping)):
            raise TypeError(
                f"`{what}[{namespace!r}]` must be a dict of feature -> value, got {type(feats).__name__}"
            )
        tokens = ["|" + escape(namespace if type(namespace) is str else str(namespace))]
        for name, value in feats.items():
            name = escape(name if type(name) is str else str(name))
            kind = type(value)
            if kind is float or kind is int:
                if value:
                    tokens.append(f"{name}:{_number(value, f'{what}[{namespace!r}][{name!r}]')}")
            elif kind is str:
                tokens.append(f"{name}={escape(value)}")
            elif value is True:
                tokens.append(name)
            elif value is False or value is None:
                continue
            else:
                tokens.extend(_other_token(name, value, f"{what}[{namespace!r}][{name!r}]"))
        parts.append(" ".join(tokens))
    return VWText(" ".join(parts))


def _other_token(name: str, value, where: str, depth: int = 0) -> list:
    """Feature tokens of a value that is not a plain str, int, float or bool: numpy scalars
    (``np.int64``, ``np.float32``, ``np.bool_``), other numbers, and lists/tuples/arrays of
    these (a multi-valued feature: ``{"tags": ["a", "b"]}`` is ``tags=a tags=b``, numbers
    ``{"emb": [0.5, 2]}`` are ``emb_0:0.5 emb_1:2``).

    >>> _other_token("tags", ["a", "b c"], "x"), _other_token("emb", (0.5, 0, 2), "x")
    (['tags=a', 'tags=b_c'], ['emb_0:0.5', 'emb_2:2'])
    """
    if isinstance(value, (list, tuple, np.ndarray)) and depth == 0:
        out = []
        for i, item in enumerate(value.tolist() if isinstance(value, np.ndarray) else value):
            if isinstance(item, str):
                out.append(f"{name}={escape(item)}")
            elif isinstance(item, (bool, np.bool_)) or item is None:
                if item:
                    out.append(f"{name}_{i}")
            else:
                out.extend(_other_token(f"{name}_{i}", item, f"{where}[{i}]", depth + 1))
        return out
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, bool):
            return [name] if value else []
        if isinstance(value, str):
            return [f"{name}={escape(value)}"]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value) if not isinstance(value, (int, float)) else value
        return [f"{name}:{_number(value, where)}"] if value else []
    if isinstance(value, bool):  # a bool subclass
        return [name] if value else []
    raise TypeError(f"`{where}` must be str, number, bool, None or a list of these, got {type(value).__name__}")


# ----------------------------------------------------------------------------- ADF lines


def cb_label(cost: float, prob: float) -> str:
    """VW's contextual-bandit label of the action played: ``0:cost:probability``.

    (The index before the first ``:`` is not read by VW's ADF reductions.)

    >>> cb_label(-1.0, 0.25), cb_label(-0.0, 1 / 3)
    ('0:-1:0.25', '0:0:0.333333333')
    """
    return f"0:{cost + 0.0:.9g}:{prob:.9g}"


def action_line(text: str) -> str:
    """An action's line: its checked text, or ``|`` for an action with no features (an empty
    line would end the multiline example: one event would become two)."""
    if not text:
        return "|"
    if text[0] != "|" or "\n" in text or "\r" in text:
        raise ValueError(f"an action's VW text must be one line starting with '|', got {text[:80]!r}")
    return text


def adf_lines(shared: str, actions: Sequence[str], index: Optional[int] = None, label: str = "",
              labels: Optional[Sequence[str]] = None) -> list:
    """The lines of one ADF example: ``shared`` (left out when empty) and one line per action,
    ``label`` (e.g. :func:`cb_label`) before action ``index``, or ``labels[i]`` before each
    action ``i`` (``csoaa_ldf``'s ``"1:0.5"``).

    The texts must come from :func:`format_namespaces` or :func:`check_text` (or the
    log readers, which use them); a text that could end the example early is refused.

    >>> adf_lines("|User id=1", ["|A a", ""], 1, "0:-1:0.5")
    ['shared |User id=1', '|A a', '0:-1:0.5 |']
    """
    if type(shared) is not VWText and ("\n" in shared or "\r" in shared):
        raise ValueError(f"the shared features must be one line, got {shared[:80]!r}")
    lines = ["shared " + shared] if shared else []
    if labels is not None:
        lines.extend(f"{lab} {action_line(text)}" for lab, text in zip(labels, actions))
        return lines
    if type(actions) is VWTexts and "" not in actions:  # checked: only the label to place
        if index is None:
            return lines + actions
        return lines + actions[:index] + [f"{label} {actions[index]}"] + actions[index + 1:]
    for i, text in enumerate(actions):
        line = (text or "|") if type(text) is VWText else action_line(text)
        lines.append(f"{label} {line}" if i == index else line)
    return lines


def adf_split(shared: str, actions: Sequence[str], index: int):
    """``(pre, post)``: an ADF example's text around the label of action ``index``, so that
    ``pre + label + " " + post`` is the example (with the blank line that ends it) as VW's
    driver reads it. For streams that build the text before the label is known.

    >>> adf_split("|U u", ["|A a", "|A b"], 1)
    ('shared |U u\\n|A a\\n', '|A b\\n\\n')
    """
    lines = adf_lines(shared, actions)
    head = len(lines) - len(actions) + index
    pre = "\n".join(lines[:head]) + "\n" if head else ""
    return pre, "\n".join(lines[head:]) + "\n\n"


def feedback_key(feedback_text: str) -> str:
    """The decoder's key of one event's feedback: its VW text, numeric values bucketed.

    A categorical or present feature (``word=w42``, ``click``, ``v=click:1``) is kept
    as it is; a numeric value other than 1 (dwell time, a rating, a count) goes into its
    power-of-two bucket, so that ``dwell:37.2`` and ``dwell:41`` are one feedback value
    (``dwell:b5``) and the decoder can count how often each user gives it.

    >>> feedback_key("|Feedback dwell:37.2 like")
    '|Feedback dwell:b5 like'
    >>> feedback_key("|v v=click:1 stars:-3")
    '|v v=click:1 stars:-b1'
    """
    if ":" not in feedback_text:
        return " ".join(feedback_text.split())
    out = []
    for token in feedback_text.split():
        name, colon, value = token.rpartition(":")
        if colon and not token.startswith("|") and value not in ("1", "1.0"):
            try:
                v = float(value)
            except ValueError:
                v = None
            if v is not None and math.isfinite(v) and v != 0:
                token = f"{name}:{'-' if v < 0 else ''}b{math.floor(math.log2(abs(v)))}"
        out.append(token)
    return " ".join(out)


def namespace_of(features: Features, namespace: str) -> str:
    """The features of one namespace as a canonical string key ('' when absent).

    Used to find whose feedback it is (the ``User`` namespace) without VW.

    >>> namespace_of({"User": {"id": "u17"}, "x": {"f0": 1.0}}, "User")
    'id=u17'
    >>> namespace_of("|User id=u17 |x f0:1", "User")
    'id=u17'
    """
    if isinstance(features, str):
        for chunk in features.split("|")[1:]:
            if _chunk_name(chunk) == namespace:
                return " ".join(chunk.partition(" ")[2].split())
        return ""
    feats = features.get(namespace)
    if not feats:
        return ""
    return format_namespaces({namespace: feats}).partition(" ")[2]


def user_key(features: Features, namespaces) -> str:
    """Whose feedback it is: the features of the user namespace(s) as one key ('' when absent).

    ``namespaces``: a namespace name (its features, e.g. ``id=u17 country=fr``) or a list
    of them (each feature prefixed with its namespace).

    >>> user_key({"User": {"id": "u17"}, "Geo": {"country": "fr"}}, ["User", "Geo"])
    'User:id=u17 Geo:country=fr'
    """
    if isinstance(namespaces, str):
        return namespace_of(features, namespaces)
    return " ".join(f"{ns}:{token}" for ns in namespaces for token in namespace_of(features, ns).split())


def split_args(args: Union[str, Sequence[str], None]) -> list:
    """``"--epsilon 0.05 -q ::"`` or a list of tokens -> a list of tokens."""
    if args is None:
        return []
    if isinstance(args, str):
        return shlex.split(args)
    return [str(a) for a in args]


def build_args(*parts: Union[str, Sequence[str], None], seed: int = 0, quiet: bool = True) -> str:
    """Join argument fragments, add ``--random_seed`` and ``--quiet`` unless already given.

    >>> build_args("--cb_explore_adf", "--epsilon 0.1", seed=3)
    '--cb_explore_adf --epsilon 0.1 --random_seed 3 --quiet'
    """
    tokens: list = []
    for part in parts:
        tokens.extend(split_args(part))
    if "--random_seed" not in tokens:
        tokens += ["--random_seed", str(int(seed))]
    if quiet and "--quiet" not in tokens:
        tokens.append("--quiet")
    return " ".join(shlex.quote(t) for t in tokens)


def _interaction_char(ch: str) -> str:
    """A namespace's first character as VW's interaction options read it: VW keys a namespace
    on its first *byte*, and reads ``\\xNN`` escapes there (``:`` would be VW's wildcard)."""
    if ch.isascii() and (ch.isalnum() or ch in "_-.+*"):
        return ch
    return f"\\x{ch.encode('utf-8', 'surrogatepass')[0]:02x}"


def drop_namespaces(text: str, names) -> str:
    """VW text without the namespaces named ``names`` (a name or a list); checked text stays checked.

    >>> drop_namespaces("|User id=u1 country=fr |x f0:1", "User")
    '|x f0:1'
    """
    names = {names} if isinstance(names, str) else set(names)
    chunks = text.split("|")
    kept = [chunks[0]] + [c for c in chunks[1:] if _chunk_name(c) not in names]
    if len(kept) == len(chunks):
        return text
    out = "|".join(kept)
    return VWText(out) if type(text) is VWText else out


def namespace_names(text: str) -> list:
    """The namespace names of VW text, line by line (``' '``: the default namespace).

    >>> namespace_names("|User id=u1 |x:0.5 a:1 | f")
    ['User', 'x', ' ']
    """
    return [_chunk_name(chunk) or " " for line in text.split("\n") for chunk in line.split("|")[1:]]


def _chunk_name(chunk: str) -> str:
    """The namespace name of one ``|``-separated chunk of VW text (``''``: the default namespace)."""
    return chunk.split(" ", 1)[0].split(":", 1)[0]


def _first_chars(text: str) -> list:
    """First characters of the namespaces in a VW text line (' ' for the default namespace)."""
    out = []
    for chunk in text.split("|")[1:]:
        ch = chunk[:1]
        out.append(" " if ch in ("", " ", "\t") else _interaction_char(ch))
    return out


def namespace_chars(context_text: str, action_texts: Sequence[str]):
    """The distinct first characters of the context's and of the actions' namespaces (VW keys
    interactions on them; non-ASCII ones as ``\\xNN``), the default namespace left out.

    >>> namespace_chars("|User id=1 |x f:1", ["|Action id=0", "|Action id=1 |B b", "|été e"])
    (['U', 'x'], ['A', 'B', '\\\\xc3'])
    """
    ctx = [c for c in dict.fromkeys(_first_chars(context_text)) if c != " "]
    act = list(dict.fromkeys(c for text in action_texts for c in _first_chars(text) if c != " "))
    return ctx, act


def auto_interactions(context_text: str, action_texts: Sequence[str], more=((), ())) -> list:
    """Interactions crossing every context namespace with every action namespace, and each
    context namespace's own second-order terms with them (``--cubic cca``). ``more``: the
    first characters of further (context, action) namespaces, e.g. of later events.

    >>> auto_interactions("|User id=1 |x f:1", ["|Action id=0"])
    ['-q', 'UA', '--cubic', 'UUA', '-q', 'xA', '--cubic', 'xxA']
    >>> auto_interactions("|User id=1", ["|Action id=0"], more=(["x", "U"], []))
    ['-q', 'UA', '--cubic', 'UUA', '-q', 'xA', '--cubic', 'xxA']
    """
    ctx, act = namespace_chars(context_text, action_texts)
    ctx += [c for c in dict.fromkeys(more[0]) if c not in ctx]
    act += [c for c in dict.fromkeys(more[1]) if c not in act]
    out = []
    for c in ctx:
        for a in act:
            out += ["-q", c + a, "--cubic", c + c + a]
    return out


_INTERACTION_FLAGS = {"-q", "--quadratic", "--interactions", "--cubic", "--experimental_full_name_interactions"}


def cb_arguments(cb_args, context_text: str, action_texts: Sequence[str], seed: int = 0, prefix=None,
                 more=((), ())) -> str:
    """The full CB argument string: ``cb_args`` plus auto interactions when it names none
    (``more`` as for :func:`auto_interactions`).

    >>> cb_arguments("--cb_explore_adf", "|x a:1", ["|A id=1"], seed=2)
    '--cb_explore_adf -q xA --cubic xxA --random_seed 2 --quiet'
    """
    tokens = split_args(prefix) + split_args(cb_args)
    if not names_interactions(tokens):
        tokens += auto_interactions(context_text, action_texts, more)
    return build_args(tokens, seed=seed)


def names_interactions(args) -> bool:
    """Whether VW arguments name interactions of their own (``-q``, ``--cubic``, ...)."""
    return bool(_INTERACTION_FLAGS.intersection(split_args(args) if isinstance(args, str) else args))


def interaction_options(args) -> list:
    """The ``(flag, value)`` pairs of the interactions VW arguments name.

    >>> interaction_options("--cb_explore_adf -q UA --cubic UUA --interactions xA")
    [('-q', 'UA'), ('--cubic', 'UUA'), ('--interactions', 'xA')]
    """
    tokens = split_args(args) if isinstance(args, str) else list(args)
    return [(flag, value) for flag, value in zip(tokens, tokens[1:])
            if flag in _INTERACTION_FLAGS and flag != "--experimental_full_name_interactions"]


def interaction_terms(args) -> list:
    """The interaction terms VW arguments name, each a list of namespace characters
    (``\\xNN`` escapes kept as one; ``:`` is VW's wildcard).

    >>> interaction_terms("--cb_explore_adf -q UA --cubic UUA --interactions xA")
    [['U', 'A'], ['U', 'U', 'A'], ['x', 'A']]
    """
    return [re.findall(r"\\x[0-9a-fA-F]{2}|.", value) for _, value in interaction_options(args)]


def namespace_set(texts) -> list:
    """The distinct namespace names in VW texts, in order (the default namespace left out).

    >>> namespace_set(["|User id=1 |x:0.5 f:1", "| a |Action id=2", "|User id=2"])
    ['User', 'x', 'Action']
    """
    return [n for n in dict.fromkeys(name for text in texts for name in namespace_names(text)) if n != " "]


def interaction_char(name: str) -> str:
    """The character VW's interaction options key a namespace ``name`` on."""
    return _interaction_char(name[0])


# Flags VW does not keep in a model file (so a reload must pass them again); the rest of a
# model's arguments (reductions, interactions, bits, ...) come back from the file.
_NOT_KEPT = {"--quiet": 0, "--probabilities": 0, "--loss_function": 1, "--power_t": 1, "-l": 1, "--learning_rate": 1,
             "--l1": 1, "--l2": 1}


def reload_args(args) -> list:
    """The arguments to give with ``-i`` when reloading a model trained with ``args``.

    >>> reload_args("--oaa 10 --probabilities --loss_function logistic -q :_ --quiet")
    ['--probabilities', '--loss_function', 'logistic', '--quiet']
    """
    tokens = split_args(args)
    out = []
    for i, token in enumerate(tokens):
        n = _NOT_KEPT.get(token)
        if n is not None:
            out += tokens[i : i + 1 + n]
    return out


# The VW flags iglp-vw passes to a model (and accepts from a saved configuration), with how
# many values each takes. A model directory is data: no flag here reads or writes a file,
# opens a port or runs a daemon (``-f``, ``-i``, ``--invert_hash``, ``--daemon``, ... are not).
MODEL_FLAGS = {
    # contextual bandits and their explorers
    "--cb_explore_adf": 0, "--cb_adf": 0, "--cb_type": 1, "--epsilon": 1, "--first": 1, "--bag": 1,
    "--cover": 1, "--psi": 1, "--nounif": 0, "--first_only": 0, "--squarecb": 0, "--gamma_scale": 1,
    "--gamma_exponent": 1, "--elim": 0, "--mellowness": 1, "--softmax": 0, "--lambda": 1, "--regcb": 0,
    "--regcbopt": 0, "--synthcover": 0, "--synthcoverpsi": 1, "--synthcoversize": 1, "--rnd": 1,
    "--rnd_alpha": 1, "--rnd_invlambda": 1, "--large_action_space": 0, "--max_actions": 1, "--baseline": 0,
    "--clip_p": 1,
    # classifiers (the IK)
    "--oaa": 1, "--csoaa_ldf": 1, "--probabilities": 0, "--per_model_save_load": 0,
    # features and interactions
    "-q": 1, "--quadratic": 1, "--cubic": 1, "--interactions": 1, "--experimental_full_name_interactions": 1,
    "--ignore": 1, "--ignore_linear": 1, "--keep": 1, "--noconstant": 0, "-C": 1, "--constant": 1,
    "-b": 1, "--bit_precision": 1, "--hash": 1, "--hash_seed": 1, "--leave_duplicate_interactions": 0,
    # learning
    "-l": 1, "--learning_rate": 1, "--power_t": 1, "--initial_t": 1, "--decay_learning_rate": 1, "--l1": 1,
    "--l2": 1, "--loss_function": 1, "--link": 1, "--adaptive": 0, "--normalized": 0, "--invariant": 0,
    "--sgd": 0, "--coin": 0, "--ftrl": 0, "--ftrl_alpha": 1, "--ftrl_beta": 1, "--pistol": 0,
    "--nn": 1, "--inpass": 0, "--dropout": 0, "--meanfield": 0,
    # bookkeeping
    "--random_seed": 1, "--quiet": 0, "--preserve_performance_counters": 0,
}


def check_model_args(args, what: str = "VW arguments") -> list:
    """``args`` as tokens if every flag is in :data:`MODEL_FLAGS` with its number of values;
    :class:`ValueError` naming the first flag that is not.

    >>> check_model_args("--cb_explore_adf --epsilon=0.1 -q UA")
    ['--cb_explore_adf', '--epsilon', '0.1', '-q', 'UA']
    >>> check_model_args("--oaa 3 --invert_hash /tmp/x")
    Traceback (most recent call last):
    ...
    ValueError: VW arguments: flag '--invert_hash' is not one iglp-vw passes to a model (it reads or writes files, or is unknown here)
    >>> check_model_args("--cb_explore_adf --epsilonn 0.1")
    Traceback (most recent call last):
    ...
    ValueError: VW arguments: flag '--epsilonn' is not one iglp-vw passes to a model (it reads or writes files, or is unknown here); did you mean '--epsilon'?
    """
    try:
        tokens = split_args(args)
    except ValueError as err:  # shlex: an unclosed quote
        raise ValueError(f"{what}: cannot be split into arguments: {err}") from None
    out, i = [], 0
    while i < len(tokens):
        flag, eq, value = tokens[i].partition("=")
        n = MODEL_FLAGS.get(flag)
        if n is None or (eq and n != 1):
            close = difflib.get_close_matches(flag, MODEL_FLAGS, n=1, cutoff=0.75) if n is None else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{what}: flag {flag!r} is not one iglp-vw passes to a model "
                             f"(it reads or writes files, or is unknown here){hint}")
        values = [value] if eq else tokens[i + 1 : i + 1 + n]
        if len(values) != n or any(v.startswith("--") for v in values):
            raise ValueError(f"{what}: flag {flag!r} takes {n} value(s)")
        out += [flag, *values]
        i += 1 if eq else 1 + n
    return out


def check_vw_args(args, what: str = "VW arguments", require: Optional[str] = None, base: str = "") -> list:
    """:func:`check_model_args`, then VW's own parser in a throwaway workspace: a value VW cannot
    read (``--epsilon abc``) or a bad combination is a :class:`ValueError` naming it, before any
    data is read. ``require``: a flag that must be among them (the CB's exploration); ``base``:
    arguments the model adds (the IK's reduction) for the parse."""
    tokens = check_model_args(args, what)
    if require is not None and require not in tokens:
        raise ValueError(f"{what}: {' '.join(tokens) or '(none)'} does not explore; IGL-P's CB needs {require} "
                         "(a CB without exploration gives a one-hot pmf, and the logged probabilities of its "
                         "own choices would all be 1)")
    try:
        ws = pyvw.Workspace(arg_list=[*split_args(base), *tokens, "--quiet"])
    except Exception as err:  # noqa: BLE001 - VW raises RuntimeError, and others from its bindings
        message = " ".join(str(err).split())[:300]
        raise ValueError(f"{what}: VW refuses {' '.join(tokens)!r}: {message}") from None
    ws.finish()
    return tokens


class Workspace:
    """A VW workspace that cannot be driven into VW's crash paths.

    Every parsed example is learned or predicted and then finished, in one call.
    Parse errors come back as :class:`ValueError` naming the offending text.

    Parameters
    ----------
    args
        VW command line (without ``-i``/``-f``), a string (split as a shell would) or tokens;
        passed to VW as tokens, so a path with spaces stays one argument.
    model_file
        Optional path of a saved model to load (``-i``); its performance counters are kept.
    """

    def __init__(self, args, model_file: Union[str, os.PathLike, None] = None):
        self.args = args
        tokens = split_args(args)
        # --preserve_performance_counters: a reloaded model keeps its example counts, so a model
        # saved after resuming is byte-identical to one trained without interruption.
        if model_file is not None:
            tokens += ["--preserve_performance_counters", "-i", os.fspath(model_file)]
        self._ws = None
        try:
            self._ws = pyvw.Workspace(arg_list=tokens)
        except Exception as err:  # VW raises RuntimeError / its own types on bad flags
            raise ValueError(f"VW rejected the arguments {' '.join(tokens)!r}: {err}") from None
        self._multiline = self._ws._is_multiline()
        kind = self._ws.get_prediction_type()
        readers = {
            pyvw.PredictionType.ACTION_PROBS: pylibvw.example.get_action_scores,
            pyvw.PredictionType.ACTION_SCORES: pylibvw.example.get_action_scores,
            pyvw.PredictionType.SCALARS: pylibvw.example.get_scalars,
            pyvw.PredictionType.MULTICLASSPROBS: pylibvw.example.get_scalars,
            pyvw.PredictionType.SCALAR: pylibvw.example.get_simplelabel_prediction,
            pyvw.PredictionType.MULTICLASS: pylibvw.example.get_multiclass_prediction,
        }
        if kind not in readers:
            self.finish()
            raise ValueError(f"VW arguments {' '.join(tokens)!r} give predictions of type {kind.name}, which iglp-vw does not read")
        self._read = readers[kind]

    def _run(self, text, learn: bool):
        # The low-level calls pyvw itself makes, without its per-example wrapper
        # objects (they were ~20% of a learn step). Parse, learn or predict, read,
        # and always finish, in this order: nothing parsed is left unfinished and
        # nothing unlearned/unpredicted is finished (VW crashes on that).
        ws = self._ws
        if type(text) is str and not self._multiline:  # the IK's path: one line, fewer steps
            if "\n" in text or "\r" in text:
                raise ValueError(f"an example must be one line, got {text[:300]!r}")
            try:
                examples = ws._parse(text)
            except RuntimeError as err:
                raise ValueError(f"VW could not parse the example {text[:300]!r}: {err}") from None
            if len(examples) != 1:
                self._discard(examples)
                raise ValueError(f"expected one example, VW parsed {len(examples)} from {text[:300]!r}")
            ex = examples[0]
            try:
                (pylibvw.vw.learn if learn else pylibvw.vw.predict)(ws, ex)
                return self._read(ex)
            finally:
                ws._finish_example(ex)
        # Lines (or text) from adf_lines: one example per line. pyvw drops empty lines and
        # splits at newlines, so a count that differs means a line was not one example.
        joined = text if isinstance(text, str) else "\n".join(text)
        n_lines = joined.count("\n") + 1
        if "\r" in joined or (not isinstance(text, str) and n_lines != len(text)):
            raise ValueError(f"an example's lines must be single lines without '\\r', got {joined[:300]!r}")
        try:
            examples = ws._parse(joined)
        except RuntimeError as err:
            raise ValueError(f"VW could not parse the example {joined[:300]!r}: {err}") from None
        if len(examples) != n_lines:
            self._discard(examples)
            raise ValueError(f"{n_lines} lines gave {len(examples)} examples (an empty line?): {joined[:300]!r}")
        if self._multiline:
            try:
                (pylibvw.vw.learn_multi if learn else pylibvw.vw.predict_multi)(ws, examples)
                return self._read(examples[0])
            finally:
                ws._finish_example_multi_ex(examples)
        if len(examples) != 1:
            self._discard(examples)
            raise ValueError(f"expected one example, VW parsed {len(examples)} from {joined[:300]!r}")
        try:
            (pylibvw.vw.learn if learn else pylibvw.vw.predict)(ws, examples[0])
            return self._read(examples[0])
        finally:
            ws._finish_example(examples[0])

    def _discard(self, examples) -> None:
        """Finish examples that will not be learned: predicted first (VW crashes on finishing
        an example that was never learned or predicted)."""
        ws = self._ws
        if self._multiline:
            try:
                pylibvw.vw.predict_multi(ws, examples)
            finally:
                ws._finish_example_multi_ex(examples)
            return
        for ex in examples:
            try:
                pylibvw.vw.predict(ws, ex)
            finally:
                ws._finish_example(ex)

    def predict(self, text):
        """Predict one example (a line, or a list of lines for ADF); returns VW's prediction."""
        return self._run(text, learn=False)

    def learn(self, text):
        """Learn one example; returns the prediction VW made before the update."""
        return self._run(text, learn=True)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the model (with its resume state) to ``path``."""
        self._ws.save(os.fspath(path))

    def finish(self) -> None:
        if self._ws is not None:
            self._ws.finish()
            self._ws = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()

    def __del__(self):
        try:
            self.finish()
        except Exception:
            pass
