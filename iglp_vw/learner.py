"""IGLP: personalized Interaction-Grounded Learning (Algorithm 1 of the IGL-P paper) on VW."""

from __future__ import annotations

import collections
import math
import shlex
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from . import modeldir
from ._util import write_json
from .base import Estimator, sample_pmf
from .cb import WorkspaceCB
from .decoder import CommunicationDecoder
from .ik import ActionFeatureIK, InverseKinematics
from .reward import GroupTest, is_extreme, reward_from_test
from .signals import SignalCells
from .vw import (
    VWTexts, Features, auto_interactions, cb_arguments, check_model_args, check_text, check_vw_args, drop_namespaces,
    escape, feedback_key, format_namespaces, interaction_char, interaction_options, interaction_terms,
    names_interactions, namespace_chars, namespace_names, split_args, user_key,
)

__all__ = ["IGLP", "DEFAULT_CB_ARGS", "IKPipeline", "InferenceWarning", "sample_pmf"]


class InferenceWarning(UserWarning):
    """The inferred reward looks wrong: see :meth:`IGLP.diagnostics`."""

# Default contextual bandit, chosen by measurement (docs/ik-design.md, "CB explorer"):
# ε-greedy with ε = 0.05 had the best worst case against the strongest oracle CB
# (squarecb was better on synthetic50k but 0.86 of the oracle on digits, and a
# greedier squarecb collapsed IGL-P to 0.13: the IK then learns its own policy).
# Interactions are "auto" (see vw.auto_interactions), resolved on the first event.
DEFAULT_CB_ARGS = "--cb_explore_adf --epsilon 0.05"

# The largest action set (IK classes) a learner accepts: an --oaa K model costs time and
# memory in K on every event.
MAX_NUM_ACTIONS = 1 << 16
# The namespaces a learner remembers having seen (context and actions, each), for diagnostics.
MAX_NAMESPACES_KEPT = 64
# Action texts remembered as noted, so that a catalogue's recurring items are not parsed per event.
MAX_TEXTS_NOTED = 4096
# Importance weights 1/(K p) are capped here: a logged probability of 1e-300 would otherwise
# weigh 1e299 and swamp the decoder's counts and the group test for thousands of events.
# ε-greedy with ε = 0.05 over 10 actions weighs at most 20.
MAX_IMPORTANCE_WEIGHT = 100.0
# diagnostics() names users whose convention turned since the model was loaded once at least this
# many, and this share of the users compared, did.
CHANGED_MIN_USERS = 5
CHANGED_MIN_SHARE = 0.05
# IGLP.learn_many moves the IK to a process of its own for this many events or more (below,
# starting the process and bringing the IK back cost more than they save).
IK_PROCESS_MIN_EVENTS = 2000
# Events the guessing IK of mixed groups learns before its guesses may be used (until then the IK's).
GUESS_WARMUP = 1000
# Their log losses are compared over about the last 1 / (1 - GUESS_DECAY) events of the group.
GUESS_DECAY = 1.0 - 1.0 / 5000

_FORMAT_VERSION = 2
_STATE_KEYS = ("decoder", "group_stats", "rng", "n_learned")


class _Oracle:
    """DN(x, y) (or "definitely positive") from a callable or from a set of feedback feature names/values."""

    def __init__(self, spec):
        self.spec = spec
        if spec is None:
            self._fn = lambda context, feedback, text: False
        elif callable(spec):
            self._fn = lambda context, feedback, text: bool(spec(context, feedback))
        elif isinstance(spec, Iterable) and not isinstance(spec, (str, bytes)):
            names = frozenset(str(s) for s in spec)
            self._fn = lambda context, feedback, text: _tokens_match(text, names)
        else:
            raise TypeError(
                f"`definitely_negative` must be a callable (context, feedback) -> bool or a set of "
                f"feedback feature names, got {spec!r}"
            )

    def __call__(self, context, feedback, feedback_text) -> bool:
        return self._fn(context, feedback, feedback_text)

    def to_json(self):
        if self.spec is None:
            return None
        if callable(self.spec):
            return "<callable>"
        return sorted(str(s) for s in self.spec)


def _tokens_match(feedback_text: str, names: frozenset) -> bool:
    """True when a feedback feature's name, value or ``name=value`` is in ``names``."""
    for token in feedback_text.split():
        if token.startswith("|"):
            continue
        feature = token.split(":", 1)[0]
        if feature in names:
            return True
        name, eq, value = feature.partition("=")
        if eq and (name in names or value in names):
            return True
    return False


_IK = {"slot": InverseKinematics, "features": ActionFeatureIK}


