"""Communication-group decoder: which (user, feedback) pairs mean the same thing.

IGL-P assumes each user expresses satisfaction, indifference and
dissatisfaction consistently, but users differ from one another. The
information about the latent reward is then only in the *pair* (user,
feedback): in the paper's grounded simulation a word alone or a user alone says
nothing (the reward is their XOR). A linear inverse-kinematics model cannot
find that structure from a symmetric start (measured: see ``docs/ik-design.md``).

This decoder finds it without labels. It keeps importance-weighted counts of
how often each user gives each feedback value, weighted to the *synthetic
uniform* policy (weight ``1/(K p(a|x))``, Algorithm 1 line 9), so that under
the paper's rare-reward assumption every user's usual feedback is the
``r = 0`` one. Each user's row (their feedback distribution) is centred on a
uniform reference, so that the axis of usual vs rare feedback is kept, and the
top ``dims`` principal directions of the feedback values are refitted from time
to time. A user's score is the projection of their row, a feedback value's
score its loading; the pair's *group code* is the sign pattern of their
product, one bit per dimension: users and feedback embedded in a
low-dimensional space, as in the paper's Fig. 2. The code's meaning (which
group is extreme) is not decided here: the inverse-kinematics test decides it.

**Noise.** A user's row is an estimate from few events, some with large
importance weights (an exploration event of an ε-greedy policy weighs ~20 times
a uniform one): its sampling noise is about ``1/m`` per user, ``m`` the
*effective* number of events ``(Σw)² / Σw²``. Two things keep that noise out of
the directions: each user's row counts with weight ``a = m / (m + shrinkage)``
(users with little effective data count little), and the expected sampling
covariance of the rows (multinomial, ``(diag p - p pᵀ) / m`` with ``p`` the
population's distribution) is subtracted from their Gram matrix. So a population
of users seen once each still shows its shared convention (the population's
mean row), and a few heavy events cannot turn a direction towards one word.

**Users seen rarely.** A user's score is shrunk towards a prior: the
population's score (the score of its mean row), so a user never seen, or seen
once or twice, gets the population's convention; their own events take over
as they accumulate (``shrinkage`` pseudo-events). Where the population has no
shared convention (half the users say the opposite of the other half) the
prior is near 0 and the code of an unknown user carries little; the
inverse-kinematics test sees that as a group that predicts nothing.

**Users known by their features.** A user key with several features (``id=u17
country=fr``: the learner's user namespace) also counts each feature as a *segment*:
the prior of a user is then the evidence-weighted score of their segments (shrunk
towards the population's), so a new id from a country whose users speak alike gets
that country's convention, and their own events take over as they come.

**Memory.** At most ``max_users`` users (and as many segments) are kept. When a new
user would exceed that, the quarter of the kept users with the least effective
evidence, discounted by how long ago they were last seen (``m / (1 + age /
max_users)``, age in events), are forgotten: their counts leave the Gram matrix
(their summed Gram terms stay in the directions, up to 512 feedback values), and
what they added to the population's and their segments' counts stays. A forgotten user who comes back
starts again from their segments' (or the population's) prior. Per kept user the
decoder holds a key, four doubles and their distinct (feedback, count) pairs
(about 170 bytes live, ~0.6 KB of resident memory measured: ~10 MB at the default
16,384), so a log of any number of users fits in a fixed budget. Distinct feedback values
are counted apart up to ``max_feedback_keys`` (100,000); free text (each comment its own
value) beyond that shares one column, so the decoder does not grow with the log either.

**Change.** With ``half_life`` set, evidence fades: an event counted ``half_life`` effective
events ago weighs half of one counted now (an event is one effective event under uniform
logging; under a greedy policy, whose information is in its few exploration events, the
Kish efficiency of its importance weights, ``(E w)² / E w²``: ~1/18 at ε = 0.05, so that
on-policy learning keeps the little evidence it has: measured), in every count (users', segments', the population's),
so a user who changes convention
has their row and score follow their recent feedback, and a feedback value whose meaning
changes has its loading follow, within about a half-life; refits then come at least every
quarter of a half-life. Effective events stay Kish's ``(Σw)² / Σw²`` of the faded weights,
so each user's row (and a forgotten user's terms) keeps its weight in the directions: a user
seen once long ago still counts as one event there (counting them as less made the noise
correction overshoot on users seen once, measured), and a convention that does not change
keeps its evidence up to a few half-lives per user, segment and population.

A refit costs O(distinct (user, feedback) pairs + F^2 · dims) where F is the
number of distinct feedback values kept (at most ``max_feedback_values``): the
decomposition is of the F x F Gram matrix of the centred rows, never of the
users x feedback matrix. Refits happen every ``refit_every`` events at first,
then every ``refit_growth`` x events seen, so their total cost grows as
O(n log n). A feedback value never seen before gets the code ``"u"`` (unknown)
until the next refit.
"""

from __future__ import annotations

import copy
import math
from array import array

import numpy as np
from scipy import sparse
from threadpoolctl import ThreadpoolController

