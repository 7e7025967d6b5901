"""The inverse-kinematics (IK) model: P̂(a | x, y) and the prior P̂(a | x) it is tested against.

Both are VW ``--oaa K --probabilities --loss_function logistic`` workspaces
trained on the same stream with importance weight ``1/(K p(a|x))`` (Algorithm 1
line 9), so both estimate probabilities under the *synthetic uniform* policy.

Why a learned prior rather than the nominal ``1/K`` of Eq. 3: off-policy
importance weights span a factor of ~200 under an ε-greedy policy, and an IK
trained with them partly learns to predict the policy's own action from ``x``.
Tested against ``1/K``, ``K P̂ > 2`` then fires on the greedy action and the CB
reinforces itself. The prior model shares that bias, so the ratio
P̂(a|x,y) / P̂(a|x) cancels it (measured in ``docs/ik-design.md``).

What the IK sees of the feedback ``y``: the group code of the (user, feedback)
pair from :class:`iglp_vw.decoder.CommunicationDecoder`, crossed with every
context namespace (``x ⊗ s``). The IK then learns, per group, a classifier of
the action from the context; a group whose feedback predicts the action is the
extreme one.
"""

from __future__ import annotations

import os
import pickle

from .vw import VWText, VWTexts, Workspace, adf_lines, build_args, namespace_chars, reload_args, split_args

# Namespace holding the group code in IK examples; VW keys interactions on the
# first character, and '_' is not a first character users give namespaces.
CODE_NAMESPACE = "_iglp"

# ``--per_model_save_load``: oaa keeps one normalized-GD state per class, and without this
# flag VW 9.11.9 saves only class 0's, so a reloaded IK drifted (up to ~0.008 in probability)
# from uninterrupted training. With it, continued training is bit-identical (tested).
IK_BASE_ARGS = "--probabilities --loss_function logistic --per_model_save_load"


def ik_args(num_actions: int, extra=None, seed: int = 0, code: bool = True) -> str:
    """VW arguments of the IK (``code=True``) or of its prior (``code=False``).

    >>> ik_args(10, seed=1)
    '--oaa 10 --probabilities --loss_function logistic --per_model_save_load -q :_ --random_seed 1 --quiet'
    """
    interactions = f"-q :{CODE_NAMESPACE[0]}" if code else None
    return build_args(f"--oaa {int(num_actions)}", IK_BASE_ARGS, interactions, extra, seed=seed)


class InverseKinematics:
    """P̂(a | x, s) with x crossed with the group code s, and the prior P̂(a | x).

    Parameters
    ----------
    num_actions
        K, the number of action slots (oaa classes).
    extra_args
        Extra VW arguments for both models (e.g. ``"-b 20"``).
    seed
        Passed to VW as ``--random_seed``.
    """

    def __init__(self, num_actions: int, extra_args=None, seed: int = 0, _models=None):
        self.num_actions = int(num_actions)
        self.extra_args = extra_args
        self.seed = seed
        self.args = ik_args(self.num_actions, extra_args, seed, code=True)
        self.prior_args = ik_args(self.num_actions, extra_args, seed, code=False)
        if _models is None:
            self._ik = Workspace(self.args)
            self._prior = Workspace(self.prior_args)
        else:
            self._ik = Workspace(reload_args(self.args), _models[0])
            self._prior = Workspace(reload_args(self.prior_args), _models[1])

    def learn(self, context_text: str, code: str, action: int, weight: float, action_texts=()):
        """Predict then learn one event (Algorithm 1 lines 10 and 19); ``action_texts`` unused.

        Returns ``(P̂(·|x,s), P̂(·|x))`` over the slots, both predicted before this
        event's update.
        """
        label = f"{action + 1} {weight:.9g} "
        return (self._ik.learn(f"{label}{context_text} |{CODE_NAMESPACE} {code} "),
                self._prior.learn(label + context_text))

    def predict(self, context_text: str, code: str, action_texts=()):
        """``(P̂(·|x,s), P̂(·|x))`` without learning."""
        return self._ik.predict(f"{context_text} |{CODE_NAMESPACE} {code} "), self._prior.predict(context_text)

    def prepare(self, context_text: str, action_texts=()) -> None:
        """Nothing to resolve: the slot IK's interactions are wildcards."""

    def save(self, ik_path, prior_path) -> None:
        self._ik.save(ik_path)
        self._prior.save(prior_path)

    @classmethod
    def load(cls, num_actions, extra_args, seed, ik_path, prior_path) -> "InverseKinematics":
        return cls(num_actions, extra_args, seed, _models=(ik_path, prior_path))


