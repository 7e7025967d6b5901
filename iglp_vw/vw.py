"""The one place that talks to Vowpal Wabbit.

Builds argument strings (pure functions, testable without VW), turns the API's
``{namespace: {feature: value}}`` dicts into VW text, and owns
:class:`Workspace`, a thin guard around ``vowpalwabbit.pyvw.Workspace`` that
always finishes the examples it parsed (VW crashes on ``finish_example`` of an
example never learned or predicted, and leaks memory when one is never
finished) and turns VW's parse errors into :class:`ValueError`.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shlex
from typing import Mapping, Sequence, Union

from vowpalwabbit import pyvw
from vowpalwabbit.pyvw import pylibvw

Namespaces = Mapping[str, Mapping[str, Union[str, int, float, bool]]]
Features = Union[str, Namespaces]

# Characters that end a VW token or split a name from its value.
_SPECIAL = re.compile(r"[\s|:]")


@functools.lru_cache(maxsize=65536)
def _clean(token: str) -> str:
    """Make ``token`` safe inside one VW feature (spaces, ``|`` and ``:`` become ``_``)."""
    return _SPECIAL.sub("_", token) if _SPECIAL.search(token) else token


def format_namespaces(features: Features, what: str = "features") -> str:
    """VW text for ``features``: ``{"User": {"id": "u17"}, "x": {"f0": 0.31}}`` -> ``|User id=u17 |x f0:0.31``.

    A ``str`` value is a categorical feature (``name=value``), a number a numeric
    one (``name:value``; zeros are dropped as VW would), ``True`` a present
    feature. A plain string is taken as VW text already and returned unchanged
    (it must start with ``|`` for a namespace or the default namespace).

    >>> format_namespaces({"User": {"id": "u 17"}, "x": {"f0": 0.5, "f1": 0}})
    '|User id=u_17 |x f0:0.5'
    """
    if isinstance(features, str):
        return features.strip()
    if not isinstance(features, (dict, Mapping)):
        raise TypeError(f"`{what}` must be a dict of namespace -> {{feature: value}} or VW text, got {type(features).__name__}")
    parts = []
    for namespace, feats in features.items():
        if not isinstance(feats, (dict, Mapping)):
            raise TypeError(
                f"`{what}[{namespace!r}]` must be a dict of feature -> value, got {type(feats).__name__}"
            )
        tokens = ["|" + _clean(str(namespace))]
        for name, value in feats.items():
            name = _clean(name if type(name) is str else str(name))
            kind = type(value)
            if kind is float or kind is int:
                if value:
                    if value - value != 0:  # nan or inf
                        raise ValueError(f"`{what}[{namespace!r}][{name!r}]` must be finite, got {value}")
                    tokens.append(f"{name}:{value!r}")
            elif kind is str:
                tokens.append(f"{name}={_clean(value)}")
            elif value is True:
                tokens.append(name)
            elif value is False or value is None:
                continue
            elif isinstance(value, (int, float)):  # numpy scalars and other numbers
                value = float(value)
                if value - value != 0:
                    raise ValueError(f"`{what}[{namespace!r}][{name!r}]` must be finite, got {value}")
                if value:
                    tokens.append(f"{name}:{value!r}")
            else:
                raise TypeError(
                    f"`{what}[{namespace!r}][{name!r}]` must be str, number or bool, got {type(value).__name__}"
                )
        parts.append(" ".join(tokens))
    return " ".join(parts)


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
            head, _, rest = chunk.partition(" ")
            name = head.split(":")[0]
            if name == namespace:
                return " ".join(rest.split())
        return ""
    feats = features.get(namespace)
    if not feats:
        return ""
    return format_namespaces({namespace: feats}).partition(" ")[2]


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


def _first_chars(text: str) -> list:
    """First characters of the namespaces in a VW text line (' ' for the default namespace)."""
    out = []
    for chunk in text.split("|")[1:]:
        ch = chunk[:1]
        out.append(" " if ch in ("", " ") else ch)
    return out


def namespace_chars(context_text: str, action_texts: Sequence[str]):
    """The distinct first characters of the context's and of the actions' namespaces (VW keys
    interactions on them), the default namespace left out.

    >>> namespace_chars("|User id=1 |x f:1", ["|Action id=0", "|Action id=1 |B b"])
    (['U', 'x'], ['A', 'B'])
    """
    ctx = [c for c in dict.fromkeys(_first_chars(context_text)) if c != " "]
    act = list(dict.fromkeys(c for text in action_texts for c in _first_chars(text) if c != " "))
    return ctx, act


def auto_interactions(context_text: str, action_texts: Sequence[str]) -> list:
    """Interactions crossing every context namespace with every action namespace, and each
    context namespace's own second-order terms with them (``--cubic cca``).

    >>> auto_interactions("|User id=1 |x f:1", ["|Action id=0"])
    ['-q', 'UA', '--cubic', 'UUA', '-q', 'xA', '--cubic', 'xxA']
    """
    ctx, act = namespace_chars(context_text, action_texts)
    out = []
    for c in ctx:
        for a in act:
            out += ["-q", c + a, "--cubic", c + c + a]
    return out


_INTERACTION_FLAGS = {"-q", "--quadratic", "--interactions", "--cubic", "--experimental_full_name_interactions"}


def cb_arguments(cb_args, context_text: str, action_texts: Sequence[str], seed: int = 0, prefix=None) -> str:
    """The full CB argument string: ``cb_args`` plus auto interactions when it names none.

    >>> cb_arguments("--cb_explore_adf", "|x a:1", ["|A id=1"], seed=2)
    '--cb_explore_adf -q xA --cubic xxA --random_seed 2 --quiet'
    """
    tokens = split_args(prefix) + split_args(cb_args)
    if not _INTERACTION_FLAGS.intersection(tokens):
        tokens += auto_interactions(context_text, action_texts)
    return build_args(tokens, seed=seed)


class Workspace:
    """A VW workspace that cannot be driven into VW's crash paths.

    Every parsed example is learned or predicted and then finished, in one call.
    Parse errors come back as :class:`ValueError` naming the offending text.

    Parameters
    ----------
    args
        VW command line (without ``-i``/``-f``).
    model_file
        Optional path of a saved model to load (``-i``); its performance counters are kept.
    """

    def __init__(self, args: str, model_file: Union[str, os.PathLike, None] = None):
        self.args = args
        # --preserve_performance_counters: a reloaded model keeps its example counts, so a model
        # saved after resuming is byte-identical to one trained without interruption.
        full = args if model_file is None else (
            f"{args} --preserve_performance_counters -i {shlex.quote(os.fspath(model_file))}"
        )
        try:
            self._ws = pyvw.Workspace(full)
        except Exception as err:  # VW raises RuntimeError / its own types on bad flags
            raise ValueError(f"VW rejected the arguments {full!r}: {err}") from None
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
            raise ValueError(f"VW arguments {full!r} give predictions of type {kind.name}, which iglp-vw does not read")
        self._read = readers[kind]

    def _run(self, text, learn: bool):
        # The low-level calls pyvw itself makes, without its per-example wrapper
        # objects (they were ~20% of a learn step). Parse, learn or predict, read,
        # and always finish, in this order: nothing parsed is left unfinished and
        # nothing unlearned/unpredicted is finished.
        ws = self._ws
        if type(text) is str and not self._multiline:  # the IK's path: one line, fewer steps
            if "\r" in text:
                text = text.replace("\r", "")
            try:
                examples = ws._parse(text)
            except RuntimeError as err:
                raise ValueError(f"VW could not parse the example {text[:300]!r}: {err}") from None
            if len(examples) != 1:
                for ex in examples:
                    ws._finish_example(ex)
                raise ValueError(f"expected one example, VW parsed {len(examples)} from {text[:300]!r}")
            ex = examples[0]
            try:
                (pylibvw.vw.learn if learn else pylibvw.vw.predict)(ws, ex)
                return self._read(ex)
            finally:
                ws._finish_example(ex)
        joined = text if isinstance(text, str) else "\n".join(text)
        if "\r" in joined:
            joined = joined.replace("\r", "")
        try:
            examples = self._ws._parse(joined.strip())
        except RuntimeError as err:
            raise ValueError(f"VW could not parse the example {joined[:300]!r}: {err}") from None
        if not examples:
            raise ValueError(f"VW found no example in {joined[:300]!r}")
        try:
            if self._multiline:
                (pylibvw.vw.learn_multi if learn else pylibvw.vw.predict_multi)(ws, examples)
            else:
                if len(examples) != 1:
                    raise ValueError(f"expected one example, VW parsed {len(examples)} from {joined[:300]!r}")
                (pylibvw.vw.learn if learn else pylibvw.vw.predict)(ws, examples[0])
            return self._read(examples[0])
        finally:
            if self._multiline:
                ws._finish_example_multi_ex(examples)
            else:
                for ex in examples:
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
