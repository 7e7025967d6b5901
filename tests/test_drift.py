"""Conventions that change (issue 25): what a continued model's summary says about it."""
import random
import re

from click.testing import CliRunner

from iglp_vw.cli import main


def _day(path, n, informative, seed):
    """3 items, 20 users; a click says item 0 was shown (informative) or comes at random."""
    rng = random.Random(seed)
    events = []
    for _ in range(n):
        a = rng.randrange(3)
        click = (a == 0 and rng.random() < 0.9) if informative else rng.random() < 0.3
        ctx = f"shared |User id=u{rng.randrange(20)}" + (" |Feedback click" if click else "")
        events.append(ctx + "\n" + "\n".join((f"{j}:0:0.333 " if j == a else "") + f"|A item{j}"
                                             for j in range(3)) + "\n")
    path.write_text("\n".join(events))
    return path


def test_continue_names_a_signal_whose_inferred_reward_moved_and_a_stable_day_gets_no_note(tmp_path):
    runner = CliRunner()
    replay = lambda *args: runner.invoke(main, ["replay", *map(str, args)])  # noqa: E731
    assert replay(_day(tmp_path / "d1.txt", 4000, True, 1), "--model-dir", tmp_path / "m").exit_code == 0
    stable = replay(_day(tmp_path / "d2.txt", 4000, True, 2), "--model-dir", tmp_path / "m", "--continue")
    assert stable.exit_code == 0 and "moved since the model's previous replay" not in stable.output
    changed = replay(_day(tmp_path / "d3.txt", 4000, False, 3), "--model-dir", tmp_path / "m", "--continue")
    assert changed.exit_code == 0, changed.output
    note = next(line for line in changed.output.splitlines() if "moved since the model's previous replay" in line)
    before, now = map(int, re.search(r"click: \+1 on (\d+)% of its events before, (\d+)% now", note).groups())
    assert before >= 90 and now < before - 15 and "compare it with a fresh model" in note
    fresh = replay(tmp_path / "d3.txt", "--model-dir", tmp_path / "fresh")
    assert "|Feedback click: +1 0.0%" in fresh.output  # what the continued model has not caught up with
