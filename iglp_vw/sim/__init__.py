"""Simulators that reproduce the IGL-P paper's experiments."""

from .grounded import GroundedSimulation, load_dataset, run

__all__ = ["GroundedSimulation", "load_dataset", "run"]