# The action-feature IK's learning rate: twice VW's default (0.5), VW's own decay (power_t 0.5).
# With the group test that asks for evidence (docs/ik-design.md, issue 11) it starts faster
# than the slot IK (first 3,000 uniformly logged events of a 100-user log: 113-141 events
# inferred +1 vs 30-69) and learns as well on digits (30 seeds: 0.991 of the oracle, worst
# 0.970; 3 passes 0.973, worst 0.883). The former power_t 0.3 with -l 0.5 inferred nothing
# in those 3,000 events; -l 2 lost a third of the reward in the 3-state news simulation.
LDF_LEARNING_RATE = "-l 1"


def _ldf_args(extra, seed: int) -> str:
    tokens = split_args(extra)
    rate = None if {"-l", "--learning_rate"} & set(tokens) else LDF_LEARNING_RATE
    return build_args("--csoaa_ldf mc", IK_BASE_ARGS, rate, extra, seed=seed)


class ActionFeatureIK:
    """P̂(a | x, s) and P̂(a | x) over the *candidates' features*, not their positions.

    VW ``--csoaa_ldf mc --probabilities --loss_function logistic``: one line per
    candidate, the context (and the group code) in the shared line. Interactions,
    resolved on the first event from its namespaces: for the posterior, every context
    namespace c crossed with the code and the action namespaces A (``--cubic c_A``)
    and the code with A (``-q _A``); for the prior, ``-q cA``. The importance weight
    1/(K p) is the cost of the wrong candidates (csoaa_ldf weighs each line by the
    cost gap). For action sets whose items change from round to round.
    """

    def __init__(self, num_actions=None, extra_args=None, seed: int = 0, _models=None, quadratic: bool = False):
        self.num_actions = num_actions  # not needed: candidates are scored by their features
        self.extra_args = extra_args
        self.seed = seed
        self.quadratic = quadratic
        self.args = self.prior_args = None
        self._ik = self._prior = None
        if _models is not None:
            base = reload_args(_ldf_args(extra_args, seed))
            self._ik = Workspace(base, _models[0])
            self._prior = Workspace(base, _models[1])

    def _workspaces(self, context_text: str, action_texts):
        if self._ik is None:
            ctx, act = namespace_chars(context_text, action_texts)
            code = CODE_NAMESPACE[0]
            post = [t for a in act for t in ("-q", code + a)] + [t for c in ctx for a in act for t in ("--cubic", c + code + a)]
            prior = [t for c in ctx for a in act for t in ("-q", c + a)]
            if self.quadratic:  # as expressive as the CB's default (--cubic cca): x ⊗ x ⊗ code ⊗ A
                post += [t for c in ctx for a in act for t in ("--interactions", c + c + code + a)]
                prior += [t for c in ctx for a in act for t in ("--cubic", c + c + a)]
            # Tokens, not a joined string: a '\xNN' namespace escape must reach VW as it is.
            self.args = build_args(split_args(_ldf_args(self.extra_args, self.seed)), post)
            self.prior_args = build_args(split_args(_ldf_args(self.extra_args, self.seed)), prior)
            self._ik = Workspace(self.args)
            self._prior = Workspace(self.prior_args)
        return self._ik, self._prior

    @staticmethod
    def _body(action_texts, action=None, weight=None) -> list:
        """The candidates' lines, each with its csoaa_ldf label ``k:cost`` (the IK's and the
        prior's are the same: built once per event). Predictions carry labels too (every cost
        0): VW 9.11.9's csoaa_ldf predicts uniform probabilities for unlabelled examples, and
        then crashes finishing them."""
        wrong = "0" if action is None else f"{weight:.9g}"
        if type(action_texts) is VWTexts and "" not in action_texts:  # checked lines, none empty
            return [f"{i + 1}:{'0' if i == action else wrong} {text}" for i, text in enumerate(action_texts)]
        return adf_lines("", action_texts,
                         labels=[f"{i + 1}:{'0' if i == action else wrong}" for i in range(len(action_texts))])

    @staticmethod
    def _with_shared(shared: str, body: list) -> list:
        if not shared:
            return body
        if type(shared) is not VWText and ("\n" in shared or "\r" in shared):
            raise ValueError(f"the shared features must be one line, got {shared[:80]!r}")
        return ["shared " + shared, *body]

    def prepare(self, context_text: str, action_texts) -> None:
        """Resolve the interactions from an event's namespaces (the first call only): the
        learner calls it with the whole context, before the IK may see a part of it."""
        self._workspaces(context_text, action_texts)

    def learn(self, context_text, code, action, weight, action_texts=()):
        """Predict then learn one event; ``(P̂(·|x,s), P̂(·|x))`` over the candidates, before the update."""
        ik, prior = self._workspaces(context_text, action_texts)
        body = self._body(action_texts, action, weight)
        return (ik.learn(self._with_shared(f"{context_text} |{CODE_NAMESPACE} {code} ", body)),
                prior.learn(self._with_shared(context_text, body)))

    def predict(self, context_text, code, action_texts=()):
        ik, prior = self._workspaces(context_text, action_texts)
        body = self._body(action_texts)
        return (ik.predict(self._with_shared(f"{context_text} |{CODE_NAMESPACE} {code} ", body)),
                prior.predict(self._with_shared(context_text, body)))

    def save(self, ik_path, prior_path) -> None:
        if self._ik is not None:
            self._ik.save(ik_path)
            self._prior.save(prior_path)

    @classmethod
    def load(cls, num_actions, extra_args, seed, ik_path, prior_path, quadratic: bool = False) -> "ActionFeatureIK":
        from pathlib import Path

        if not Path(ik_path).exists():  # saved before its first event
            return cls(num_actions, extra_args, seed, quadratic=quadratic)
        return cls(num_actions, extra_args, seed, _models=(ik_path, prior_path), quadratic=quadratic)


