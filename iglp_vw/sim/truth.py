"""How well a replay decoded a simulated log, against the simulator's hidden truth."""

from __future__ import annotations

import pandas as pd

__all__ = ["inference_scores"]


def inference_scores(trace, truth) -> dict:
    """Precision and recall of the inferred reward (ρ̂ > 0) for the true reward of the logged
    action, over the whole log and its second half.

    ``trace``: a replay's ``--trace`` (path or DataFrame); ``truth``: the ``--truth`` file of
    ``iglp-vw simulate`` (path or DataFrame); joined on ``line``.
    """
    trace = trace if isinstance(trace, pd.DataFrame) else pd.read_csv(trace)
    truth = truth if isinstance(truth, pd.DataFrame) else pd.read_csv(truth)
    both = trace.merge(truth, on="line")
    out = {"events": len(both)}
    for name, part in (("", both), ("_second_half", both.iloc[len(both) // 2:])):
        inferred, true = part.inferred_reward > 0, part.reward == 1
        hits = (inferred & true).sum()
        out[f"precision{name}"] = float(hits / max(inferred.sum(), 1))
        out[f"recall{name}"] = float(hits / max(true.sum(), 1))
    return out
