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

from .vw import Workspace, build_args, split_args

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


def reload_args(args: str) -> str:
    """Arguments to pass with ``-i`` when reloading: VW does not store ``--probabilities`` or
    ``--loss_function`` for oaa, nor ``--quiet``; everything else comes from the model file."""
    tokens = split_args(args)
    keep = ["--probabilities", "--quiet"]
    out = [t for t in tokens if t in keep]
    if "--loss_function" in tokens:
        i = tokens.index("--loss_function")
        out += tokens[i : i + 2]
    return " ".join(out)


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

    def learn(self, context_text: str, code: str, action: int, weight: float, feedback_tokens: str = ""):
        """Predict then learn one event (Algorithm 1 lines 10 and 19).

        Returns ``(P̂(a|x,s), P̂(a|x))`` for the action played, both predicted
        before this event's update.
        """
        label = f"{action + 1} {weight:.9g} "
        posterior = self._ik.learn(f"{label}{context_text} |{CODE_NAMESPACE} {code} {feedback_tokens}")[action]
        prior = self._prior.learn(label + context_text)[action]
        return posterior, prior

    def predict(self, context_text: str, code: str, action: int, feedback_tokens: str = ""):
        """``(P̂(a|x,s), P̂(a|x))`` without learning."""
        posterior = self._ik.predict(f"{context_text} |{CODE_NAMESPACE} {code} {feedback_tokens}")[action]
        prior = self._prior.predict(context_text)[action]
        return posterior, prior

    def save(self, ik_path, prior_path) -> None:
        self._ik.save(ik_path)
        self._prior.save(prior_path)

    @classmethod
    def load(cls, num_actions, extra_args, seed, ik_path, prior_path) -> "InverseKinematics":
        return cls(num_actions, extra_args, seed, _models=(ik_path, prior_path))
