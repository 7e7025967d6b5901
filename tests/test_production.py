"""The production-like world (iglp_vw.sim.production) and the signals feedback model on it."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from iglp_vw import IGLP
from iglp_vw.cli import main
from iglp_vw.logs import LogError, read_events
from iglp_vw.replay import replay
from iglp_vw.sim.production import (NEGATIVE_SIGNALS, STYLES, ProductionWorld, formula_reward,
                                    write_production_log)
from iglp_vw.signals import SegmentPicker, SignalCells

DATA = Path(__file__).resolve().parent.parent / "data"

DN = set(NEGATIVE_SIGNALS)


def test_the_world_is_seeded_and_both_formats_hold_the_same_events(tmp_path):
    world = ProductionWorld(n_users=500, seed=3)
    for name in ("a", "b"):
        write_production_log(world, tmp_path / f"{name}.txt", 300, seed=1, truth=tmp_path / f"{name}.csv")
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    write_production_log(world, tmp_path / "c.json", 300, fmt="dsjson", seed=1, truth=tmp_path / "c.csv")
    text = [e for e in read_events(tmp_path / "a.txt")]
    dsjson = [e for e in read_events(tmp_path / "c.json")]
    assert not any(isinstance(e, LogError) for e in text + dsjson)
    assert len(text) == len(dsjson) == 300
    assert [e.action for e in text] == [e.action for e in dsjson]
    assert np.allclose([e.prob for e in text], [e.prob for e in dsjson], rtol=1e-8)
    assert {len(e.actions) for e in text} <= set(range(5, 13)) and len({len(e.actions) for e in text}) > 3
    truth = pd.read_csv(tmp_path / "a.csv")
    assert len(truth) == 300 and set(truth["style"]) == set(STYLES)
    assert (truth.best >= truth.reward).all()
    # DSJSON marks the definitely-negative outcomes as VW's --dsjson does.
    negative = [e for e in dsjson if any(s in str(e.feedback) for s in DN)]
    assert negative and all("_definitely_bad" in str(e.feedback) for e in negative)


def test_the_hatewatchers_are_misread_by_the_formula_and_the_logging_policy_is_not_uniform():
    world = ProductionWorld(n_users=2000, seed=0)
    rng = np.random.default_rng(0)
    formula = {s: {1: [], -1: []} for s in STYLES}
    shares, probs = [], []
    for rnd in world.rounds(4000, seed=0):
        probs.append(rnd["pmf"].max() / rnd["pmf"].min())
        shares.append(np.mean(rnd["rewards"] == 0))
        for r in (1, -1):
            hits = np.flatnonzero(rnd["rewards"] == r)
            if len(hits):
                feedback, reward = world.feedback(rnd, int(hits[0]), rng)
                assert reward == r
                formula[rnd["style"]][r].append(formula_reward(rnd["context"], feedback))
    assert 0.7 < np.mean(shares) < 0.9  # rewards are rare under uniform play
    assert np.median(probs) > 3  # popularity logging
    for style in ("engaged", "skimmer", "quiet"):
        assert np.mean(formula[style][1]) > np.mean(formula[style][-1]) + 0.5
    assert np.mean(formula["hatewatcher"][-1]) > np.mean(formula["hatewatcher"][1]) + 0.2


@pytest.fixture(scope="module")
def production_log(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("production")
    world = ProductionWorld(n_users=5000, seed=0)
    write_production_log(world, tmp / "log.txt", 20_000, seed=0, truth=tmp / "truth.csv")
    return tmp


def _signs(trace, truth, style):
    both = pd.read_csv(trace).merge(pd.read_csv(truth), on="line")
    mine = both[both["style"] == style]
    inferred = mine[mine.inferred_reward != 0]
    return inferred, mine


def test_signals_learn_the_style_a_formula_misreads(production_log, tmp_path):
    """IGL-P(3) with feedback_model='signals' on 20,000 production-like events: the inferred
    reward's sign agrees with the truth for the users whose clicks and long watches mean "I
    dislike this" (the formula rewards those), and it finds far more of their rewards than the
    decoder does."""
    log, truth = production_log / "log.txt", production_log / "truth.csv"
    found = {}
    for model in ("decoder", "signals"):
        params = dict(states=3, alpha=0.5, definitely_negative=DN, feedback_model=model)
        replay([log], tmp_path / model, learner_params=params, trace=tmp_path / f"{model}.csv")
        inferred, mine = _signs(tmp_path / f"{model}.csv", truth, "hatewatcher")
        found[model] = int((np.sign(inferred.inferred_reward) == inferred.reward).sum())
        if model == "signals":  # the full rewards (|rho| = 1: extreme cells, definitely-negative signals)
            full = inferred[inferred.inferred_reward.abs() == 1]
            assert (np.sign(full.inferred_reward) == full.reward).mean() >= 0.8
            negatives = mine[mine.reward == -1]
            assert (negatives.inferred_reward < 0).mean() >= 0.2
            engaged, all_engaged = _signs(tmp_path / f"{model}.csv", truth, "engaged")
            engaged = engaged[engaged.inferred_reward.abs() == 1]
            assert (np.sign(engaged.inferred_reward) == engaged.reward).mean() >= 0.9
            # the soft ones: a weaker reward, still in the truth's direction
            assert np.corrcoef(mine.inferred_reward, mine.reward)[0, 1] >= 0.3
            assert np.corrcoef(all_engaged.inferred_reward, all_engaged.reward)[0, 1] >= 0.4
            found[model] = int((np.sign(full.inferred_reward) == full.reward).sum())
    assert found["signals"] >= 3 * max(found["decoder"], 1)
    learner = IGLP.load(tmp_path / "signals")
    assert learner.params["feedback_model"] == "signals"
    assert learner._signals.picker.chosen == "age"  # the segment that carries the styles


def test_signals_replay_is_exact_across_the_ik_process_checkpoints_and_resume(production_log, tmp_path):
    log = production_log / "log.txt"
    params = dict(states=3, alpha=0.5, definitely_negative=DN, feedback_model="signals")
    whole = replay([log], tmp_path / "whole", learner_params=params, ik_process=False, limit=6000,
                   trace=tmp_path / "whole.csv")
    replay([log], tmp_path / "parts", learner_params=params, ik_process=True, checkpoint_every=700, limit=3500)
    parts = replay([log], tmp_path / "parts", learner_params=params, ik_process=True, checkpoint_every=700,
                   limit=6000, resume=True)
    assert whole.events == parts.events == 6000 and whole.rewards == parts.rewards
    for name in ("cb.model", "ik.model", "ik_prior.model"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "parts" / name).read_bytes(), name
    # The whole learner state is exact too, the decoder's included (saving it no longer adds up
    # its pending counts, which changed the order of its sums on non-uniform importance weights).
    assert (tmp_path / "whole" / "state.json").read_bytes() == (tmp_path / "parts" / "state.json").read_bytes()


def test_a_set_of_definitely_negative_signals_is_saved_as_a_list(production_log, tmp_path):
    log = tmp_path / "small.txt"
    write_production_log(ProductionWorld(n_users=200, seed=1), log, 300, seed=1)
    params = {"states": 3, "alpha": 0.5, "definitely_negative": {"dislike", "hide"}}
    replay([log], tmp_path / "m", learner_params=params)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["definitely_negative"] == ["dislike", "hide"]
    more = replay([log], tmp_path / "m", learner_params=params, continue_training=True, repeat=True)
    assert more.continued_from == 300


def test_simulate_production_then_replay_by_signal_through_the_cli(tmp_path):
    runner = CliRunner()
    log, truth = tmp_path / "p.json", tmp_path / "t.csv"
    out = runner.invoke(main, ["simulate", "production", "--out", str(log), "--format", "dsjson", "--events", "1500",
                               "--users", "800", "--truth", str(truth)])
    assert out.exit_code == 0, out.output
    assert "wrote 1500 events" in out.output and len(pd.read_csv(truth)) == 1500
    out = runner.invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m"), "--states", "3",
                               "--alpha", "0.5", "--feedback-model", "signals", "--definitely-negative", "dislike",
                               "--definitely-negative", "hide", "--definitely-negative", "report"])
    assert out.exit_code == 0, out.output
    # Numbers are read as the learner buckets them (no row per raw dwell time), and each signal has a row.
    assert "per signal (events carrying it):" in out.output
    rows = [line for line in out.output.splitlines() if line.startswith("  |")]
    assert rows and not any("dwell:" in r and "dwell:b" not in r for r in rows)
    signal_rows = out.output.split("per signal (events carrying it):")[1].splitlines()
    assert any(r.strip().startswith("click") for r in signal_rows)
    negative = [r for r in signal_rows if r.strip().startswith(("dislike", "hide", "report", "_definitely_bad"))]
    assert negative and all("-1/alpha 100.0%" in r for r in negative)  # a definitely-negative signal is -1


def test_the_segment_picker_finds_the_feature_that_predicts_the_feedback():
    picker = SegmentPicker()
    rng = np.random.default_rng(0)
    for i in range(4000):
        age, country = int(rng.integers(4)), int(rng.integers(6))
        key = f"k{age}" if rng.random() < 0.7 else f"k{int(rng.integers(4))}"
        picker.update(f"id=u{i} age=a{age} country=c{country}", key, 1.0)
    assert picker.chosen == "age"
    assert picker.counts["id"] is None  # an id, never a segment
    assert picker.value("id=u1 age=a2 country=c0") == "age=a2"
    again = SegmentPicker.from_state(json.loads(json.dumps(picker.get_state())))
    assert again.chosen == "age" and again.value("age=a1") == "age=a1"


def test_signal_cells_escape_what_reaches_vw_and_pool_events_alike_but_for_a_negative_signal():
    cells = SignalCells(lambda token: token.split(":")[0] == "report", alpha=0.5)
    code, cell, negative = cells.describe("id=u1", "|Feedback click:1 dwell:b6 report:1")
    code2, cell2, negative2 = cells.describe("id=u2", "|Feedback click:1 dwell:b7")
    assert negative and not negative2 and cell == cell2  # b6 and b7 share a cell, the report aside
    assert ":" not in code and "|" not in code and "\n" not in code
    evil, _, _ = cells.describe("id=u1", "|Feedback w|x\n'save_/tmp/x:b3")
    assert "|" not in evil and "\n" not in evil and ":" not in evil
    for _ in range(20):
        cells.count(cell, True, 1.0)
        cells.count(cell, False, 3.0)
    assert cells.cell_is_negative(cell)  # 25% labelled at alpha 0.5: half the cell is negative
    assert not cells.cell_is_negative("|like:1")


def test_the_command_line_picks_the_signals_model_for_several_signals_and_keeps_the_models_on_continue(tmp_path):
    """--feedback-model auto (the default): several signals per event take the signals model, one
    word per event the decoder; the summary says which and why, and --continue keeps the model's."""
    runner = CliRunner()
    log = tmp_path / "p.txt"
    write_production_log(ProductionWorld(n_users=300, seed=2), log, 1500, seed=2)
    out = runner.invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m"), "--limit", "1000"])
    assert out.exit_code == 0, out.output
    assert "feedback model: signals (auto: " in out.output and "carries several signals at once" in out.output
    assert IGLP.load(tmp_path / "m").feedback_model == "signals"
    resumed = runner.invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "m"), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    day2 = tmp_path / "p2.txt"
    write_production_log(ProductionWorld(n_users=300, seed=2), day2, 300, seed=3)
    continued = runner.invoke(main, ["replay", str(day2), "--model-dir", str(tmp_path / "m"), "--continue"])
    assert continued.exit_code == 0, continued.output
    assert IGLP.load(tmp_path / "m").feedback_model == "signals"
    grounded = runner.invoke(main, ["replay", str(DATA / "grounded_digits.txt.gz"), "--model-dir",
                                    str(tmp_path / "g"), "--limit", "500"])
    assert grounded.exit_code == 0 and "feedback model: decoder (auto: 0% of the first 1,000" in grounded.output
    decoder = runner.invoke(main, ["replay", str(log), "--model-dir", str(tmp_path / "d"), "--feedback-model",
                                   "decoder", "--limit", "200"])
    assert decoder.exit_code == 0 and "feedback model:" not in decoder.output