_CONTROLLER = None
# Forgotten users still count in the directions through their summed Gram terms (an F x F
# matrix), as long as the feedback values are this few (a free-text vocabulary is not).
MAX_EVICTED_GRAM_COLUMNS = 512
# The column every feedback value first seen once ``max_feedback_keys`` are known is counted in
# (free text: each comment its own value). Not a feedback key: those are checked VW text, which
# has no control characters.
OTHER_FEEDBACK = "\x00(other feedback values)"
# The half-life measured for daily retraining (docs/ik-design.md, "Conventions that change"): not
# the default, which fades nothing (fading cost users seen once in segments: measured there).
RECOMMENDED_HALF_LIFE = 4000


def _blas_controller() -> ThreadpoolController:
    """One controller for the process (finding the loaded BLAS libraries takes milliseconds)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


class CommunicationDecoder:
    """Unsupervised grouping of (user, feedback) pairs.

    Parameters
    ----------
    dims
        Number of latent dimensions (bits of the group code); ``states - 1``.
    shrinkage
        Pseudo-events pulling a user's score towards the population's; also how
        much effective data a user needs to count fully in a refit.
    refit_every
        Minimum number of events between refits.
    refit_growth
        Refit at most every ``refit_growth`` x (events seen) events.
    max_feedback_values
        Feedback values kept in the decomposition (the most frequent ones).
    max_feedback_keys
        Distinct feedback values counted apart (memory: each has a column); once that many
        are known, every new one is counted in one shared column (free-text feedback
        would otherwise grow the decoder with the log).
    max_users
        Users (and user segments) kept in memory; beyond it the ones with the least
        recent evidence are forgotten (see *Memory* above). ``None``: no bound.
    half_life
        Fading evidence (see *Change* above): every count halves in weight after this many
        effective events, and refits come at least every quarter of that many events.
        ``None``: nothing fades.
    """

    def __init__(self, dims=1, shrinkage=5.0, refit_every=200, refit_growth=0.05, max_feedback_values=2000,
                 max_users=16_384, max_feedback_keys=100_000, half_life=None):
        if dims < 1:
            raise ValueError(f"`dims` must be >= 1, got {dims}")
        if shrinkage <= 0:
            raise ValueError(f"`shrinkage` must be > 0, got {shrinkage}")
        self.dims = int(dims)
        self.shrinkage = float(shrinkage)
        self.refit_every = int(refit_every)
        self.refit_growth = float(refit_growth)
        self.max_feedback_values = int(max_feedback_values)
        if max_users is not None and int(max_users) < 4:
            raise ValueError(f"`max_users` must be >= 4 or None, got {max_users}")
        self.max_users = None if max_users is None else int(max_users)
        if int(max_feedback_keys) < 2:
            raise ValueError(f"`max_feedback_keys` must be >= 2, got {max_feedback_keys}")
        self.max_feedback_keys = int(max_feedback_keys)
        if half_life is not None and not float(half_life) > 0:
            raise ValueError(f"`half_life` must be > 0 events or None, got {half_life}")
        self.half_life = None if half_life is None else float(half_life)
        # Forward decay: the event counted now weighs `_scale` times one counted at the last
        # refit (which brings every count back to the scale of 1). Every estimate is a ratio of
        # such sums, effective events (Σw)² / Σw² included, so none depends on the scale.
        self._rate = 0.0 if half_life is None else math.log(2.0) / self.half_life
        self._scale = 1.0
        # The half-life is in effective events: an event counts as the Kish efficiency (E w)² / E w²
        # of the recent importance weights (1 under uniform logging; ~1/18 under a 5%-greedy policy,
        # whose information is in its rare exploration events). The scale grows by `_step` per
        # event, set at each refit from the efficiency of the weights since the ones before
        # (`_eff`: Σw, Σw², events, unfaded, halved at each refit), so an event costs one product.
        self._step = 1.0 if half_life is None else math.exp(self._rate)
        self._coo_scale = 1.0  # the scale of the first event not coalesced yet
        self._eff = [0.0, 0.0, 0.0]
        self._users: dict = {}  # user key -> row
        self._feedback: dict = {}  # feedback key -> column
        self._coo_u = array("l")  # events since the last refit
        self._coo_f = array("l")
        self._coo_w = array("d")
        self._counts = sparse.csr_matrix((0, 0))  # coalesced counts up to the last refit
        # Per-event state in flat arrays of doubles, read and written one Python float at a
        # time (numpy's per-call overhead on arrays this small was most of the decoder's
        # cost, a list of floats costs 4x the memory); IEEE arithmetic, same numbers as numpy.
        self._user_weight = array("d")  # per user row: Σ w
        self._user_w2 = array("d")  # per user row: Σ w² (effective events = (Σw)²/Σw²)
        self._user_proj = array("d")  # per user row, dims values: Σ w · loading(f)
        self._user_last = array("q")  # per user row: the last event that counted it
        self._user_tokens: list = []  # per user row: the segment rows of its features (none for one feature)
        self._evicted = np.zeros(0)  # per feedback column: the forgotten users' counts (population)
        self._seg_evicted = sparse.csr_matrix((0, 0))  # per segment: the forgotten users' counts
        self._ev_gram = np.zeros((0, 0))  # the forgotten users' Σ a² P̂ P̂ᵀ, Σ a² P̂, Σ a², Σ a²/m
        self._ev_b = np.zeros(0)
        self._ev_aa = 0.0
        self._ev_noise = 0.0
        self._raw = np.zeros(0)  # per feedback column, when fading: Σ w unfaded (the noise's distribution)
        self.evicted_users = 0
        self._segments: dict = {}  # feature ("country=fr") -> segment row
        self._seg_weight: list = []  # per segment row: Σ w, Σ w², [Σ w · loading(f)]
        self._seg_w2: list = []
        self._seg_proj: list = []
        self._pop_weight = 0.0  # the population: Σ w over every event
        self._pop_proj = [0.0] * self.dims  # and Σ w · loading(f)
        self._set_loading(np.zeros((0, self.dims)), np.zeros(self.dims))  # per fitted feedback column
        self._events = 0
        self._next_refit = self.refit_every
        self.refits = 0

    # ------------------------------------------------------------------ lookup
    def user_score(self, user: str) -> np.ndarray:
        """The user's coordinates in the latent space (their segments' or the population's if unknown)."""
        return np.asarray(self._user_score(user, self._users.get(user)))

    def prior_score(self) -> np.ndarray:
        """The population's coordinates (the score of its mean row): the prior of every user."""
        return np.asarray(self._prior())

    def _prior(self) -> tuple:
        n = self._pop_weight
        if n <= 0:
            return (0.0,) * self.dims
        return tuple(p / n - g for p, g in zip(self._pop_proj, self._gl))

    def _segment_prior(self, user: str, row) -> tuple:
        """The population's score, moved towards the user's segments' by their evidence."""
        prior = self._prior()
        segs = self._user_tokens[row] if row is not None else self._token_rows(user, create=False)
        if not segs:
            return prior
        s = self.shrinkage
        total = s
        acc = [s * q for q in prior]
        for t in segs:
            n = self._seg_weight[t]
            if n <= 0:
                continue
            m = n * n / self._seg_w2[t]
            total += m
            for k, (p, g) in enumerate(zip(self._seg_proj[t], self._gl)):
                acc[k] += m * (p / n - g)
        return tuple(a / total for a in acc)

    def _user_score(self, user: str, row) -> tuple:
        prior = self._segment_prior(user, row)
        if row is None:
            return prior
        n = self._user_weight[row]
        if n <= 0:
            return prior
        m = n * n / self._user_w2[row]  # effective events
        s = self.shrinkage
        d = self.dims
        proj = self._user_proj[row * d: row * d + d]
        return tuple((m * (p / n - g) + s * q) / (m + s) for p, g, q in zip(proj, self._gl, prior))

    def _token_rows(self, user: str, create: bool) -> tuple:
        """The segment rows of a user key's features (none when the key is a single feature)."""
        tokens = user.split()
        if len(tokens) < 2:
            return ()
        rows = []
        for token in tokens:
            t = self._segments.get(token)
            if t is None:
                if not create:
                    continue
                t = self._segments[token] = len(self._seg_weight)
                self._seg_weight.append(0.0)
                self._seg_w2.append(0.0)
                self._seg_proj.append([0.0] * self.dims)
            rows.append(t)
        return tuple(rows)

    def _column(self, feedback: str, create: bool = False):
        """The feedback value's column (``None``: not counted yet, and ``create`` false); once
        ``max_feedback_keys`` values are known, a new one's is the shared ``OTHER_FEEDBACK``."""
        col = self._feedback.get(feedback)
        if col is None:
            if len(self._feedback) >= self.max_feedback_keys - 1:
                feedback = OTHER_FEEDBACK
                col = self._feedback.get(feedback)
            if col is None and create:
                col = self._feedback[feedback] = len(self._feedback)
        return col

    def feedback_score(self, feedback: str):
        """The feedback value's loadings, or ``None`` if it was not in the last fit."""
        col = self._column(feedback)
        if col is None or col >= len(self._loading):
            return None
        return self._loading[col]

    def one_off(self) -> tuple:
        """``(values, share)``: how many feedback values have a total weight below 2 (seen about
        once: free text), and their share of all the weight counted. Reads the counts only."""
        n_fb = len(self._feedback)
        if n_fb == 0:
            return 0, 0.0
        col = np.zeros(n_fb)
        if self._counts.shape[1]:
            col[: self._counts.shape[1]] += np.asarray(self._counts.sum(axis=0)).ravel()
        if len(self._coo_f):
            col += np.bincount(np.asarray(self._coo_f), weights=np.asarray(self._coo_w), minlength=n_fb)
        if len(self._evicted):
            col += _pad(self._evicted, n_fb)
        total = col.sum()
        rare = col < 2.0 * self._scale
        return int(rare.sum()), float(col[rare].sum() / total) if total > 0 else 0.0

    def knows(self, user: str) -> bool:
        """Whether ``user`` has feedback of their own here (seen before, and not forgotten)."""
        return user in self._users

    def code(self, user: str, feedback: str) -> str:
        """Group code of the pair: ``"g"`` + one bit per dimension, or ``"u"`` if unknown."""
        col = self._column(feedback)
        if col is None or col >= len(self._loading_rows) or self.refits == 0:
            return "u"
        v = self._loading_rows[col]
        u = self._user_score(user, self._users.get(user))
        if self.dims == 1:
            return "g1" if u[0] * v[0] > 0 else "g0"
        return "g" + "".join("1" if u[k] * v[k] > 0 else "0" for k in range(self.dims))

    def snapshot(self) -> "CommunicationDecoder":
        """A copy of the scores as they are (what :meth:`changed_since` compares with): the
        per-user and per-segment sums and the loadings copied, the counts shared (read only), so
        that taking one costs copying arrays (a model is loaded often), not scoring every user."""
        snap = copy.copy(self)
        snap._users, snap._segments = dict(self._users), dict(self._segments)
        snap._user_weight, snap._user_w2, snap._user_proj = (array("d", a) for a in
                                                              (self._user_weight, self._user_w2, self._user_proj))
        snap._user_tokens = list(self._user_tokens)
        snap._seg_weight, snap._seg_w2 = list(self._seg_weight), list(self._seg_w2)
        snap._seg_proj = [list(p) for p in self._seg_proj]
        snap._pop_proj = list(self._pop_proj)
        return snap

    def _scores(self) -> dict:
        """Each well-known user's score (their own ``shrinkage`` effective events or more) and each
        segment's, with the loadings."""
        users, s = {}, self.shrinkage
        for user, row in self._users.items():
            n = self._user_weight[row]
            if n > 0 and n * n / self._user_w2[row] >= s:
                users[user] = self._user_score(user, row)
        segments = {}
        for token, t in self._segments.items():
            n = self._seg_weight[t]
            if n > 0 and n * n / self._seg_w2[t] >= s:
                segments[token] = tuple(p / n - g for p, g in zip(self._seg_proj[t], self._gl))
        return {"users": users, "segments": segments, "loading": self._loading.copy()}

    def changed_since(self, snapshot: "CommunicationDecoder") -> tuple:
        """``(users, compared, segments)``: the well-known users (then and now) and the segments
        whose score reads the other way round since ``snap`` (on a direction where both scores
        are clear of 0 by a quarter of the users' typical score: their feedback now means what the
        opposite convention's did), and how many users were compared. A direction that turned as
        a whole (every score and loading with it: no code changes) is not a change."""
        snap, now = snapshot._scores(), self._scores()
        then = snap["loading"]
        n = min(len(then), len(self._loading))
        turn = [-1.0 if (then[:n, k] * self._loading[:n, k]).sum() < 0 else 1.0 for k in range(self.dims)]

        def changed(old: dict, new: dict) -> list:
            both = [key for key in new if key in old]
            if not both:
                return []
            a = np.array([old[key] for key in both]) * turn
            b = np.array([new[key] for key in both])
            clear = 0.25 * np.sqrt(np.minimum((a * a).mean(axis=0), (b * b).mean(axis=0)))
            flipped = ((a * b < 0) & (np.abs(a) > clear) & (np.abs(b) > clear)).any(axis=1)
            return [key for key, f in zip(both, flipped.tolist()) if f]

        compared = len(now["users"].keys() & snap["users"].keys())
        return changed(snap["users"], now["users"]), compared, changed(snap["segments"], now["segments"])

    # ------------------------------------------------------------------ update
    def update(self, user: str, feedback: str, weight: float) -> None:
        """Count one event (``weight`` = importance weight to the synthetic uniform policy)."""
        row = self._users.get(user)
        if row is None:
            if self.max_users is not None and len(self._users) >= self.max_users:
                self._evict()
            row = self._users[user] = len(self._users)
            self._user_weight.append(0.0)
            self._user_w2.append(0.0)
            self._user_proj.extend(self._zeros)
            self._user_last.append(0)
            self._user_tokens.append(self._token_rows(user, create=True))
        col = self._column(feedback, create=True)
        weight = weight * self._scale
        self._scale *= self._step
        w2 = weight * weight
        self._coo_u.append(row)
        self._coo_f.append(col)
        self._coo_w.append(weight)
        self._user_weight[row] += weight
        self._user_w2[row] += w2
        self._user_last[row] = self._events
        self._pop_weight += weight
        segs = self._user_tokens[row]
        for t in segs:
            self._seg_weight[t] += weight
            self._seg_w2[t] += w2
        if col < len(self._loading_rows):
            proj, pop, base = self._user_proj, self._pop_proj, row * self.dims
            for k, v in enumerate(self._loading_rows[col]):
                proj[base + k] += weight * v
                pop[k] += weight * v
                for t in segs:
                    self._seg_proj[t][k] += weight * v
        self._events += 1
        if self._events >= self._next_refit:
            self.refit()

    def _coalesce(self) -> sparse.csr_matrix:
        if self._rate and len(self._coo_w):  # the events' own weights, unfaded (see _step)
            raw = np.asarray(self._coo_w, float) / (self._coo_scale * self._step ** np.arange(len(self._coo_w)))
            n_fb = len(self._feedback)
            self._raw = _pad(self._raw, n_fb) + np.bincount(np.asarray(self._coo_f), weights=raw, minlength=n_fb)
            self._eff = [self._eff[0] + float(raw.sum()), self._eff[1] + float(raw @ raw), self._eff[2] + len(raw)]
        self._coo_scale = self._scale
        self._counts = self._merged()
        self._coo_u, self._coo_f, self._coo_w = array("l"), array("l"), array("d")
        return self._counts

    def _merged(self) -> sparse.csr_matrix:
        """The counts so far (those of the last coalesce and the events since), changing nothing:
        reading a decoder (a save, a plot) must not change the order its sums are taken in."""
        shape = (len(self._users), len(self._feedback))
        new = sparse.csr_matrix(
            (np.asarray(self._coo_w, float), (np.asarray(self._coo_u), np.asarray(self._coo_f))), shape=shape
        )
        old = self._counts
        if old.shape != shape:
            old = old.copy()
            old.resize(shape)
        return (old + new).tocsr()

    def _evict(self) -> None:
        """Forget the quarter of the users (then of the segments) with the least recent evidence."""
        counts = self._coalesce()
        n_users, n_fb = counts.shape
        keep_n = self.max_users - self.max_users // 4
        keep = self._keep(self._user_weight, self._user_w2, self._user_last, keep_n)
        drop = np.setdiff1d(np.arange(n_users), keep, assume_unique=True)
        gone = counts[drop]
        self._evicted = _pad(self._evicted, n_fb) + np.asarray(gone.sum(axis=0)).ravel()
        if n_fb <= MAX_EVICTED_GRAM_COLUMNS:
            w = np.frombuffer(self._user_weight, float)[drop]
            v = np.frombuffer(self._user_w2, float)[drop]
            with np.errstate(divide="ignore", invalid="ignore"):
                m = np.where(v > 0, w * w / v, 0.0)
                a = m / (m + self.shrinkage)
                rows = sparse.diags(np.where(w > 0, a / w, 0.0)) @ gone
                self._ev_noise += float(np.where(m > 0, a * a / m, 0.0).sum())
            self._ev_gram = _pad2(self._ev_gram, n_fb) + (rows.T @ rows).toarray()
            self._ev_b = _pad(self._ev_b, n_fb) + np.asarray(rows.T @ a).ravel()
            self._ev_aa += float(a @ a)
        n_seg = len(self._seg_weight)
        if n_seg:
            pairs = [(i, t) for i, r in enumerate(drop.tolist()) for t in self._user_tokens[r]]
            if pairs:
                rows, cols = zip(*pairs)
                incidence = sparse.csr_matrix((np.ones(len(pairs)), (rows, cols)), shape=(len(drop), n_seg))
                self._seg_evicted = _resize(self._seg_evicted, (n_seg, n_fb)) + (incidence.T @ gone).tocsr()
        # In place (a second dict of every user would double the decoder's peak memory): the
        # dropped keys go, the kept ones get their new rows.
        renumber = np.full(n_users, -1)
        renumber[keep] = np.arange(len(keep))
        users = self._users
        dropped = set(drop.tolist())
        for key in [k for k, r in users.items() if r in dropped]:
            del users[key]
        renumber = renumber.tolist()
        for key, r in users.items():
            users[key] = renumber[r]
        self._counts = counts[keep].tocsr()
        self._user_weight = _take(self._user_weight, keep)
        self._user_w2 = _take(self._user_w2, keep)
        self._user_last = _take(self._user_last, keep)
        self._user_proj = _take(self._user_proj, keep, self.dims)
        self._user_tokens = [self._user_tokens[r] for r in keep.tolist()]
        self.evicted_users += len(drop)
        if n_seg > self.max_users:
            self._evict_segments(keep_n)

    def _evict_segments(self, keep_n: int) -> None:
        last = array("q", [0]) * len(self._seg_weight)  # segments are ranked by evidence only
        keep = self._keep(self._seg_weight, self._seg_w2, last, keep_n)
        new = np.full(len(self._seg_weight), -1)
        new[keep] = np.arange(len(keep))
        tokens = list(self._segments)
        self._segments = {tokens[t]: i for i, t in enumerate(keep.tolist())}
        self._seg_weight = [self._seg_weight[t] for t in keep.tolist()]
        self._seg_w2 = [self._seg_w2[t] for t in keep.tolist()]
        self._seg_proj = [self._seg_proj[t] for t in keep.tolist()]
        if self._seg_evicted.shape[0]:
            self._seg_evicted = _resize(self._seg_evicted, (len(new), self._seg_evicted.shape[1]))[keep].tocsr()
        self._user_tokens = [tuple(int(new[t]) for t in segs if new[t] >= 0) if segs else segs for segs in self._user_tokens]

    def _keep(self, weight, w2, last, keep_n: int) -> np.ndarray:
        """The rows to keep: the most effective evidence, discounted by age (oldest first out)."""
        w = np.frombuffer(weight, float) if isinstance(weight, array) else np.asarray(weight, float)
        v = np.frombuffer(w2, float) if isinstance(w2, array) else np.asarray(w2, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(v > 0, w * w / v, 0.0)
        age = self._events - np.frombuffer(last, np.int64)
        priority = m / (1.0 + age / float(self.max_users))
        order = np.lexsort((-np.frombuffer(last, np.int64), -priority))  # ties: the most recent first
        return np.sort(order[:keep_n])

    def refit(self) -> None:
        """Recompute the feedback loadings from all counts so far."""
        # One BLAS thread: the matrices are small, and OpenBLAS's idle threads spin for a
        # while after each call, taking the cores VW's driver and the log reader need
        # (measured: 1.7x slower replays).
        with _blas_controller().limit(limits=1, user_api="blas"):
            self._refit()

    def _refit(self) -> None:
        counts = self._coalesce()
        if self._scale != 1.0:
            counts = self._rescale(counts)
        if self._rate and self._eff[1] > 0:
            sw, sw2, n = self._eff
            self._step = math.exp(self._rate * min(sw * sw / (n * sw2), 1.0))
            self._eff = [sw / 2, sw2 / 2, n / 2]
        spacing = max(self.refit_every, int(self.refit_growth * self._events))
        if self.half_life is not None:
            spacing = min(spacing, max(self.refit_every, int(self.half_life / 4)))
        self._next_refit = self._events + spacing
        n_users, n_fb = counts.shape
        if n_fb < 2 or counts.nnz == 0:
            return
        col_weight = np.asarray(counts.sum(axis=0)).ravel()
        keep = np.argsort(-col_weight, kind="stable")[: self.max_feedback_values]
        mask = np.zeros(n_fb, bool)
        mask[keep] = True
        cols = np.flatnonzero(mask)
        c = counts[:, cols] if not mask.all() else counts
        g = np.full(c.shape[1], 1.0 / c.shape[1])  # uniform reference: usual vs rare feedback
        gram = self._gram(c, cols)
        vals, vecs = np.linalg.eigh(gram)
        top = vecs[:, ::-1][:, : self.dims]
        if top.shape[1] < self.dims:
            top = np.pad(top, ((0, 0), (0, self.dims - top.shape[1])))
        loading = np.zeros((n_fb, self.dims))
        loading[mask] = top
        # Keep each direction's sign stable across refits, so group codes keep their meaning.
        prev = self._loading
        if len(prev):
            overlap = (loading[: len(prev)] * prev).sum(axis=0)
            loading[:, overlap < 0] *= -1
        self._set_loading(loading, g @ loading[mask])
        proj = np.asarray(counts @ loading)
        self._user_proj = array("d", proj.ravel().tolist())
        pop = proj.sum(axis=0)
        if self.evicted_users:
            pop = pop + _pad(self._evicted, n_fb) @ loading
        self._pop_proj = pop.tolist()
        seg_proj = np.zeros((len(self._seg_weight), self.dims))
        for row, segs in enumerate(self._user_tokens):
            for t in segs:
                seg_proj[t] += proj[row]
        if self._seg_evicted.shape[0]:
            seg_proj += np.asarray(_resize(self._seg_evicted, (len(seg_proj), n_fb)) @ loading)
        self._seg_proj = seg_proj.tolist()
        self.refits += 1

    def _rescale(self, counts) -> sparse.csr_matrix:
        """Bring every count back to the scale of 1 (forward decay: the faded weights as they are now)."""
        f = 1.0 / self._scale
        counts = self._counts = counts.multiply(f).tocsr()
        np.frombuffer(self._user_weight, float)[:] *= f
        np.frombuffer(self._user_w2, float)[:] *= f * f
        self._seg_weight = [w * f for w in self._seg_weight]
        self._seg_w2 = [w * f * f for w in self._seg_w2]
        self._pop_weight *= f
        self._evicted = self._evicted * f
        self._seg_evicted = self._seg_evicted.multiply(f).tocsr()
        self._scale = self._coo_scale = 1.0
        return counts

    def _set_loading(self, loading, g_loading) -> None:
        """Loadings per fitted feedback column, and the uniform reference . loadings."""
        self._loading = loading
        self._loading_rows = [tuple(r) for r in loading.tolist()]
        self._g_loading = np.asarray(g_loading, float)
        self._gl = tuple(self._g_loading.tolist())
        self._zeros = array("d", [0.0]) * self.dims

    def _rows(self, c):
        """``(M, a, g)``: the users' rows centred on the uniform reference ``g`` and weighted
        by ``a = m / (m + shrinkage)`` are ``M - a gᵀ`` (``M = diag(a / n) C``)."""
        n_users = c.shape[0]
        n = np.frombuffer(self._user_weight, float)[:n_users]
        w2 = np.frombuffer(self._user_w2, float)[:n_users]
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(w2 > 0, n * n / w2, 0.0)
            a = m / (m + self.shrinkage)
            d = np.where(n > 0, a / n, 0.0)
        g = np.full(c.shape[1], 1.0 / c.shape[1])
        return sparse.diags(d) @ c, a, g, m

    def _gram(self, c, cols=None):
        """The F x F Gram matrix of the weighted, centred rows, less their expected sampling
        covariance: Σ_u a_u² (P̂_u - g)(P̂_u - g)ᵀ - Σ_u (a_u² / m_u) (diag p - p pᵀ); the
        forgotten users' terms included. ``cols``: the columns of the counts ``c`` holds."""
        m_rows, a, g, m = self._rows(c)
        b = np.asarray(m_rows.T @ a).ravel()
        gram = (m_rows.T @ m_rows).toarray() - np.outer(b, g) - np.outer(g, b) + (a @ a) * np.outer(g, g)
        with np.errstate(divide="ignore", invalid="ignore"):
            noise = np.where(m > 0, a * a / m, 0.0).sum()
        if self.evicted_users:
            n_fb = len(self._feedback)
            cols = np.arange(c.shape[1]) if cols is None else cols
            if len(self._ev_gram):
                ev = _pad2(self._ev_gram, n_fb)[np.ix_(cols, cols)]
                eb = _pad(self._ev_b, n_fb)[cols]
                gram += ev - np.outer(eb, g) - np.outer(g, eb) + self._ev_aa * np.outer(g, g)
                noise += self._ev_noise
        col_sums, total = self._noise_distribution(c, cols)
        if total > 0:
            p = col_sums / total  # the population's distribution
            gram -= noise * (np.diag(p) - np.outer(p, p))
        return gram

    def _noise_distribution(self, c, cols) -> tuple:
        """``(column sums, total)`` of the population the noise correction's distribution is of:
        the counts ``c`` (columns ``cols``) and the forgotten users'. When fading, every event's
        unfaded instead: the population's counts are recent, the rows are not all so (a user seen
        once long ago keeps their row), and the faded distribution, off by its sampling noise
        times the users' summed noise, swamped the directions of users seen once each (measured)."""
        n_fb = len(self._feedback)
        cols = np.arange(c.shape[1]) if cols is None else cols
        if self.half_life is not None:
            col_sums = _pad(self._raw, n_fb)[cols]
            return col_sums, col_sums.sum()
        col_sums = np.asarray(c.sum(axis=0)).ravel()
        if not self.evicted_users:
            return col_sums, c.sum()
        col_sums = col_sums + _pad(self._evicted, n_fb)[cols]
        return col_sums, col_sums.sum()

    def coordinates(self, k: int = 2):
        """Users and feedback values in the top ``k`` directions of the decoder's own counts.

        The same centred, weighted user x feedback rows a refit decomposes, with ``k``
        directions instead of ``dims`` (the first one is the direction the group codes
        use, same sign). Returns ``(users, feedback)``: dicts of key -> array of ``k``
        coordinates. For plots like the paper's Fig. 2, read back from a trained model.
        """
        counts = self._merged()
        with _blas_controller().limit(limits=1, user_api="blas"):
            _, vecs = np.linalg.eigh(self._gram(counts))
        top = vecs[:, ::-1][:, :k]
        if len(self._loading) and (top[: len(self._loading), 0] @ self._loading[:, 0]) < 0:
            top[:, 0] *= -1
        m_rows, a, g, _ = self._rows(counts)
        users = (m_rows @ top) - np.outer(a, g @ top)
        return (
            {u: users[i] for u, i in self._users.items()},
            {f: top[j] for f, j in self._feedback.items()},
        )

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """Everything needed to continue exactly where this decoder is (JSON-able): the counts of
        the last coalesce and the events since apart, so that a saved and reloaded decoder adds
        them up in the order one that was never saved does (byte-identical models)."""
        counts = self._counts
        n_users = len(self._users)
        return {
            "params": {
                "dims": self.dims,
                "shrinkage": self.shrinkage,
                "refit_every": self.refit_every,
                "refit_growth": self.refit_growth,
                "max_feedback_values": self.max_feedback_values,
                "max_users": self.max_users,
                "max_feedback_keys": self.max_feedback_keys,
                "half_life": self.half_life,
            },
            "users": list(self._users),
            "feedback": list(self._feedback),
            "counts": {
                "data": counts.data.tolist(),
                "indices": counts.indices.tolist(),
                "indptr": counts.indptr.tolist(),
                "shape": list(counts.shape),
            },
            **({"pending": {"users": self._coo_u.tolist(), "feedback": self._coo_f.tolist(),
                            "weights": self._coo_w.tolist(), "scale": self._coo_scale}} if len(self._coo_w) else {}),
            "user_weight": self._user_weight.tolist(),
            "user_w2": self._user_w2.tolist(),
            "user_proj": [self._user_proj[i * self.dims: (i + 1) * self.dims].tolist() for i in range(n_users)],
            "user_last": self._user_last.tolist(),
            "evicted_users": self.evicted_users,
            "evicted": self._evicted.tolist(),
            "evicted_gram": {"gram": self._ev_gram.tolist(), "b": self._ev_b.tolist(), "aa": self._ev_aa,
                             "noise": self._ev_noise},
            "seg_evicted": {
                "data": self._seg_evicted.data.tolist(),
                "indices": self._seg_evicted.indices.tolist(),
                "indptr": self._seg_evicted.indptr.tolist(),
                "shape": list(self._seg_evicted.shape),
            },
            "segments": list(self._segments),
            "seg_weight": list(self._seg_weight),
            "seg_w2": list(self._seg_w2),
            "seg_proj": [list(p) for p in self._seg_proj],
            "pop_weight": self._pop_weight,
            "pop_proj": list(self._pop_proj),
            "loading": self._loading.tolist(),
            "g_loading": self._g_loading.tolist(),
            "events": self._events,
            **({"scale": self._scale, "step": self._step, "efficiency": self._eff, "raw": self._raw.tolist()}
               if self._rate else {}),
            "next_refit": self._next_refit,
            "refits": self.refits,
        }

    @classmethod
    def from_state(cls, state: dict) -> "CommunicationDecoder":
        # States saved before the memory bound and fading had neither.
        self = cls(**{"max_users": None, "half_life": None, **state["params"]})
        self._users = {u: i for i, u in enumerate(state["users"])}
        self._feedback = {f: i for i, f in enumerate(state["feedback"])}
        self._counts = _csr(state["counts"])
        pending = state.get("pending")
        if pending:
            self._coo_u, self._coo_f = array("l", pending["users"]), array("l", pending["feedback"])
            self._coo_w = array("d", [float(w) for w in pending["weights"]])
        self._user_weight = array("d", [float(w) for w in state["user_weight"]])
        self._user_w2 = array("d", [float(w) for w in state["user_w2"]])
        self._user_proj = array("d", [float(v) for p in state["user_proj"] for v in p])
        self._user_last = array("q", state.get("user_last", [0] * len(self._users)))
        self.evicted_users = int(state.get("evicted_users", 0))
        self._evicted = np.asarray(state.get("evicted", []), float)
        if "seg_evicted" in state:
            self._seg_evicted = _csr(state["seg_evicted"])
        if "evicted_gram" in state:
            ev = state["evicted_gram"]
            self._ev_b = np.asarray(ev["b"], float)
            self._ev_gram = np.asarray(ev["gram"], float).reshape(len(self._ev_b), len(self._ev_b))
            self._ev_aa, self._ev_noise = float(ev["aa"]), float(ev["noise"])
        self._segments = {t: i for i, t in enumerate(state["segments"])}
        self._seg_weight = [float(w) for w in state["seg_weight"]]
        self._seg_w2 = [float(w) for w in state["seg_w2"]]
        self._seg_proj = [[float(v) for v in p] for p in state["seg_proj"]]
        self._user_tokens = [self._token_rows(u, create=False) for u in self._users]
        self._pop_weight = float(state["pop_weight"])
        self._pop_proj = [float(v) for v in state["pop_proj"]]
        self._set_loading(np.asarray(state["loading"], float).reshape(-1, self.dims), state["g_loading"])
        self._events = state["events"]
        self._scale = float(state.get("scale", 1.0))
        self._coo_scale = float(pending["scale"]) if pending else self._scale
        if self._rate:
            self._step = float(state.get("step", self._step))
            self._eff = [float(v) for v in state.get("efficiency", (0.0, 0.0, 0.0))]
        self._raw = np.asarray(state.get("raw", []), float)
        self._next_refit = state["next_refit"]
        self.refits = state["refits"]
        return self


def _csr(d: dict) -> sparse.csr_matrix:
    return sparse.csr_matrix(
        (np.asarray(d["data"], float), np.asarray(d["indices"], np.int32), np.asarray(d["indptr"], np.int32)),
        shape=tuple(d["shape"]),
    )


def _pad(v: np.ndarray, n: int) -> np.ndarray:
    return v if len(v) >= n else np.concatenate([v, np.zeros(n - len(v))])


def _pad2(m: np.ndarray, n: int) -> np.ndarray:
    if m.shape[0] >= n:
        return m
    out = np.zeros((n, n))
    out[: m.shape[0], : m.shape[1]] = m
    return out


def _resize(m: sparse.csr_matrix, shape) -> sparse.csr_matrix:
    if m.shape == tuple(shape):
        return m
    m = m.copy()
    m.resize(shape)
    return m


def _take(values: array, rows: np.ndarray, width: int = 1) -> array:
    """The given rows of a flat array (``width`` values per row), as a new array."""
    a = np.frombuffer(values, np.int64 if values.typecode == "q" else float).reshape(-1, width)
    return array(values.typecode, a[rows].ravel().tolist())