class IKProcess:
    """An IK (and its prior) learning in a forked process, fed in batches (offline replay).

    The IK's input (context, group code, action, weight) does not depend on its output, so
    the replay's main process can prepare later events while this one learns earlier ones;
    the results come back in order, and the models are those the IK would have made in the
    main process. The process starts as a copy of ``ik`` (whose own workspaces are then
    finished here: only the copy learns) and keeps every file descriptor closed but its two
    pipes, so that no other pipe (the CB driver's, the reader's) is held open by it.

    ``send(requests)``: a batch of ``(prepare, ik_text, code, action, weight, action_texts)``
    (``prepare``: a context to resolve the interactions from first, or ``None``);
    ``receive()``: their ``(P̂(·|x,s), P̂(·|x))``, or :class:`IKProcessError` naming the
    request VW refused (the results before it are on the error). ``learn`` and ``save`` stand
    in for the IK's own methods (one round trip each).
    """

    def __init__(self, ik):
        import multiprocessing.connection as mpc  # imported here, before the fork: the child imports nothing

        from .cb import _widen_pipe
        from .stream import _die_with_parent

        to_child, from_parent = os.pipe()[::-1]  # (write end, read end)
        from_child, to_parent = os.pipe()
        for fd in (to_child, to_parent):
            _widen_pipe(fd)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                keep = {0, 1, 2, from_parent, to_parent}
                for fd in _open_fds():
                    if fd not in keep:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                _die_with_parent()
                if os.getppid() == parent:
                    _serve(ik, mpc.Connection(from_parent, writable=False), mpc.Connection(to_parent, readable=False))
                    code = 0
            finally:
                os._exit(code)
        os.close(from_parent)
        os.close(to_parent)
        self.pid = pid
        self._send = mpc.Connection(to_child, readable=False)
        self._recv = mpc.Connection(from_child, writable=False)
        _finish_workspaces(ik)  # the copy in the worker learns from here on
        self.peak_rss_mb = 0.0
        self.closed = False
        self.outstanding = 0  # batches sent whose results are not received yet

    def send(self, requests) -> None:
        self._call(("learn", requests), wait=False)
        self.outstanding += 1

    def receive(self):
        self.outstanding = max(self.outstanding - 1, 0)
        try:
            reply = pickle.loads(self._recv.recv_bytes())
        except (EOFError, OSError):
            self.kill()
            raise RuntimeError("the IK process ended unexpectedly") from None
        if reply[0] == "error":
            raise IKProcessError(reply[1], reply[2], reply[3])
        return reply[1]

    def _call(self, message, wait: bool = True):
        while wait and self.outstanding:  # replies to batches sent and abandoned (an interrupted caller)
            try:
                self.receive()
            except IKProcessError:
                pass
        try:
            self._send.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self.kill()
            raise RuntimeError("the IK process ended unexpectedly") from None
        return self.receive() if wait else None

    def learn(self, context_text, code, action, weight, action_texts=()):
        return self._call(("learn", [(None, context_text, code, action, weight, action_texts)]))[0]

    def save(self, ik_path, prior_path) -> None:
        self._call(("save", (os.fspath(ik_path), os.fspath(prior_path))))

    def close(self) -> None:
        """End the process (after the last save)."""
        if self.closed:
            return
        from .cb import peak_rss_mb

        self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb(self.pid))
        self.closed = True
        try:
            self._send.send_bytes(pickle.dumps(None))
        except OSError:
            pass
        self._send.close()
        self._recv.close()
        os.waitpid(self.pid, 0)

    def __del__(self):
        try:
            self.kill()  # not closed by its user (an exception on the way): no process left behind
        except Exception:
            pass

    def kill(self) -> None:
        if getattr(self, "closed", True):
            return
        self.closed = True
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self._send.close()
        self._recv.close()


