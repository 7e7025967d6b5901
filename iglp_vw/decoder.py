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

A refit costs O(distinct (user, feedback) pairs + F^2 · dims) where F is the
number of distinct feedback values kept (at most ``max_feedback_values``): the
decomposition is of the F x F Gram matrix of the centred rows, never of the
users x feedback matrix. Refits happen every ``refit_every`` events at first,
then every ``refit_growth`` x events seen, so their total cost grows as
O(n log n). A feedback value never seen before gets the code ``"u"`` (unknown)
until the next refit.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from threadpoolctl import ThreadpoolController

_CONTROLLER = None


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
    """

    def __init__(self, dims=1, shrinkage=5.0, refit_every=200, refit_growth=0.05, max_feedback_values=2000):
        if dims < 1:
            raise ValueError(f"`dims` must be >= 1, got {dims}")
        if shrinkage <= 0:
            raise ValueError(f"`shrinkage` must be > 0, got {shrinkage}")
        self.dims = int(dims)
        self.shrinkage = float(shrinkage)
        self.refit_every = int(refit_every)
        self.refit_growth = float(refit_growth)
        self.max_feedback_values = int(max_feedback_values)
        self._users: dict = {}  # user key -> row
        self._feedback: dict = {}  # feedback key -> column
        self._coo_u: list = []  # events since the last refit
        self._coo_f: list = []
        self._coo_w: list = []
        self._counts = sparse.csr_matrix((0, 0))  # coalesced counts up to the last refit
        # Per-event state in Python floats (numpy's per-call overhead on arrays this small
        # was most of the decoder's cost); IEEE arithmetic, so the same numbers as numpy.
        self._user_weight: list = []  # per user row: Σ w
        self._user_w2: list = []  # per user row: Σ w² (effective events = (Σw)²/Σw²)
        self._user_proj: list = []  # per user row: [Σ w · loading(f)] per dimension
        self._user_tokens: list = []  # per user row: the segment rows of its features (none for one feature)
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
        return tuple((m * (p / n - g) + s * q) / (m + s) for p, g, q in zip(self._user_proj[row], self._gl, prior))

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

    def feedback_score(self, feedback: str):
        """The feedback value's loadings, or ``None`` if it was not in the last fit."""
        col = self._feedback.get(feedback)
        if col is None or col >= len(self._loading):
            return None
        return self._loading[col]

    def code(self, user: str, feedback: str) -> str:
        """Group code of the pair: ``"g"`` + one bit per dimension, or ``"u"`` if unknown."""
        col = self._feedback.get(feedback)
        if col is None or col >= len(self._loading_rows) or self.refits == 0:
            return "u"
        v = self._loading_rows[col]
        u = self._user_score(user, self._users.get(user))
        if self.dims == 1:
            return "g1" if u[0] * v[0] > 0 else "g0"
        return "g" + "".join("1" if u[k] * v[k] > 0 else "0" for k in range(self.dims))

    # ------------------------------------------------------------------ update
    def update(self, user: str, feedback: str, weight: float) -> None:
        """Count one event (``weight`` = importance weight to the synthetic uniform policy)."""
        row = self._users.get(user)
        if row is None:
            row = self._users[user] = len(self._users)
            self._user_weight.append(0.0)
            self._user_w2.append(0.0)
            self._user_proj.append([0.0] * self.dims)
            self._user_tokens.append(self._token_rows(user, create=True))
        col = self._feedback.get(feedback)
        if col is None:
            col = self._feedback[feedback] = len(self._feedback)
        self._coo_u.append(row)
        self._coo_f.append(col)
        self._coo_w.append(weight)
        self._user_weight[row] += weight
        self._user_w2[row] += weight * weight
        self._pop_weight += weight
        segs = self._user_tokens[row]
        for t in segs:
            self._seg_weight[t] += weight
            self._seg_w2[t] += weight * weight
        if col < len(self._loading_rows):
            proj, pop = self._user_proj[row], self._pop_proj
            for k, v in enumerate(self._loading_rows[col]):
                proj[k] += weight * v
                pop[k] += weight * v
                for t in segs:
                    self._seg_proj[t][k] += weight * v
        self._events += 1
        if self._events >= self._next_refit:
            self.refit()

    def _coalesce(self) -> sparse.csr_matrix:
        shape = (len(self._users), len(self._feedback))
        new = sparse.csr_matrix(
            (np.asarray(self._coo_w, float), (np.asarray(self._coo_u), np.asarray(self._coo_f))), shape=shape
        )
        old = self._counts
        if old.shape != shape:
            old = old.copy()
            old.resize(shape)
        self._coo_u, self._coo_f, self._coo_w = [], [], []
        self._counts = (old + new).tocsr()
        return self._counts

    def refit(self) -> None:
        """Recompute the feedback loadings from all counts so far."""
        # One BLAS thread: the matrices are small, and OpenBLAS's idle threads spin for a
        # while after each call, taking the cores VW's driver and the log reader need
        # (measured: 1.7x slower replays).
        with _blas_controller().limit(limits=1, user_api="blas"):
            self._refit()

    def _refit(self) -> None:
        counts = self._coalesce()
        self._next_refit = self._events + max(self.refit_every, int(self.refit_growth * self._events))
        n_users, n_fb = counts.shape
        if n_fb < 2 or counts.nnz == 0:
            return
        col_weight = np.asarray(counts.sum(axis=0)).ravel()
        keep = np.argsort(-col_weight, kind="stable")[: self.max_feedback_values]
        mask = np.zeros(n_fb, bool)
        mask[keep] = True
        c = counts[:, np.flatnonzero(mask)] if not mask.all() else counts
        g = np.full(c.shape[1], 1.0 / c.shape[1])  # uniform reference: usual vs rare feedback
        gram = self._gram(c)
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
        self._user_proj = proj.tolist()
        self._pop_proj = proj.sum(axis=0).tolist()
        seg_proj = np.zeros((len(self._seg_weight), self.dims))
        for row, segs in enumerate(self._user_tokens):
            for t in segs:
                seg_proj[t] += proj[row]
        self._seg_proj = seg_proj.tolist()
        self.refits += 1

    def _set_loading(self, loading, g_loading) -> None:
        """Loadings per fitted feedback column, and the uniform reference . loadings."""
        self._loading = loading
        self._loading_rows = [tuple(r) for r in loading.tolist()]
        self._g_loading = np.asarray(g_loading, float)
        self._gl = tuple(self._g_loading.tolist())

    def _rows(self, c):
        """``(M, a, g)``: the users' rows centred on the uniform reference ``g`` and weighted
        by ``a = m / (m + shrinkage)`` are ``M - a gᵀ`` (``M = diag(a / n) C``)."""
        n_users = c.shape[0]
        n = np.asarray(self._user_weight[:n_users])
        w2 = np.asarray(self._user_w2[:n_users])
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(w2 > 0, n * n / w2, 0.0)
            a = m / (m + self.shrinkage)
            d = np.where(n > 0, a / n, 0.0)
        g = np.full(c.shape[1], 1.0 / c.shape[1])
        return sparse.diags(d) @ c, a, g, m

    def _gram(self, c):
        """The F x F Gram matrix of the weighted, centred rows, less their expected sampling
        covariance: Σ_u a_u² (P̂_u - g)(P̂_u - g)ᵀ - Σ_u (a_u² / m_u) (diag p - p pᵀ)."""
        m_rows, a, g, m = self._rows(c)
        b = np.asarray(m_rows.T @ a).ravel()
        gram = (m_rows.T @ m_rows).toarray() - np.outer(b, g) - np.outer(g, b) + (a @ a) * np.outer(g, g)
        total = c.sum()
        if total > 0:
            p = np.asarray(c.sum(axis=0)).ravel() / total  # the population's distribution
            with np.errstate(divide="ignore", invalid="ignore"):
                noise = np.where(m > 0, a * a / m, 0.0).sum()
            gram -= noise * (np.diag(p) - np.outer(p, p))
        return gram

    def coordinates(self, k: int = 2):
        """Users and feedback values in the top ``k`` directions of the decoder's own counts.

        The same centred, weighted user x feedback rows a refit decomposes, with ``k``
        directions instead of ``dims`` (the first one is the direction the group codes
        use, same sign). Returns ``(users, feedback)``: dicts of key -> array of ``k``
        coordinates. For plots like the paper's Fig. 2, read back from a trained model.
        """
        counts = self._coalesce()
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
        """Everything needed to continue exactly where this decoder is (JSON-able)."""
        counts = self._coalesce()
        n_users = len(self._users)
        return {
            "params": {
                "dims": self.dims,
                "shrinkage": self.shrinkage,
                "refit_every": self.refit_every,
                "refit_growth": self.refit_growth,
                "max_feedback_values": self.max_feedback_values,
            },
            "users": list(self._users),
            "feedback": list(self._feedback),
            "counts": {
                "data": counts.data.tolist(),
                "indices": counts.indices.tolist(),
                "indptr": counts.indptr.tolist(),
                "shape": list(counts.shape),
            },
            "user_weight": list(self._user_weight[:n_users]),
            "user_w2": list(self._user_w2[:n_users]),
            "user_proj": [list(p) for p in self._user_proj[:n_users]],
            "segments": list(self._segments),
            "seg_weight": list(self._seg_weight),
            "seg_w2": list(self._seg_w2),
            "seg_proj": [list(p) for p in self._seg_proj],
            "pop_weight": self._pop_weight,
            "pop_proj": list(self._pop_proj),
            "loading": self._loading.tolist(),
            "g_loading": self._g_loading.tolist(),
            "events": self._events,
            "next_refit": self._next_refit,
            "refits": self.refits,
        }

    @classmethod
    def from_state(cls, state: dict) -> "CommunicationDecoder":
        self = cls(**state["params"])
        self._users = {u: i for i, u in enumerate(state["users"])}
        self._feedback = {f: i for i, f in enumerate(state["feedback"])}
        c = state["counts"]
        self._counts = sparse.csr_matrix(
            (np.asarray(c["data"], float), np.asarray(c["indices"], np.int32), np.asarray(c["indptr"], np.int32)),
            shape=tuple(c["shape"]),
        )
        self._user_weight = [float(w) for w in state["user_weight"]]
        self._user_w2 = [float(w) for w in state["user_w2"]]
        self._user_proj = [[float(v) for v in p] for p in state["user_proj"]]
        self._segments = {t: i for i, t in enumerate(state["segments"])}
        self._seg_weight = [float(w) for w in state["seg_weight"]]
        self._seg_w2 = [float(w) for w in state["seg_w2"]]
        self._seg_proj = [[float(v) for v in p] for p in state["seg_proj"]]
        self._user_tokens = [self._token_rows(u, create=False) for u in self._users]
        self._pop_weight = float(state["pop_weight"])
        self._pop_proj = [float(v) for v in state["pop_proj"]]
        self._set_loading(np.asarray(state["loading"], float).reshape(-1, self.dims), state["g_loading"])
        self._events = state["events"]
        self._next_refit = state["next_refit"]
        self.refits = state["refits"]
        return self
