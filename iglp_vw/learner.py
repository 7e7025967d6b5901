"""IGLP: personalized Interaction-Grounded Learning (Algorithm 1 of the IGL-P paper) on VW."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .decoder import CommunicationDecoder
from .ik import ActionFeatureIK, InverseKinematics
from .reward import reward_from_test
from ._util import write_json as _write_json
from .vw import (
    Features,
    Workspace,
    adf_lines,
    cb_arguments,
    cb_label,
    feedback_key,
    format_namespaces,
    namespace_of,
    split_args,
)

__all__ = ["IGLP", "DEFAULT_CB_ARGS"]

# Default contextual bandit, chosen by measurement (docs/ik-design.md, "CB explorer"):
# ε-greedy with ε = 0.05 had the best worst case against the strongest oracle CB
# (squarecb was better on synthetic50k but 0.86 of the oracle on digits, and a
# greedier squarecb collapsed IGL-P to 0.13: the IK then learns its own policy).
# Interactions are "auto" (see vw.auto_interactions), resolved on the first event.
DEFAULT_CB_ARGS = "--cb_explore_adf --epsilon 0.05"

_FORMAT_VERSION = 1


def sample_pmf(rng: np.random.Generator, pmf: Sequence[float]):
    """Draw ``(index, prob)`` from ``pmf`` with ``rng`` (one uniform draw; robust to rounding)."""
    u = rng.random() * sum(pmf)
    acc = 0.0
    for i, p in enumerate(pmf):
        acc += p
        if u < acc:
            return i, p
    i = max(range(len(pmf)), key=lambda j: pmf[j])
    return i, pmf[i]


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


class IGLP:
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
    each group of pairs: a group is extreme when its importance-weighted mean of
    P̂(a|x,y)/P̂(a|x) exceeds ``threshold``. ``"event"`` applies it to each event
    alone, as in the paper. ``prior="learned"`` (default) compares with a second
    VW model of P̂(a|x) trained on the same weighted stream; ``"uniform"``
    compares with ``1/K``. Why these defaults: ``docs/ik-design.md``.

    Parameters
    ----------
    num_actions
        K, the number of actions (the IK's classes); action sets may be smaller.
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
    user_namespace
        The context namespace that identifies the user.
    extreme_test, prior, group_window
        See above; ``group_window`` is the number of events a group's mean
        ratio remembers.
    decoder_args
        Keyword arguments of :class:`~iglp_vw.decoder.CommunicationDecoder`.

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
        num_actions: int,
        states: int = 2,
        alpha: float = 1.0,
        definitely_negative=None,
        threshold: float = 2.0,
        seed: int = 0,
        cb_args: str = DEFAULT_CB_ARGS,
        ik_args: Optional[str] = None,
        user_namespace: str = "User",
        extreme_test: str = "group",
        prior: str = "learned",
        group_window: int = 50,
        ik_feedback: bool = False,
        decoder_reference: str = "uniform",
        decoder_args: Optional[dict] = None,
        definitely_positive=None,
        ik_model: str = "slot",
    ):
        if not isinstance(num_actions, (int, np.integer)) or num_actions < 2:
            raise ValueError(f"`num_actions` must be an int >= 2, got {num_actions!r}")
        if states not in (2, 3):
            raise ValueError(f"`states` must be 2 or 3, got {states!r}")
        if not 0 < alpha <= 1:
            raise ValueError(f"`alpha` must be in (0, 1], got {alpha!r}")
        if states == 2 and (alpha != 1 or definitely_negative is not None or definitely_positive is not None):
            raise ValueError(
                "`states=2` is alpha=1 with no definitely_negative/definitely_positive oracle; use states=3 for those"
            )
        if threshold <= 1:
            raise ValueError(f"`threshold` must be > 1, got {threshold!r}")
        if extreme_test not in ("group", "event", "either"):
            raise ValueError(f"`extreme_test` must be 'group', 'event' or 'either', got {extreme_test!r}")
        if prior not in ("learned", "uniform"):
            raise ValueError(f"`prior` must be 'learned' or 'uniform', got {prior!r}")
        if decoder_reference not in ("marginal", "uniform"):
            raise ValueError(f"`decoder_reference` must be 'marginal' or 'uniform', got {decoder_reference!r}")
        if ik_model not in ("slot", "features"):
            raise ValueError(f"`ik_model` must be 'slot' or 'features', got {ik_model!r}")
        if group_window < 1:
            raise ValueError(f"`group_window` must be >= 1, got {group_window!r}")
        self.num_actions = int(num_actions)
        self.states = states
        self.alpha = float(alpha)
        self.definitely_negative = definitely_negative
        self.threshold = float(threshold)
        self.seed = int(seed)
        self.cb_args = cb_args
        self.ik_args = ik_args
        self.user_namespace = user_namespace
        self.extreme_test = extreme_test
        self.prior = prior
        self.group_window = int(group_window)
        self.ik_feedback = bool(ik_feedback)
        self.decoder_reference = decoder_reference
        self.decoder_args = dict(decoder_args or {})

        self.definitely_positive = definitely_positive
        self._dn = _Oracle(definitely_negative)
        self._dp = _Oracle(definitely_positive)
        self._rng = np.random.default_rng(self.seed)
        # One group bit per non-zero state by default (decoder_args may set "dims").
        self._decoder = CommunicationDecoder(**{"dims": states - 1, **self.decoder_args})
        self.ik_model = ik_model
        self._ik = _IK[ik_model](self.num_actions, ik_args, self.seed)
        self._cb: Optional[Workspace] = None
        self._cb_full_args: Optional[str] = None
        self._group_stats: dict = {}  # code -> [weighted sum of ratios, sum of weights]
        self._decay = 1.0 - 1.0 / self.group_window
        self._action_freq = [1.0] * self.num_actions  # decayed counts of actions played (marginal policy)
        self._cache = (None, "", None, [])
        self.n_learned = 0
        self.last: dict = {}

    # ----------------------------------------------------------------- params
    @property
    def params(self) -> dict:
        """The constructor arguments (JSON-able; a callable oracle shows as ``"<callable>"``)."""
        return {
            "num_actions": self.num_actions,
            "states": self.states,
            "alpha": self.alpha,
            "definitely_negative": self._dn.to_json(),
            "threshold": self.threshold,
            "seed": self.seed,
            "cb_args": self.cb_args,
            "ik_args": self.ik_args,
            "user_namespace": self.user_namespace,
            "extreme_test": self.extreme_test,
            "prior": self.prior,
            "group_window": self.group_window,
            "ik_feedback": self.ik_feedback,
            "decoder_reference": self.decoder_reference,
            "decoder_args": self.decoder_args,
            "definitely_positive": self._dp.to_json(),
            "ik_model": self.ik_model,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"IGLP({args})"

    # ------------------------------------------------------------- formatting
    def _format(self, context: Features, actions: Sequence[Features]):
        # Texts of the last context and action set are reused while the same objects
        # come back (predict then learn; a catalogue's action list every round).
        cached_ctx, ctx_text, cached_actions, action_texts = self._cache
        if context is not cached_ctx:
            ctx_text = format_namespaces(context, "context")
        if actions is not cached_actions or len(actions) != len(action_texts):
            if isinstance(actions, (str, bytes)) or not isinstance(actions, Sequence) or not actions:
                raise ValueError("`actions` must be a non-empty list of per-action features")
            if len(actions) > self.num_actions:
                raise ValueError(f"`actions` has {len(actions)} entries, more than num_actions={self.num_actions}")
            action_texts = [format_namespaces(a, f"actions[{i}]") for i, a in enumerate(actions)]
        self._cache = (context, ctx_text, actions, action_texts)
        return ctx_text, action_texts

    def _cb_workspace(self, ctx_text: str, action_texts: Sequence[str]) -> Workspace:
        if self._cb is None:
            self._cb_full_args = cb_arguments(self.cb_args, ctx_text, action_texts, self.seed)
            self._cb = Workspace(self._cb_full_args)
        return self._cb

    # ------------------------------------------------------------------- API
    def predict(self, context: Features, actions: Sequence[Features]) -> list:
        """The policy's pmf over ``actions`` (a list of ``len(actions)`` floats)."""
        ctx_text, action_texts = self._format(context, actions)
        cb = self._cb_workspace(ctx_text, action_texts)
        return list(cb.predict(adf_lines(ctx_text, action_texts)))

    def act(self, context: Features, actions: Sequence[Features]):
        """Sample an action from the pmf with the learner's seeded generator: ``(index, prob)``."""
        return sample_pmf(self._rng, self.predict(context, actions))

    def learn(self, context: Features, actions: Sequence[Features], action: int, prob: float, feedback: Features) -> float:
        """One round of Algorithm 1 for a played (or logged) ``action`` with probability ``prob``.

        Returns the inferred reward ρ̂ in {0, 1, -1/alpha}. Off-policy, pass the
        logging policy's probability; on-policy, the one :meth:`predict` gave.
        """
        ctx_text, action_texts = self._format(context, actions)
        rho = self._learn_reward(context, ctx_text, len(action_texts), action, prob, feedback, action_texts=action_texts)
        cb = self._cb_workspace(ctx_text, action_texts)
        cb.learn(adf_lines(ctx_text, action_texts, action, cb_label(-rho, prob)))
        return rho

    def learn_reward(self, context: Features, num_candidates: int, action: int, prob: float, feedback: Features,
                     actions: Optional[Sequence[Features]] = None) -> float:
        """:meth:`learn` without the CB update: the IK, the decoder and ρ̂.

        For off-policy replay, where the logged action and probability are given
        and the IK's stream does not depend on the CB, so the CB can learn
        elsewhere (``iglp_vw.replay`` feeds it to VW's own driver) from
        ``cost = -ρ̂``. ``num_candidates`` is the size of the event's action set;
        ``actions`` (its features) are needed with ``ik_model="features"``.
        """
        ctx_text = format_namespaces(context, "context")
        if not isinstance(num_candidates, (int, np.integer)) or not 0 < num_candidates <= self.num_actions:
            raise ValueError(f"`num_candidates` must be in [1, {self.num_actions}], got {num_candidates!r}")
        texts = self._action_texts(actions, num_candidates)
        return self._learn_reward(context, ctx_text, int(num_candidates), action, prob, feedback, action_texts=texts)

    def _action_texts(self, actions, num_candidates) -> list:
        if actions is None:
            if self.ik_model == "features":
                raise ValueError("ik_model='features' needs the event's `actions`")
            return []
        texts = [format_namespaces(a, f"actions[{i}]") for i, a in enumerate(actions)]
        if len(texts) != num_candidates:
            raise ValueError(f"`actions` has {len(texts)} entries, `num_candidates` is {num_candidates}")
        return texts

    def infer_reward(self, context: Features, num_candidates: int, action: int, prob: float, feedback: Features,
                     actions: Optional[Sequence[Features]] = None) -> float:
        """ρ̂ for one event from the models as they are, learning nothing (``iglp-vw label``).

        Same test as :meth:`learn`: the group's running mean ratio (or the
        event's own, per ``extreme_test``). ``self.last`` describes the event.
        """
        return self._learn_reward(
            context, format_namespaces(context, "context"), int(num_candidates), action, prob, feedback, update=False,
            action_texts=self._action_texts(actions, num_candidates),
        )

    def _learn_reward(self, context, ctx_text, k, action, prob, feedback, update=True, action_texts=()) -> float:
        if not isinstance(action, (int, np.integer)) or not 0 <= action < k:
            raise ValueError(f"`action` must be an index in [0, {k}), got {action!r}")
        if not (isinstance(prob, (int, float, np.floating)) and 0 < prob <= 1):
            raise ValueError(f"`prob` must be in (0, 1], got {prob!r}")
        if feedback is None:  # no feedback
            feedback = {}
        fb_text = format_namespaces(feedback, "feedback")
        fb_key = feedback_key(fb_text)  # numeric values bucketed
        user = namespace_of(context, self.user_namespace)

        weight = 1.0 / (k * prob)  # line 9: synthetic uniform distribution
        code = self._decoder.code(user, fb_key)
        fb_tokens = " ".join(t for t in fb_text.split() if not t.startswith("|")) if self.ik_feedback else ""
        if update:
            ik_probability, learned_prior = self._ik.learn(ctx_text, code, action, weight, fb_tokens, action_texts)
        else:
            ik_probability, learned_prior = self._ik.predict(ctx_text, code, action, fb_tokens, action_texts)
        prior = learned_prior if self.prior == "learned" else 1.0 / k
        ratio = ik_probability / max(prior, 1e-12)
        stats = self._group_stats.get(code)
        event_extreme = ratio > self.threshold  # Eq. 3 on this event
        group_extreme = code != "u" and stats is not None and stats[0] > self.threshold * stats[1]  # on the group
        if self.extreme_test == "event":
            extreme = event_extreme
        elif code == "u":
            # Not grouped yet: infer nothing rather than guess. Early false positives
            # make the CB greedy on arbitrary actions, and the decoder then gets
            # little usable data (docs/ik-design.md).
            extreme = False
        elif self.extreme_test == "group":
            extreme = group_extreme
        else:
            extreme = group_extreme or event_extreme
        if update:
            if stats is None:
                stats = self._group_stats[code] = [0.0, 0.0]
            stats[0] = stats[0] * self._decay + weight * ratio
            stats[1] = stats[1] * self._decay + weight

        negative = extreme and self.states == 3 and self._dn(context, feedback, fb_text)
        positive = None
        if self.definitely_positive is not None:
            positive = bool(extreme and not negative and self._dp(context, feedback, fb_text))
        rho = reward_from_test(extreme, negative, self.alpha, positive, self.definitely_negative is not None)  # Eq. 4

        if update:
            self._decoder.update(user, fb_key, self._decoder_weight(action, prob, weight))
            self.n_learned += 1
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

    def _decoder_weight(self, action: int, prob: float, uniform_weight: float) -> float:
        """Importance weight of this event in the decoder's counts.

        ``"uniform"`` (default): ``1/(K p)``, as for the IK. ``"marginal"``: towards
        the running marginal action distribution q̂(a), ``q̂(a)/p``. Rewards are
        rare under any policy that ignores the context (not only the uniform
        one), and while the CB has not learned yet its greedy action is such a
        policy: its events then weigh ~1 instead of 1/K. Measured no better than
        ``"uniform"`` (docs/ik-design.md), hence not the default.
        """
        if self.decoder_reference == "uniform":
            return uniform_weight
        freq = self._action_freq
        total = sum(freq)
        q = freq[action] / total
        decay = self._decay
        for i in range(len(freq)):
            freq[i] *= decay
        freq[action] += 1.0
        return q / prob

    # ------------------------------------------------------------ diagnostics
    def group_ratios(self) -> dict:
        """Each group code's current mean P̂(a|x,y)/P̂(a|x) (the quantity the group test uses)."""
        return {c: (s[0] / s[1] if s[1] else float("nan")) for c, s in sorted(self._group_stats.items())}

    def embedding(self, users: Iterable[str] = (), feedback: Iterable[str] = ()):
        """The decoder's coordinates of users and feedback keys (for plots like the paper's Fig. 2)."""
        return (
            {u: self._decoder.user_score(u).tolist() for u in users},
            {f: (None if (v := self._decoder.feedback_score(f)) is None else v.tolist()) for f in feedback},
        )

    # ------------------------------------------------------------ persistence
    def save(self, directory) -> Path:
        """Write every workspace, the decoder state and the configuration to ``directory``.

        ``cb.model`` is a plain VW ``--cb_explore_adf`` model
        (``python -m vowpalwabbit -i cb.model -t`` reads it).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._cb is not None:
            self._cb.save(directory / "cb.model")
        self._ik.save(directory / "ik.model", directory / "ik_prior.model")
        config = {"format_version": _FORMAT_VERSION, "params": self.params, "cb_full_args": self._cb_full_args}
        state = {
            "decoder": self._decoder.get_state(),
            "group_stats": self._group_stats,
            "action_freq": self._action_freq,
            "rng": self._rng.bit_generator.state,
            "n_learned": self.n_learned,
        }
        _write_json(directory / "config.json", config)
        _write_json(directory / "state.json", state)
        return directory

    @classmethod
    def load(cls, directory, definitely_negative=None, definitely_positive=None) -> "IGLP":
        """Load a learner saved by :meth:`save`; training continues exactly as if never stopped.

        A callable ``definitely_negative`` (or ``definitely_positive``) is not saved: pass it again here.
        """
        directory = Path(directory)
        try:
            config = json.loads((directory / "config.json").read_text())
            state = json.loads((directory / "state.json").read_text())
        except FileNotFoundError as err:
            raise ValueError(f"{directory} is not an IGLP model directory: {err.strerror}: {err.filename}") from None
        params = dict(config["params"])
        if params["definitely_negative"] == "<callable>":
            if definitely_negative is None:
                raise ValueError("this model used a callable `definitely_negative`: pass it to IGLP.load")
            params["definitely_negative"] = definitely_negative
        elif definitely_negative is not None:
            params["definitely_negative"] = definitely_negative
        dp = params.get("definitely_positive")
        if dp == "<callable>":
            if definitely_positive is None:
                raise ValueError("this model used a callable `definitely_positive`: pass it to IGLP.load")
            params["definitely_positive"] = definitely_positive
        elif definitely_positive is not None:
            params["definitely_positive"] = definitely_positive
        self = cls(**params)
        self._ik = _IK[self.ik_model].load(
            self.num_actions, self.ik_args, self.seed, directory / "ik.model", directory / "ik_prior.model"
        )
        self._cb_full_args = config["cb_full_args"]
        if self._cb_full_args is not None:
            self._cb = Workspace(_cb_reload_args(self._cb_full_args), directory / "cb.model")
        self._decoder = CommunicationDecoder.from_state(state["decoder"])
        self._group_stats = {k: list(v) for k, v in state["group_stats"].items()}
        self._action_freq = list(state["action_freq"])
        self._rng.bit_generator.state = state["rng"]
        self.n_learned = state["n_learned"]
        return self


_IK = {"slot": InverseKinematics, "features": ActionFeatureIK}


def _cb_reload_args(args: str) -> str:
    """VW keeps the CB's reductions and interactions in the model; keep only what it does not."""
    tokens = split_args(args)
    return " ".join(t for t in tokens if t == "--quiet")


