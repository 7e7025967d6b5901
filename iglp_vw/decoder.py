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
``r = 0`` one. Each user's row is normalised (shrunk towards the population's
distribution by ``shrinkage`` pseudo-events), centred on the population, and the
top ``dims`` principal directions of the feedback values are refitted from time
to time. A user's score is the projection of their row, a feedback value's
score its loading; the pair's *group code* is the sign pattern of their
product, one bit per dimension: users and feedback embedded in a
low-dimensional space, as in the paper's Fig. 2. The code's meaning (which
group is extreme) is not decided here: the inverse-kinematics test decides it.

A refit costs O(distinct (user, feedback) pairs + F^2 · dims) where F is the
number of distinct feedback values kept (at most ``max_feedback_values``): the
decomposition is of the F x F Gram matrix of the centred rows, never of the
users x feedback matrix. Refits happen every ``refit_every`` events at first,
then every ``refit_growth`` x events seen, so their total cost grows as
O(n log n).

Whose feedback it is: the ``user`` key passed in (the learner uses the
context's ``User`` namespace). A user never seen, or seen with no weight yet,
gets the code of the *typical* user (the median user score), i.e. the
population's convention, until their own counts say otherwise. A feedback value
never seen before gets the code ``"u"`` (unknown) until the next refit.
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
        Pseudo-count pulling a user's feedback distribution towards the
        population's; users with less weight than this look typical.
    refit_every
        Minimum number of events between refits.
    refit_growth
        Refit at most every ``refit_growth`` x (events seen) events.
    max_feedback_values
        Feedback values kept in the decomposition (the most frequent ones).
    """

    def __init__(
        self, dims=1, shrinkage=2.0, refit_every=200, refit_growth=0.05, max_feedback_values=2000, center="uniform"
    ):
        if dims < 1:
            raise ValueError(f"`dims` must be >= 1, got {dims}")
        if shrinkage < 0:
            raise ValueError(f"`shrinkage` must be >= 0, got {shrinkage}")
        if center not in ("uniform", "population"):
            raise ValueError(f"`center` must be 'uniform' or 'population', got {center!r}")
        self.center = center
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
        self._user_weight: list = []  # per user row
        self._user_proj: list = []  # per user row: [sum of w * loading(f)] per dimension
        self._set_loading(np.zeros((0, self.dims)), np.zeros(self.dims))  # per fitted feedback column
        self._set_typical(np.ones(self.dims))
        self._events = 0
        self._next_refit = self.refit_every
        self.refits = 0

    # ------------------------------------------------------------------ lookup
    def user_score(self, user: str) -> np.ndarray:
        """The user's coordinates in the latent space (the typical user's if unknown)."""
        return np.asarray(self._user_score(self._users.get(user)))

    def _user_score(self, row) -> tuple:
        if row is None or self._user_weight[row] <= 0:
            return self._typ
        n = self._user_weight[row]
        d = n + self.shrinkage
        return tuple((p - n * g) / d for p, g in zip(self._user_proj[row], self._gl))

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
        u = self._user_score(self._users.get(user))
        if self.dims == 1:
            s = u[0] if u[0] != 0 else self._typ[0]
            return "g1" if s * v[0] > 0 else "g0"
        bits = []
        for k in range(self.dims):
            s = u[k] if u[k] != 0 else self._typ[k]
            bits.append("1" if s * v[k] > 0 else "0")
        return "g" + "".join(bits)

    # ------------------------------------------------------------------ update
    def update(self, user: str, feedback: str, weight: float) -> None:
        """Count one event (``weight`` = importance weight to the synthetic uniform policy)."""
        row = self._users.get(user)
        if row is None:
            row = self._users[user] = len(self._users)
            self._user_weight.append(0.0)
            self._user_proj.append([0.0] * self.dims)
        col = self._feedback.get(feedback)
        if col is None:
            col = self._feedback[feedback] = len(self._feedback)
        self._coo_u.append(row)
        self._coo_f.append(col)
        self._coo_w.append(weight)
        self._user_weight[row] += weight
        if col < len(self._loading_rows):
            proj = self._user_proj[row]
            for k, v in enumerate(self._loading_rows[col]):
                proj[k] += weight * v
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
        if n_users < 2 or n_fb < 2:
            return
        col_weight = np.asarray(counts.sum(axis=0)).ravel()
        keep = np.argsort(-col_weight, kind="stable")[: self.max_feedback_values]
        mask = np.zeros(n_fb, bool)
        mask[keep] = True
        c = counts[:, np.flatnonzero(mask)] if not mask.all() else counts
        n = np.asarray(c.sum(axis=1)).ravel()
        total = n.sum()
        if total <= 0:
            return
        if self.center == "population":
            g = np.asarray(c.sum(axis=0)).ravel() / total  # population feedback distribution
        else:
            g = np.full(c.shape[1], 1.0 / c.shape[1])  # uniform reference: usual vs rare feedback
        _, _, gram = self._centred_gram(c, n, g)
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
        self._set_loading(loading, g @ top)
        proj = np.zeros((len(self._user_weight), self.dims))
        proj[:n_users] = counts @ loading
        self._user_proj = proj.tolist()
        scores = (proj[:n_users] - n[:, None] * self._g_loading) / (n[:, None] + self.shrinkage)
        typical = np.median(scores[n > 0], axis=0) if (n > 0).any() else np.ones(self.dims)
        self._set_typical(np.where(typical == 0, 1.0, typical))
        self.refits += 1

    def _set_loading(self, loading, g_loading) -> None:
        """Loadings per fitted feedback column, and the population distribution . loadings."""
        self._loading = loading
        self._loading_rows = [tuple(r) for r in loading.tolist()]
        self._g_loading = np.asarray(g_loading, float)
        self._gl = tuple(self._g_loading.tolist())

    def _set_typical(self, typical) -> None:
        self._typical = np.asarray(typical, float)
        self._typ = tuple(self._typical.tolist())

    def _centred_gram(self, c, n, g):
        """``(m, a, gram)``: the user rows shrunk and centred on ``g`` are ``m - a g``.

        Rows P_u = (C_u + s g) / (n_u + s); centred: P_u - g = D C_u - a_u g, with
        D = diag(1 / (n + s)) and a = n / (n + s). ``gram`` is their F x F Gram matrix.
        """
        d = 1.0 / (n + self.shrinkage)
        a = n * d
        m = sparse.diags(d) @ c
        b = np.asarray(m.T @ a).ravel()
        gram = (m.T @ m).toarray() - np.outer(b, g) - np.outer(g, b) + (a @ a) * np.outer(g, g)
        return m, a, gram

    def coordinates(self, k: int = 2):
        """Users and feedback values in the top ``k`` directions of the decoder's own counts.

        The same centred, shrunk user x feedback rows a refit decomposes, with ``k``
        directions instead of ``dims`` (the first one is the direction the group codes
        use, same sign). Returns ``(users, feedback)``: dicts of key -> array of ``k``
        coordinates. For plots like the paper's Fig. 2, read back from a trained model.
        """
        counts = self._coalesce()
        n = np.asarray(counts.sum(axis=1)).ravel()
        if self.center == "population":
            g = np.asarray(counts.sum(axis=0)).ravel() / max(n.sum(), 1e-12)
        else:
            g = np.full(counts.shape[1], 1.0 / max(counts.shape[1], 1))
        m, a, gram = self._centred_gram(counts, n, g)
        with _blas_controller().limit(limits=1, user_api="blas"):
            _, vecs = np.linalg.eigh(gram)
        top = vecs[:, ::-1][:, :k]
        if len(self._loading) and (top[: len(self._loading), 0] @ self._loading[:, 0]) < 0:
            top[:, 0] *= -1
        users = (m @ top) - np.outer(a, g @ top)
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
                "center": self.center,
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
            "user_proj": [list(p) for p in self._user_proj[:n_users]],
            "loading": self._loading.tolist(),
            "g_loading": self._g_loading.tolist(),
            "typical": self._typical.tolist(),
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
        self._user_proj = [[float(v) for v in p] for p in state["user_proj"]]
        self._set_loading(np.asarray(state["loading"], float).reshape(-1, self.dims), state["g_loading"])
        self._set_typical(state["typical"])
        self._events = state["events"]
        self._next_refit = state["next_refit"]
        self.refits = state["refits"]
        return self
