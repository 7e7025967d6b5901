"""iglp-vw: personalized Interaction-Grounded Learning (IGL-P) on Vowpal Wabbit."""

from .learner import IGLP
from .reward import inferred_reward

__all__ = ["IGLP", "inferred_reward"]
__version__ = "0.1.0"
