"""iglp-vw: personalized Interaction-Grounded Learning (IGL-P) on Vowpal Wabbit.

The learner is :class:`IGLP`; the batch tools are in their modules:
``iglp_vw.replay.replay``, ``iglp_vw.evaluate.evaluate``, ``iglp_vw.sweep.sweep``.
"""

from .learner import IGLP
from .logs import LogError, read_events
from .reward import inferred_reward

__all__ = ["IGLP", "inferred_reward", "LogError", "read_events"]
__version__ = "0.1.0"