class IGLP(Estimator):
    """Personalized IGL (IGL-P) on Vowpal Wabbit: learns the reward from feedback, then the policy.

    Each :meth:`learn` call runs one round of Algorithm 1: the inverse-kinematics
    (IK) model predicts which action was played from the context and the
    feedback (line 10), the extreme-event test turns that into an inferred
    reward ρ̂ (Eq. 4), the contextual bandit learns cost ``-ρ̂`` (lines 11–18),
    and the IK learns the event with importance weight ``1/(K p(a|x))`` towards
    the synthetic uniform policy (line 19).

    **Whose feedback it is.** Users communicate differently; the learner finds
    the user in the context's ``user_namespace`` (``"User"`` by default: all its
    features together are the user's key) and groups (user, feedback) pairs with
    an unsupervised :class:`~iglp_vw.decoder.CommunicationDecoder`. A user never
    seen before is treated as a typical user of the population until their own
    feedback says otherwise; a context without the namespace is such a user
    every time.

    **Extreme-event test.** ``extreme_test="group"`` (default) applies Eq. 3 to
    each group of pairs (:class:`~iglp_vw.reward.GroupTest`): a group turns extreme
    when its importance-weighted mean of P̂(a|x,y)/P̂(a|x) over about ``group_window``
    units of weight exceeds ``threshold`` by ``confidence`` standard errors, and stays
    so until it is as clearly below. ``"event"`` applies it to each event alone, as
    in the paper. ``prior="learned"``
    (default) compares with a second VW model of P̂(a|x) trained on the same
    weighted stream; ``"uniform"`` compares with ``1/K``. Why these defaults:
    ``docs/ik-design.md``.

    Parameters
    ----------
    num_actions
        Only for ``ik_model="slot"``: K, the number of action slots (the IK's classes);
        action sets may be smaller. Otherwise unneeded: each event brings its own action
        set, of any size and order, and its importance weight uses its own size |A_t|
        (the paper's footnote 2).
    states
        2 or 3 latent reward states.
    alpha
        Negative labelling propensity α in (0, 1] (3 states only).
    definitely_negative
        DN oracle (3 states only): a callable ``(context, feedback) -> bool`` or
        a set of feedback feature names/values such as ``{"dislike"}``.
    definitely_positive
        "Definitely positive" oracle (3 states only; the paper's footnote 1), same
        forms, e.g. ``{"love"}``; see :func:`iglp_vw.reward.reward_from_test` for how
        it combines with the negative one.
    threshold
        The extreme-event factor (2 in the paper).
    seed
        Seeds VW (``--random_seed``) and the sampling of :meth:`act`.
    cb_args
        Contextual bandit arguments; without ``-q``/``--interactions`` every
        context namespace is crossed with every action namespace.
    ik_args
        Extra VW arguments for the IK models.
    ik_model
        ``"features"`` (default): the IK scores the candidates by their features (VW
        ``--csoaa_ldf``), so a catalogue in a fixed order and candidates that change from
        round to round, in number or in order, are all learned alike. ``"slot"``: it
        predicts the action's position among ``num_actions`` (``--oaa K``), for a fixed
        catalogue in a fixed order only.
    user_namespace
        The context namespace that says whose feedback it is, or a list of them. All its
        features together are the user's key; with several features (an id and segment
        features such as a country), each feature is also a segment whose convention a
        new user gets until their own feedback says otherwise.
    max_users
        The memory budget: users (and user segments) whose feedback conventions are kept.
        Beyond it the users with the least recent evidence are forgotten and, if they come
        back, start again from their segments' or the population's convention (see
        :class:`~iglp_vw.decoder.CommunicationDecoder`). About 0.6 KB of memory each: the default
        16,384 is ~10 MB, whatever the number of users in the log. ``None``: no bound.
    extreme_test, prior, group_window, confidence, patience
        See above and :class:`~iglp_vw.reward.GroupTest` (``patience``: events before
        rewards from mixed groups, when no group is extreme).
    decoder_args
        Keyword arguments of :class:`~iglp_vw.decoder.CommunicationDecoder`, e.g.
        ``{"half_life": 4000}`` for daily retraining whose conventions change (the command
        line's ``--half-life``; nothing fades by default).
    user_features
        ``"known"`` (default): the IK and the CB learn the user namespace(s) from a user's
        second event on (while the decoder knows them); a user's first event is learned
        (and scored by the IK) on the rest of the context, as the population's. A feature
        seen once cannot generalise, and VW's per-feature adaptive rates gave each new id a
        large share of the update, taken from the features that recur: where most ids are
        seen once this was most of the IK's noise (10^6 ids, 20% contrarians: greedy
        accuracy 0.74 -> 0.83, docs/ik-design.md). The CB still *predicts* with them (an
        unseen id's weights are 0), so ``cb.model`` scores logs as before. ``"always"``:
        both always learn them (the behaviour before).
    cb
        The CB component's factory, ``cb(args, model_file=None)``: :class:`~iglp_vw.cb.WorkspaceCB`
        (default) or, for offline replay, :class:`~iglp_vw.cb.DriverCB` (see :mod:`iglp_vw.cb`).

    Examples
    --------
    >>> learner = IGLP(num_actions=3, seed=0)
    >>> context = {"User": {"id": "u1"}, "x": {"f0": 0.5}}
    >>> actions = [{"Action": {"id": str(k)}} for k in range(3)]
    >>> pmf = learner.predict(context, actions)
    >>> [round(p, 3) for p in pmf]
    [0.333, 0.333, 0.333]
    >>> learner.learn(context, actions, action=1, prob=pmf[1], feedback={"Feedback": {"word": "w7"}})
    0.0
    """

    def __init__(
        self,
        num_actions: Optional[int] = None,
        states: int = 2,
        alpha: float = 1.0,
        definitely_negative=None,
        definitely_positive=None,
        threshold: float = 2.0,
        seed: int = 0,
        cb_args: str = DEFAULT_CB_ARGS,
        ik_args: Optional[str] = None,
        ik_model: str = "features",
        user_namespace: str = "User",
        max_users: Optional[int] = 16_384,
        extreme_test: str = "group",
        prior: str = "learned",
        group_window: int = 50,
        confidence: float = 2.0,
        patience: int = 5000,
        decoder_args: Optional[dict] = None,
        user_features: str = "known",
        cb: Optional[Callable] = None,
        feedback_model: str = "decoder",
    ):
        if num_actions is not None and (isinstance(num_actions, bool) or not isinstance(num_actions, (int, np.integer))
                                        or not 2 <= num_actions <= MAX_NUM_ACTIONS):
            raise ValueError(f"`num_actions` must be None or an int in [2, {MAX_NUM_ACTIONS}], got {num_actions!r}")
        if num_actions is None and ik_model == "slot":
            raise ValueError("ik_model='slot' predicts the action's position among `num_actions` slots: give num_actions")
        if states not in (2, 3):
            raise ValueError(f"`states` must be 2 or 3, got {states!r}")
        if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(f"`alpha` must be in (0, 1], got {alpha!r}")
        if states == 2 and (alpha != 1 or definitely_negative is not None or definitely_positive is not None):
            raise ValueError(
                "`states=2` means `alpha=1` and no `definitely_negative`/`definitely_positive` oracle; "
                "use `states=3` for those"
            )
        if not isinstance(threshold, (int, float)) or not threshold > 1:
            raise ValueError(f"`threshold` must be > 1, got {threshold!r}")
        if extreme_test not in ("group", "event"):
            raise ValueError(f"`extreme_test` must be 'group' or 'event', got {extreme_test!r}")
        if prior not in ("learned", "uniform"):
            raise ValueError(f"`prior` must be 'learned' or 'uniform', got {prior!r}")
        if user_features not in ("known", "always"):
            raise ValueError(f"`user_features` must be 'known' or 'always', got {user_features!r}")
        if feedback_model not in ("decoder", "signals"):
            raise ValueError(f"`feedback_model` must be 'decoder' or 'signals', got {feedback_model!r}")
        if feedback_model == "signals" and (ik_model != "features" or extreme_test != "group"):
            raise ValueError("feedback_model='signals' needs ik_model='features' and extreme_test='group'")
        if ik_model not in _IK:
            raise ValueError(f"`ik_model` must be 'slot' or 'features', got {ik_model!r}")
        if isinstance(group_window, bool) or not isinstance(group_window, (int, np.integer)) or group_window < 2:
            raise ValueError(f"`group_window` must be an int >= 2, got {group_window!r}")
        if not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or not confidence >= 0:
            raise ValueError(f"`confidence` must be a number >= 0, got {confidence!r}")
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
            raise ValueError(f"`patience` must be an int >= 0, got {patience!r}")
        if not isinstance(user_namespace, str) and not (
                isinstance(user_namespace, (list, tuple)) and user_namespace
                and all(isinstance(n, str) for n in user_namespace)):
            raise TypeError(f"`user_namespace` must be a str or a list of str, got {user_namespace!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"`seed` must be an int, got {seed!r}")
        if max_users is not None and (isinstance(max_users, bool) or not isinstance(max_users, (int, np.integer))
                                      or max_users < 4):
            raise ValueError(f"`max_users` must be None or an int >= 4, got {max_users!r}")
        if decoder_args is not None and not isinstance(decoder_args, dict):
            raise TypeError(f"`decoder_args` must be a dict, got {decoder_args!r}")
        if ik_args is not None:
            check_vw_args(ik_args, "`ik_args`", base="--oaa 2 --probabilities")
        # VW's own parser judges the CB's arguments now, not at the first event; the CB must
        # explore (a greedy CB's pmf is one-hot, and IGL-P learns from the logged probability).
        check_vw_args(cb_args, "`cb_args`", require="--cb_explore_adf")
        self.num_actions = None if num_actions is None else int(num_actions)
        self.states = states
        self.alpha = float(alpha)
        self.definitely_negative = definitely_negative
        self.definitely_positive = definitely_positive
        self.threshold = float(threshold)
        self.seed = int(seed)
        self.cb_args = cb_args
        self.ik_args = ik_args
        self.ik_model = ik_model
        self.user_namespace = user_namespace if isinstance(user_namespace, str) else list(user_namespace)
        self.max_users = None if max_users is None else int(max_users)
        self.extreme_test = extreme_test
        self.prior = prior
        self.group_window = int(group_window)
        self.confidence = float(confidence)
        self.patience = int(patience)
        self.decoder_args = decoder_args
        self.user_features = user_features
        self.cb = cb
        self.feedback_model = feedback_model

        self._dn = _Oracle(definitely_negative)
        self._dp = _Oracle(definitely_positive)
        self._rng = np.random.default_rng(self.seed)
        # One group bit per non-zero state by default (decoder_args may set "dims").
        self._decoder = CommunicationDecoder(**{"dims": states - 1, "max_users": self.max_users, **(decoder_args or {})})
        self._loaded_conventions = None  # the decoder's scores when the model was loaded (see diagnostics)
        self._ik = _IK[ik_model](self.num_actions, ik_args, self.seed)
        self._cb = None  # built on the first event (interactions come from its namespaces)
        self._cb_full_args: Optional[str] = None
        # Namespaces for the CB's interactions: the characters of those named before the first
        # event (see_namespaces), and every context and action namespace's name (' ': the
        # default one) with the event it first came at (diagnostics).
        self._ns_expected: tuple = ([], [])
        self._ns_window = 0
        self._ns_seen: tuple = ({}, {})
        self._ns_last_actions = None  # the action texts last noted (a catalogue's come back as one object)
        self._ns_known: set = set()  # action texts already noted (a catalogue's items recur): not parsed again
        self._guess = None  # the guessing IK of mixed groups (see _guess_vectors), started when needed
        self._guess_stats: dict = {}
        self._new_user = False  # the last event's user was new to the decoder (see `user_features`)
        self._test = GroupTest(self.threshold, self.group_window, self.confidence, self.patience)
        self._signals = None
        if feedback_model == "signals":
            self._signals = SignalCells(self._negative_token, self.alpha)
        self._cache = (None, "", None, [])
        self.n_learned = 0
        self._weight_seen = 0.0  # Σ importance weights, and of events with ρ̂ != 0: the share of
        self._weight_inferred = 0.0  # inferred rewards under the synthetic uniform policy
        self._without_user = 0  # events whose context lacks the user namespace
        self._warned: set = set()
        self.last: dict = {}

    def _negative_token(self, token: str) -> bool:
        """Whether one feedback token is a definitely-negative signal (a set oracle only)."""
        spec = self.definitely_negative
        if self.states != 3 or spec is None or callable(spec):
            return False
        return _tokens_match(token, self._dn_names)

    @property
    def _dn_names(self) -> frozenset:
        return frozenset(str(n) for n in self.definitely_negative)

    # ------------------------------------------------------------- formatting
    def _format(self, context: Features, actions: Sequence[Features]):
        # Texts of the last context and action set are reused while the same objects
        # come back (predict then learn; a catalogue's action list every round).
        cached_ctx, ctx_text, cached_actions, action_texts = self._cache
        if context is not cached_ctx:
            ctx_text = format_namespaces(context, "context")
        if actions is not cached_actions or len(actions) != len(action_texts):
            action_texts = self._action_texts(actions)
        self._cache = (context, ctx_text, actions, action_texts)
        return ctx_text, action_texts

    def _action_texts(self, actions) -> list:
        if isinstance(actions, (str, bytes)) or not isinstance(actions, Sequence) or not actions:
            raise ValueError("`actions` must be a non-empty list of per-action features")
        if self.num_actions is not None and len(actions) > self.num_actions:
            raise ValueError(f"`actions` has {len(actions)} entries, more than num_actions={self.num_actions}")
        if type(actions) is VWTexts:  # checked by the log readers
            return actions
        return [format_namespaces(a, f"actions[{i}]") for i, a in enumerate(actions)]

    def _cb_for(self, ctx_text: str, action_texts: Sequence[str]):
        if self._cb is None:
            self._cb_full_args = cb_arguments(self.cb_args, ctx_text, action_texts, self.seed, more=self._ns_expected)
            self._cb = (self.cb or WorkspaceCB)(self._cb_full_args)
        return self._cb

    def see_namespaces(self, context: Features, actions: Sequence[Features]) -> None:
        """Have the CB's interactions cross this event's namespaces too, as well as the first
        learned event's: call it on a first window of events before learning (``iglp-vw
        replay`` does on its logs' first ``NAMESPACE_WINDOW`` events, :meth:`learn_many` on all
        of a list's or DataFrame's, unless it was called before). Without it the interactions come from the first event's
        namespaces, and :meth:`diagnostics` names any later namespace they miss. Does nothing
        once the CB exists."""
        if self._cb is not None:
            return
        for side, features in [(0, context)] + [(1, a) for a in actions]:
            if isinstance(features, str):  # VW text: checked as learn checks it
                chars = namespace_chars(check_text(features, "context" if side == 0 else "actions"), ())[0]
            else:  # a dict: its keys, named as format_namespaces names them (without formatting the features)
                chars = [interaction_char(escape(k if type(k) is str else str(k))) for k in features or ()]
            known = self._ns_expected[side]
            known += [c for c in dict.fromkeys(chars) if c not in known]
        self._ns_window += 1

    def _note_namespaces(self, ctx_text: str, action_texts: Sequence[str]) -> None:
        """Record the namespaces of a learned event that were not seen before (a few dozen at most)."""
        self._note(self._ns_seen[0], namespace_names(ctx_text))
        if action_texts is self._ns_last_actions:
            return
        self._ns_last_actions = action_texts
        known = self._ns_known
        for text in action_texts:
            if text not in known:
                if len(known) >= MAX_TEXTS_NOTED:
                    known.clear()
                known.add(text)
                self._note(self._ns_seen[1], namespace_names(text))

    def _note(self, seen: dict, names) -> None:
        for name in names:
            if name not in seen and len(seen) < MAX_NAMESPACES_KEPT:
                seen[name] = self.n_learned

    # ------------------------------------------------------------------- API
    def predict(self, context: Features, actions: Sequence[Features]) -> list:
        """The policy's pmf over ``actions`` (a list of ``len(actions)`` floats)."""
        ctx_text, action_texts = self._format(context, actions)
        return self._cb_for(ctx_text, action_texts).predict(ctx_text, action_texts)

    def learn(self, context: Features, actions: Sequence[Features], action: int, prob: float, feedback: Features) -> float:
        """One round of Algorithm 1 for a played (or logged) ``action`` with probability ``prob``.

        Returns the inferred reward ρ̂: 0, 1 or -1/alpha (in a mixed group, see
        :class:`~iglp_vw.reward.GroupTest`, for the IK's best guesses only). Off-policy, pass
        the logging policy's probability; on-policy, the one :meth:`predict` gave.
        ``feedback=None`` means the user gave none. Warns (:class:`InferenceWarning`, once)
        when nothing has been inferred after ``patience`` events, or when rewards are
        inferred for most events under the synthetic uniform policy.
        """
        ctx_text, action_texts = self._format(context, actions)
        rho = self._infer(context, ctx_text, action_texts, len(action_texts), action, prob, feedback, update=True)
        self._cb_learn(ctx_text, action_texts, action, prob, rho, self._new_user)
        return rho

    def _cb_learn(self, ctx_text, action_texts, action, prob, rho, new_user: bool) -> None:
        cb = self._cb_for(ctx_text, action_texts)
        if new_user:  # learned as the population's, like the IK (see `user_features`)
            ctx_text = drop_namespaces(ctx_text, self.user_namespace)
        cb.learn(ctx_text, action_texts, action, -rho, prob)  # lines 11-18

    # Offline replay in two stages (iglp_vw.replay): the IK's input stream does not depend on
    # its output, so an event's first stage (formatting, the decoder's code and update) can run
    # ahead while the IK learns earlier events in another process (ik.IKProcess); the second
    # stage (the group test, ρ̂, the CB) then runs in the events' order. Same models as learn().
    def learn_begin(self, context: Features, actions: Sequence[Features], action: int, prob: float,
                    feedback: Features):
        """First stage of :meth:`learn`: ``(staged, request)``, the request being the
        arguments of the IK's learning step (see :class:`~iglp_vw.ik.IKProcess`). Raises
        :class:`ValueError` for bad input before changing anything."""
        ctx_text, action_texts = self._format(context, actions)
        staged = self._begin(context, ctx_text, action_texts, len(action_texts), action, prob, feedback)
        self._decoder.update(staged.user, staged.fb_key, staged.weight)
        if self._signals is not None:
            self._signals.picker.update(staged.user, staged.fb_key, staged.weight)
        return staged, (staged.prepare, staged.ik_text, staged.code, action, staged.weight, action_texts)

    def learn_many(self, events, ik_process: Optional[bool] = None) -> np.ndarray:
        """:meth:`learn` on each event in order; the same models as the loop (see
        :meth:`Estimator.learn_many` for the inputs).

        ``ik_process``: learn with the IK in a forked process of its own, a few batches of
        events behind the rest (as ``iglp-vw replay`` does; byte-identical models, tested), and
        bring it back into this process at the end. ``None`` (default): for
        ``IK_PROCESS_MIN_EVENTS`` events or more, where the platform can fork and this
        process may use more than one CPU. A :class:`ValueError` for an event leaves the
        learner as it was after the events before it, as the loop does.
        """
        from .base import _at, _event_rows
        from .ik import use_ik_process

        if self._cb is None and not self._ns_window and (isinstance(events, (list, tuple))
                                                         or type(events).__name__ == "DataFrame"):
            try:  # the CB's interactions cross all their namespaces (learning checks the rows)
                for row in _event_rows(events, learn=False):
                    self.see_namespaces(row[0], row[1])
            except (TypeError, ValueError, AttributeError):
                pass
        if ik_process is None and _length(events) < IK_PROCESS_MIN_EVENTS:
            ik_process = False  # starting the process would cost more than it saves
        if not use_ik_process(ik_process):
            return super().learn_many(events)
        out: list = []
        pipe = IKPipeline(self, lambda rho, i: out.append(rho), lambda i: f"event {i}")
        try:
            for i, (where, row) in enumerate(_event_rows(events, learn=True, numbered=True)):
                try:
                    staged = self.learn_begin(*row)
                except (ValueError, TypeError) as err:
                    pipe.drain()
                    raise _at(err, where) from err
                pipe.put(staged, i)
            pipe.drain()
        except KeyboardInterrupt:
            pipe.drain()  # what was handed on is finished: the learner stays as after those events
            raise
        finally:
            self.stop_ik_process()
        return np.asarray(out, float)

    def stop_ik_process(self) -> None:
        """Bring the IK back from its process (saved there, loaded here) and end the process."""
        import tempfile

        from .ik import IKProcess

        proc = self._ik
        if not isinstance(proc, IKProcess):
            return
        try:
            if not proc.closed:
                with tempfile.TemporaryDirectory(prefix="iglp-ik-") as tmp:
                    proc.save(Path(tmp) / "ik.model", Path(tmp) / "ik_prior.model")
                    self._ik = _IK[self.ik_model].load(self.num_actions, self.ik_args, self.seed,
                                                       Path(tmp) / "ik.model", Path(tmp) / "ik_prior.model")
        finally:
            proc.close()

    def start_ik_process(self):
        """Move the IK to a forked process of its own (:class:`~iglp_vw.ik.IKProcess`), which
        then stands in for it, and return that process (the replay feeds it in batches)."""
        from .ik import IKProcess

        self._ik = IKProcess(self._ik)
        return self._ik

    def learn_end(self, staged, vectors, cb: bool = True) -> float:
        """Second stage of :meth:`learn` (``cb=False``: of :meth:`learn_reward`), given the IK's
        ``(P̂(·|x,s), P̂(·|x))`` for the event."""
        rho = self._finish(staged, vectors, update=True)
        if cb:
            self._cb_learn(staged.ctx_text, staged.action_texts, staged.action, staged.prob, rho, staged.new_user)
        return rho

    def learn_reward(self, context: Features, num_candidates: int, action: int, prob: float, feedback: Features,
                     actions: Optional[Sequence[Features]] = None) -> float:
        """:meth:`learn` without the CB update: the IK, the decoder and ρ̂.

        ``num_candidates`` is the size of the event's action set; ``actions`` (its
        features) are needed with ``ik_model="features"``. For a CB of one's own
        trained on ρ̂ (``iglp-vw label`` writes it as the cost).
        """
        return self._reward(context, num_candidates, action, prob, feedback, actions, update=True)

    def infer_reward(self, context: Features, num_candidates: int, action: int, prob: float, feedback: Features,
                     actions: Optional[Sequence[Features]] = None) -> float:
        """ρ̂ for one event from the models as they are, learning nothing (``iglp-vw label``).

        Same test as :meth:`learn`; ``self.last`` describes the event.
        """
        return self._reward(context, num_candidates, action, prob, feedback, actions, update=False)

    def _guess_vectors(self, ik_text, code, action, weight, action_texts, update: bool, ik_probability: float):
        """The guessing IK of mixed groups: its ``(P̂(·|x,s), P̂(·|x))`` while it predicts the
        played actions better than the IK, else ``None``.

        In a mixed group (users who cannot be told apart, a minority contradicting the
        majority) an event counts as rewarded when its action is the IK's best guess, so the
        guess needs to be as expressive as the data ask: the IK is linear in the context
        (fast to learn on short runs), the CB's default quadratic. A second action-feature
        IK with quadratic context terms is started when mixed-group mode begins (never
        otherwise: no cost where groups are extreme), learns every event while it lasts, and
        is dropped when it ends (a group turned extreme).
        Its guesses are used in a group while its progressive importance-weighted log loss
        on the group's played actions (each predicted before it is learned, as VW's
        progressive validation) is below the IK's over the same recent events (about
        the last 5,000: the quadratic model starts slower), after ``GUESS_WARMUP`` of them.
        """
        if self._guess is not None and update and not self._test.mixed:
            self._guess, self._guess_stats = None, {}  # a group turned extreme: mixed-group mode is over
        if self._guess is None:
            if not (update and self.ik_model == "features" and self.extreme_test == "group" and self._test.mixed):
                return None
            self._guess = ActionFeatureIK(None, self.ik_args, self.seed, quadratic=True)
            self._guess_stats = {}  # per group: [events, Σ w·(-log P̂(a|x,s)) of the IK, the same of the guess]
        stats = self._guess_stats.get(code)
        if update:
            vectors = self._guess.learn(ik_text, code, action, weight, action_texts)
            if stats is None:
                stats = self._guess_stats[code] = [0, 0.0, 0.0]
            stats[0] += 1
            stats[1] = stats[1] * GUESS_DECAY - weight * math.log(max(ik_probability, 1e-12))
            stats[2] = stats[2] * GUESS_DECAY - weight * math.log(max(vectors[0][action], 1e-12))
        else:
            vectors = self._guess.predict(ik_text, code, action_texts)
        return vectors if stats is not None and stats[0] > GUESS_WARMUP and stats[2] < stats[1] else None

    def _reward(self, context, num_candidates, action, prob, feedback, actions, update: bool) -> float:
        ctx_text = format_namespaces(context, "context")
        most = self.num_actions or MAX_NUM_ACTIONS
        if isinstance(num_candidates, bool) or not isinstance(num_candidates, (int, np.integer)) or \
                not 0 < num_candidates <= most:
            raise ValueError(f"`num_candidates` must be in [1, {most}], got {num_candidates!r}")
        if actions is None:
            if self.ik_model == "features":
                raise ValueError("ik_model='features' needs the event's `actions`")
            texts = []
        else:
            texts = self._action_texts(actions)
            if len(texts) != num_candidates:
                raise ValueError(f"`actions` has {len(texts)} entries, `num_candidates` is {num_candidates}")
        return self._infer(context, ctx_text, texts, int(num_candidates), action, prob, feedback, update)

    def _infer(self, context, ctx_text, action_texts, k, action, prob, feedback, update: bool) -> float:
        """Algorithm 1 without the CB: the IK's P̂(a|x,y) (line 10), the extreme-event test
        (Eq. 3) on the pair's group, ρ̂ (Eq. 4), and, with ``update``, the IK's and the
        decoder's updates weighted to the synthetic uniform policy (lines 9 and 19)."""
        staged = self._begin(context, ctx_text, action_texts, k, action, prob, feedback)
        self._new_user = staged.new_user
        if staged.prepare is not None:
            self._ik.prepare(staged.prepare, action_texts)
        if update:
            vectors = self._ik.learn(staged.ik_text, staged.code, action, staged.weight, action_texts)
            self._decoder.update(staged.user, staged.fb_key, staged.weight)  # after the IK: it may refuse the text
            if self._signals is not None:
                self._signals.picker.update(staged.user, staged.fb_key, staged.weight)
        else:
            vectors = self._ik.predict(staged.ik_text, staged.code, action_texts)
        return self._finish(staged, vectors, update)

    def _begin(self, context, ctx_text, action_texts, k, action, prob, feedback) -> "_Staged":
        """An event checked, its feedback keyed, its user's group code and the IK's view of it
        (the decoder as it is: nothing is changed here)."""
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= action < k:
            raise ValueError(f"`action` must be an index in [0, {k}), got {action!r}")
        if isinstance(prob, bool) or not (isinstance(prob, (int, float, np.floating)) and 0 < prob <= 1):
            raise ValueError(f"`prob` must be in (0, 1], got {prob!r}")
        if feedback is None:  # no feedback
            feedback = {}
        fb_text = format_namespaces(feedback, "feedback")
        fb_key = feedback_key(fb_text)  # numeric values bucketed
        user = user_key(context, self.user_namespace)

        weight = min(1.0 / (k * prob), MAX_IMPORTANCE_WEIGHT)  # line 9: synthetic uniform distribution
        cell, negative = None, False
        if self._signals is not None:
            code, cell, negative = self._signals.describe(user, fb_key)
        else:
            code = self._decoder.code(user, fb_key)
        ik_text, prepare = ctx_text, None
        new_user = bool(user) and self.user_features == "known" and not self._decoder.knows(user)
        if new_user:
            # A user's first event (or a forgotten user's): the IK sees the population's view.
            # Features seen once can only add noise, and where most ids are seen once they
            # took a large share of every update from the features that recur. The IK's
            # interactions are resolved from the whole context first.
            prepare = ctx_text
            ik_text = drop_namespaces(ctx_text, self.user_namespace)
        return _Staged(context, ctx_text, action_texts, k, action, prob, feedback, fb_text, fb_key, user, weight,
                       code, new_user, ik_text, prepare, cell, negative)

    def _finish(self, staged: "_Staged", vectors, update: bool) -> float:
        """The group test and ρ̂ of a staged event from the IK's ``(P̂(·|x,s), P̂(·|x))``."""
        context, action_texts, k, action = staged.context, staged.action_texts, staged.k, staged.action
        feedback, fb_text, code, weight, ik_text = staged.feedback, staged.fb_text, staged.code, staged.weight, staged.ik_text
        posteriors, priors = vectors
        guess = self._guess_vectors(ik_text, code, action, weight, action_texts, update, posteriors[action])
        ik_probability = posteriors[action]
        # At most K: P̂(a|x,y) <= 1 against the uniform prior 1/K; above that a learned prior near
        # 0 is estimation error, and one such ratio (1e11 was seen) would rule a group's mean.
        learned = self.prior == "learned"

        def ratio_of(i: int) -> float:
            return min(posteriors[i] / max(priors[i] if learned else 1.0 / k, 1e-12), float(k))

        prior = priors[action] if learned else 1.0 / k
        ratio = ratio_of(action)

        def top() -> bool:  # the played action is the IK's best guess (asked in mixed groups only)
            if guess is not None:  # the guessing IK's, once it has learned enough
                g_post, g_prior = guess
                g = [q / max(p, 1e-12) for q, p in zip(g_post[:k], g_prior[:k])]
                return g[action] >= max(g)
            return all(ratio_of(i) <= ratio for i in range(k))
        strength = 1.0
        if staged.cell is not None:  # feedback_model="signals": Eq. 3 per cell, its sign from partial labels
            code = staged.cell
            # A cell short of extreme but confidently informative gets a soft reward, its mean ratio
            # (m - 1) / (threshold - 1) (issue 23, 10 seeds of the production world: mean greedy
            # true reward 0.370 against 0.361 with extreme cells only, ahead of the formula on 8
            # seeds against 7; the quiet style's long watches were in such cells, mean ratio ~2.1).
            strength = self._test.strength(code, ratio, top) or self._test.soft_strength(code)
            extreme = strength > 0
        elif code == "u":
            # Not grouped yet: infer nothing rather than guess. Early false positives
            # make the CB greedy on arbitrary actions, and the decoder then gets
            # little usable data (docs/ik-design.md).
            extreme = False
        elif self.extreme_test == "event":
            extreme = is_extreme(ratio, 1.0, self.threshold)  # Eq. 3 on this event
        else:  # Eq. 3 on the group's mean ratio, with evidence
            strength = self._test.strength(code, ratio, top)
            extreme = strength > 0
        if update:
            self._test.update(code, ratio, weight)

        positive = None
        if staged.cell is not None:
            # A definitely-negative signal is -1 whether or not its cell is extreme; the other
            # events of an extreme cell take the cell's sign (SignalCells.cell_is_negative).
            negative = staged.negative or (extreme and self._signals.cell_is_negative(code))
            rho = -1.0 if staged.negative else (-strength if negative else float(extreme) * strength)
            if update:
                self._signals.count(code, staged.negative, weight)
        else:
            negative = extreme and self.states == 3 and self._dn(context, feedback, fb_text)
            if self.definitely_positive is not None:
                positive = bool(extreme and not negative and self._dp(context, feedback, fb_text))
            rho = reward_from_test(extreme, negative, self.alpha, positive, self.definitely_negative is not None)  # Eq. 4
            rho *= strength  # 0 for the events of a mixed group that are not the IK's best guess (GroupTest)

        if update:
            self.n_learned += 1
            self._weight_seen += weight
            self._weight_inferred += weight * (rho != 0.0)
            self._without_user += not staged.user
            self._note_namespaces(staged.ctx_text, staged.action_texts)
            if self.n_learned == self.patience or (self.n_learned > self.patience and self.n_learned % self.patience == 0):
                for message in self.diagnostics():
                    kind = message.split(" ", 3)[:3]  # one warning of each kind
                    if tuple(kind) not in self._warned:
                        self._warned.add(tuple(kind))
                        warnings.warn(message, InferenceWarning, stacklevel=5)
        self.last = {
            "ik_probability": ik_probability,
            "prior": prior,
            "group": code,
            "extreme": bool(extreme),
            "definitely_negative": bool(negative),
            "definitely_positive": bool(positive),
            "inferred_reward": rho,
            "weight": weight,
        }
        return rho

    # ------------------------------------------------------------ diagnostics
    @property
    def namespaces_seen(self) -> dict:
        """The namespaces of the events learned so far: ``{"context": [...], "action": [...]}``
        in the order they first came (a few dozen at most; the feedback namespace is not among them)."""
        return {side: [n for n in seen if n != " "] for side, seen in zip(("context", "action"), self._ns_seen)}

    @property
    def cb_full_args(self) -> Optional[str]:
        """The CB's VW arguments with the interactions resolved (``None`` before the first event)."""
        return self._cb_full_args

    def group_ratios(self) -> dict:
        """Each group code's current mean P̂(a|x,y)/P̂(a|x) (the quantity the group test uses)."""
        return self._test.ratios()

    def embedding(self, users: Iterable[str] = (), feedback: Iterable[str] = ()):
        """The decoder's coordinates of users and feedback keys (for plots like the paper's Fig. 2)."""
        return (
            {u: self._decoder.user_score(u).tolist() for u in users},
            {f: (None if (v := self._decoder.feedback_score(f)) is None else v.tolist()) for f in feedback},
        )

    def diagnostics(self) -> list:
        """What looks wrong with the inference so far, in words (empty when nothing does).

        - nothing inferred after ``patience`` events: the feedback may not depend on the
          action, the user namespace may not name the users (conventions then cannot be
          told apart), or there are too few events yet;
        - rewards inferred for more than half of the events under the synthetic uniform
          policy: the rare-reward assumption IGL-P rests on does not hold for this
          feedback (a signal users give on most items), and the inferred reward is suspect;
        - 5% of the feedback (50 values or more) seen about once each: free text given as
          raw values, which the decoder cannot group (``scripts/free_text_feedback.py``);
        - a loaded model (``IGLP.load``, ``replay --continue``): users (at least 5, and 5% of
          those known then and now) or segments whose convention reads the other way round
          since it was loaded (:meth:`CommunicationDecoder.changed_since`).
        """
        out = []
        if self.n_learned and self._without_user == self.n_learned:
            seen = ", ".join(repr(n) for n in list(self._ns_seen[0])[:20]) or "none"
            out.append(
                f"no event's context has the user namespace {self.user_namespace!r} (context namespaces seen: "
                f"{seen}): every event counts as one unknown user, so personal conventions cannot be learned "
                "(namespace names are case-sensitive)"
            )
        if 0 < self.n_learned < self.patience and self._weight_inferred == 0:
            out.append(
                f"no reward inferred yet after {self.n_learned:,} events: the extreme-event test waits until a "
                f"group's mean P(a|x,y)/P(a|x) is above {self.threshold:g} by {self.confidence:g} standard errors "
                "(measured: the first reward comes at event 1,683 of the bundled digits log, at event 6,309 of a "
                "production-like one); train on more events (--continue with the next log), and if nothing is "
                f"inferred after {self.patience:,} events this note says what else to check"
            )
        if self.n_learned >= self.patience and self._weight_inferred == 0:
            out.append(
                f"no reward inferred after {self.n_learned:,} events: either the feedback does not depend on the "
                f"item shown, or whose feedback it is cannot be told (is '{self.user_namespace}' the namespace that "
                "names the user? users seen once each who disagree on what their feedback means cannot be "
                "decoded), or there are too few events yet"
            )
        if self.n_learned >= self.patience:
            values, rare = self._decoder.one_off()
            if values >= 50 and rare >= 0.05:
                out.append(
                    f"{rare:.0%} of the feedback is {values:,} values seen about once each (free text?): the decoder "
                    "cannot group them, and they blur the convention of the others (measured: a unique comment on "
                    "one event in ten left nothing inferred); map such feedback to a few values, or to features"
                )
        out += self._namespace_notes()
        out += self._convention_notes()
        share = self._weight_inferred / self._weight_seen if self._weight_seen else 0.0
        if self.n_learned >= self.patience and share > 0.5:
            out.append(
                f"a reward was inferred for {share:.0%} of events (weighted to the uniform policy): IGL-P assumes "
                "rewards are rare under uniform play, and this feedback looks like a signal users give on most "
                "items; the inferred reward is suspect"
            )
        return out

    def _convention_notes(self) -> list:
        """Users (and segments) whose convention reads the other way round since the model was loaded."""
        if self._loaded_conventions is None or self._signals is not None:
            return []
        users, compared, segments = self._decoder.changed_since(self._loaded_conventions)
        if len(users) < max(CHANGED_MIN_USERS, CHANGED_MIN_SHARE * compared) and not segments:
            return []
        shown = ", ".join(repr(u if len(u) <= 40 else u[:37] + "...") for u in users[:5])
        segs = f"; segment(s) {', '.join(map(repr, segments[:5]))} too" if segments else ""
        half_life = self._decoder.half_life
        how = (f"the model follows such a change within about its half-life ({half_life:,.0f} events)" if half_life
               else "nothing fades in this model (half_life None), so it follows such a change slowly: compare it "
                    "with a fresh model of the latest log before publishing it")
        return [
            f"the convention of {len(users):,} of the {compared:,} users known when this model was loaded reads "
            f"the other way round now (e.g. {shown}){segs}: their feedback means what the other convention's did. "
            f"Users' ways of signalling may have changed; {how}"
        ]

    def _namespace_notes(self) -> list:
        """What the CB's interactions miss or misread in the namespaces seen (see :meth:`diagnostics`)."""
        args = self._cb_full_args
        if not args or not self.n_learned:
            return []
        out = []
        ctx, act = self.namespaces_seen["context"], self.namespaces_seen["action"]
        crossed = {ch for term in interaction_terms(args) for ch in term}
        shown = " ".join(f"{flag} {value}" for flag, value in interaction_options(args)) or "none"
        if not names_interactions(self.cb_args):  # resolved here: do they cover every namespace seen?
            window = f"the first {self._ns_window:,} events" if self._ns_window > 1 else "the first event"
            late = [(side, name, seen[name]) for side, names, seen in (("context", ctx, self._ns_seen[0]),
                                                                        ("action", act, self._ns_seen[1]))
                    for name in names if interaction_char(name) not in crossed]
            if late:
                wanted = shlex.join(split_args(self.cb_args) + auto_interactions(
                    "", (), more=([interaction_char(n) for n in ctx], [interaction_char(n) for n in act])))
                names = ", ".join(f"{side} namespace {name!r} (first at event {at:,})" for side, name, at in late)
                out.append(
                    f"the CB's interactions ({shown}) were resolved from {window} and do not cross {names} with the "
                    f"other side: the policy does not use them. Learn again from scratch with the interactions given: "
                    f"--cb-args {shlex.quote(wanted)} (cb_args= in the API, or call see_namespaces on a first "
                    "window of events before learning)"
                )
        else:  # the user's own: does each name a namespace some event has?
            have = {interaction_char(n) for n in (*ctx, *act)}
            unused = sorted({ch for ch in crossed if ch != ":" and ch not in have})
            if unused:
                names = ", ".join(repr(n) for n in (*ctx, *act)) or "none"
                out.append(
                    f"the CB's interactions name namespace letter(s) {', '.join(unused)} that no event has (namespaces "
                    f"seen: {names}; VW keys interactions on a namespace's first letter): those terms do nothing"
                )
        by_char: dict = {}
        for side, seen in (("context", ctx), ("action", act)):
            for name in seen:
                by_char.setdefault(interaction_char(name), []).append(f"{side} namespace {name!r}")
        for ch, names in by_char.items():
            if len(names) > 1:
                out.append(
                    f"{' and '.join(names)} begin with the same letter {ch!r}: VW's interactions key on that "
                    f"letter, so they are crossed as one namespace (-q {ch}{ch} would cross them with each other); "
                    "rename one so that each begins with a letter of its own"
                )
        return out

    @property
    def decoder(self) -> CommunicationDecoder:
        """The communication-group decoder (read it; do not train it from outside)."""
        return self._decoder

    def sample(self, pmf: Sequence[float]):
        """Draw ``(index, prob)`` from ``pmf`` with the learner's seeded generator."""
        return sample_pmf(self._rng, pmf)

    def close(self) -> None:
        """End the CB component (for :class:`~iglp_vw.cb.DriverCB`: the driver writes its final model)."""
        if self._cb is not None:
            self._cb.close()

    # ------------------------------------------------------------ persistence
    def save(self, directory, extra: Optional[dict] = None) -> Path:
        """Publish every model, the decoder state and the configuration as one set in ``directory``.

        The set is written aside and published atomically (:mod:`iglp_vw.modeldir`): a
        reader never sees a mix of two sets, and two processes never write ``directory``
        at once. ``cb.model`` is a plain VW ``--cb_explore_adf`` model
        (``python -m vowpalwabbit -i DIR/cb.model -t`` reads it). ``extra``: more JSON
        files of the set, ``{name: object}`` (the replay's position and summary).
        """
        def write(target: Path) -> None:
            self._write(target)
            for name, obj in (extra or {}).items():
                write_json(target / name, obj)

        modeldir.publish(directory, write)
        return Path(directory)

    def _write(self, directory: Path) -> None:
        if self._cb is not None:
            self._cb.save(directory / "cb.model")
        self._ik.save(directory / "ik.model", directory / "ik_prior.model")
        if self._guess is not None:
            self._guess.save(directory / "ik_guess.model", directory / "ik_guess_prior.model")
        params = {k: v for k, v in self.params.items() if k != "cb"}
        params["definitely_negative"] = self._dn.to_json()
        params["definitely_positive"] = self._dp.to_json()
        config = {"format_version": _FORMAT_VERSION, "params": params, "cb_full_args": self._cb_full_args}
        state = {
            "decoder": self._decoder.get_state(),
            "group_stats": self._test.get_state(),
            "rng": self._rng.bit_generator.state,
            "n_learned": self.n_learned,
            "weight_seen": self._weight_seen,
            "weight_inferred": self._weight_inferred,
            "without_user": self._without_user,
            "cb_namespaces": {"context": self._ns_seen[0], "action": self._ns_seen[1], "window": self._ns_window},
            "guess": None if self._guess is None else self._guess_stats,
            "signals": None if self._signals is None else self._signals.get_state(),
        }
        write_json(directory / "config.json", config)
        write_json(directory / "state.json", state)

    @classmethod
    def load(cls, directory, definitely_negative=None, definitely_positive=None, cb=None) -> "IGLP":
        """Load the current model set of ``directory``; training continues exactly as if never stopped.

        Nothing in the directory is trusted: the set must match its manifest, and its
        configuration may only name VW flags that touch no file (:data:`iglp_vw.vw.MODEL_FLAGS`);
        otherwise :class:`~iglp_vw.modeldir.ModelDirError` names the file. A callable
        ``definitely_negative`` (or ``definitely_positive``) is not saved: pass it again here.
        ``cb``: the CB component's factory (see :class:`IGLP`).
        """
        with modeldir.reading(directory) as set_dir:  # kept whole while read, whatever a writer does
            return cls._load_set(set_dir, definitely_negative, definitely_positive, cb)

    @classmethod
    def _load_set(cls, set_dir: Path, definitely_negative, definitely_positive, cb) -> "IGLP":
        config_path = set_dir / "config.json"
        config = modeldir.read_json(config_path, "configuration")
        try:
            if not isinstance(config, dict) or config.get("format_version") != _FORMAT_VERSION:
                raise ValueError(f"format_version must be {_FORMAT_VERSION}")
            params = dict(config["params"])
            unknown = set(params) - set(cls.param_names())
            if unknown:
                raise ValueError(f"unknown parameters {sorted(unknown)}")
            params["definitely_negative"] = _oracle_arg(params.get("definitely_negative"), definitely_negative,
                                                        "definitely_negative")
            params["definitely_positive"] = _oracle_arg(params.get("definitely_positive"), definitely_positive,
                                                        "definitely_positive")
            full_args = config.get("cb_full_args")
            if full_args is not None:
                check_model_args(full_args, "cb_full_args")
            self = cls(**params, cb=cb)
        except (ValueError, TypeError, KeyError) as err:
            raise modeldir.ModelDirError(f"{config_path}: {err}") from None
        self._restore(set_dir, config)
        return self

    def _restore(self, directory: Path, config: Optional[dict] = None) -> None:
        if config is None:
            config = modeldir.read_json(directory / "config.json", "configuration")
        state_path = directory / "state.json"
        state = modeldir.read_json(state_path, "learner state")
        try:
            if not isinstance(state, dict) or set(_STATE_KEYS) - set(state):
                raise ValueError(f"must hold {', '.join(_STATE_KEYS)}")
            decoder = CommunicationDecoder.from_state(state["decoder"])
            self._test.set_state(state["group_stats"])
            self._rng.bit_generator.state = state["rng"]
            n_learned = int(state["n_learned"])
            self._weight_seen = float(state.get("weight_seen", 0.0))
            self._weight_inferred = float(state.get("weight_inferred", 0.0))
            self._without_user = int(state.get("without_user", 0))
            ns = state.get("cb_namespaces") or {  # an older state: its context namespaces, as at event 0
                "context": dict.fromkeys(state.get("namespaces_seen", []), 0)}
            self._ns_seen = tuple({str(k): int(v) for k, v in list((ns.get(side) or {}).items())[:MAX_NAMESPACES_KEPT]}
                                  for side in ("context", "action"))
            self._ns_window = int(ns.get("window", 0))
            guess = state.get("guess")
            guess = None if guess is None else {str(c): [int(v[0]), float(v[1]), float(v[2])] for c, v in guess.items()}
            if self._signals is not None:
                self._signals.set_state(state["signals"])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            raise modeldir.ModelDirError(f"{state_path}: not a learner state this version can read ({err})") from None
        self._ik = _IK[self.ik_model].load(
            self.num_actions, self.ik_args, self.seed, directory / "ik.model", directory / "ik_prior.model"
        )
        if guess is not None:
            self._guess = ActionFeatureIK.load(None, self.ik_args, self.seed, directory / "ik_guess.model",
                                               directory / "ik_guess_prior.model", quadratic=True)
            self._guess_stats = guess
        self._cb_full_args = config.get("cb_full_args")
        if self._cb_full_args is not None:
            self._cb = (self.cb or WorkspaceCB)(self._cb_full_args, directory / "cb.model")
        self._decoder = decoder
        self._loaded_conventions = decoder.snapshot() if decoder.refits else None
        self.n_learned = n_learned

    def __getstate__(self):
        if self._cb is not None and not isinstance(self._cb, WorkspaceCB):
            raise TypeError("an IGLP whose CB runs outside this process (offline replay) cannot be pickled; "
                            "load the saved model directory instead")
        return super().__getstate__()


def _length(events) -> int:
    try:
        return len(events)
    except TypeError:  # an iterator: unknown, so long enough
        return IK_PROCESS_MIN_EVENTS


class IKPipeline:
    """Algorithm 1 in two stages over a stream of events, the IK in a process of its own
    (:class:`~iglp_vw.ik.IKProcess`): events come in with their first stage done
    (:meth:`IGLP.learn_begin`), their IK requests leave in batches, and each batch's second
    stage (:meth:`IGLP.learn_end`) runs when its results are back, at most two batches later.
    Anything else queued between them (the replay's unlabelled events and bad lines) keeps
    its place: ``done(result, *payload)`` sees every item in order, with the event's ρ̂ for a
    learned one. ``where(*payload)`` names an event in an error. ``cb=False``: the CB learns
    nothing (:meth:`IGLP.learn_reward`, ``iglp-vw label --online``).

    If VW refuses an event's text in the IK process (the text is checked before, so this is
    not expected), the decoder has already moved past it: the pipeline raises
    :class:`RuntimeError` and the learner is not to be used further.
    """

    BATCH = 64

    def __init__(self, learner: "IGLP", done, where=None, cb: bool = True):
        self.learner, self.done, self.where, self.cb = learner, done, where or (lambda *payload: "an event"), cb
        self.worker = learner.start_ik_process()
        self.items: list = []  # this batch: (first stage, or anything else, payload)
        self.requests: list = []
        self.inflight = collections.deque()

    def put(self, item, *payload) -> None:
        """An event's ``(staged, request)`` from :meth:`IGLP.learn_begin`, or anything else to
        hand to ``done`` in its place (at once when nothing is waiting before it)."""
        if type(item) is tuple:
            staged, request = item
            self.requests.append(request)
            item = staged
        elif not self.items and not self.inflight:
            self.done(item, *payload)
            return
        self.items.append((item, payload))
        if len(self.requests) >= self.BATCH:
            self._flush()
            while len(self.inflight) > 1:
                self._complete()

    def _flush(self) -> None:
        if self.items:
            if self.requests:
                self.worker.send(self.requests)
            self.inflight.append((self.items, bool(self.requests)))
            self.items, self.requests = [], []

    def _complete(self) -> None:
        from .ik import IKProcessError

        items, sent = self.inflight.popleft()
        failed = None
        try:
            results = self.worker.receive() if sent else []
        except IKProcessError as err:
            results, failed = err.done, err
        j = 0
        for item, payload in items:
            if type(item) is _Staged:
                if j == len(results):  # the request VW refused: the decoder has moved on past it
                    raise RuntimeError(f"{self.where(*payload)}: VW refused the IK's example ({failed}); "
                                       f"the learner cannot go on")
                item = self.learner.learn_end(item, results[j], self.cb)
                j += 1
            self.done(item, *payload)

    def drain(self) -> None:
        """Finish every event put so far."""
        self._flush()
        while self.inflight:
            self._complete()

    def peak_rss(self) -> float:
        """The IK process's peak memory in MB."""
        from .cb import peak_rss_mb

        worker = self.worker
        return max(worker.peak_rss_mb, 0.0 if worker.closed else peak_rss_mb(worker.pid))

    def close(self) -> None:
        self.worker.close()

    def kill(self) -> None:
        self.worker.kill()


class _Staged:
    """An event between the two stages of Algorithm 1 (:meth:`IGLP.learn_begin`)."""

    __slots__ = ("context", "ctx_text", "action_texts", "k", "action", "prob", "feedback", "fb_text", "fb_key",
                 "user", "weight", "code", "new_user", "ik_text", "prepare", "cell", "negative")

    def __init__(self, context, ctx_text, action_texts, k, action, prob, feedback, fb_text, fb_key, user, weight,
                 code, new_user, ik_text, prepare, cell=None, negative=False):
        self.context, self.ctx_text, self.action_texts, self.k, self.action = context, ctx_text, action_texts, k, action
        self.prob, self.feedback, self.fb_text, self.fb_key, self.user = prob, feedback, fb_text, fb_key, user
        self.weight, self.code, self.new_user, self.ik_text, self.prepare = weight, code, new_user, ik_text, prepare
        self.cell, self.negative = cell, negative


def _oracle_arg(saved, given, name: str):
    if saved == "<callable>":
        if given is None:
            raise ValueError(f"this model used a callable `{name}`: pass it to IGLP.load")
        return given
    if given is not None:
        return given
    if saved is not None and not (isinstance(saved, list) and all(isinstance(s, str) for s in saved)):
        raise ValueError(f"`{name}` must be a list of feedback feature names, got {saved!r}")
    return saved