class IKProcessError(ValueError):
    """VW refused a request's text in the IK process: ``index`` in its batch, ``done`` the results before it."""

    def __init__(self, message, index, done):
        super().__init__(message)
        self.index, self.done = index, done


def _serve(ik, recv, send) -> None:
    """The IK process's loop: one reply per message, until ``None`` or the end of the pipe."""
    while True:
        try:
            message = pickle.loads(recv.recv_bytes())
        except (EOFError, OSError):
            return
        if message is None:
            return
        op, arg = message
        done = []
        try:
            if op == "learn":
                for prepare, text, code, action, weight, texts in arg:
                    if prepare is not None:
                        ik.prepare(prepare, texts)
                    done.append(ik.learn(text, code, action, weight, texts))
                reply = ("ok", done)
            else:  # save
                reply = ("ok", ik.save(*arg))
        except Exception as err:  # noqa: BLE001 - reported in the parent
            reply = ("error", str(err), len(done), done)
        send.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


def _open_fds() -> list:
    try:
        return [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _finish_workspaces(ik) -> None:
    for name in ("_ik", "_prior"):
        ws = getattr(ik, name, None)
        if ws is not None:
            ws.finish()


def use_ik_process(ik_process) -> bool:
    """Whether to run the IK in a process of its own: as asked (``True``/``False``), or, for
    ``None``, where more than one CPU is usable; never where the platform cannot fork."""
    from ._util import can_fork

    if ik_process is None:
        try:
            ik_process = len(os.sched_getaffinity(0)) > 1
        except AttributeError:  # no affinity on this platform
            ik_process = (os.cpu_count() or 1) > 1
    return bool(ik_process) and can_fork()
