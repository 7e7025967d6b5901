"""Where a replay's time goes: reader, formatting, decoder, IK, prior, CB (issue 12's breakdown).

Generates a grounded log (synthetic50k, uniform logging, --users users) and replays it twice.

1. As ``iglp-vw replay`` does by default, the IK in a process of its own: the CPU time each
   process spends per event (this one: formatting, decoder, group test, ρ̂, the pipes; the IK
   process: the two VW csoaa_ldf models; the reader; VW's driver for the CB, estimated by
   the driver alone on the same log) against the wall time. On two cores the wall time
   cannot go below half their sum.
2. With the IK in this process (``ik_process=False``), with timers around each part of
   Algorithm 1 (the learner's own methods, wrapped; the models are the same as an untimed
   replay's):

  reader      waiting for the next event (the forked reader parses the log in parallel;
              with --serial-read its parsing is timed here instead)
  decoder     CommunicationDecoder.code and .update
  IK, prior   the two VW workspaces' learn calls (csoaa_ldf, in this process)
  CB          handing the event to VW's driver (a pipe write; the driver learns on the other core)
  formatting  the rest of IGLP.learn: VW text of context, actions and labels, the group test, ρ̂

and prints each part's µs per event and share, next to VW's own driver on the same log.

    python scripts/profile_replay.py --events 100000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serial-read", action="store_true", help="Parse the log in this process too.")
    args = parser.parse_args()

    from iglp_vw import decoder as decoder_mod
    from iglp_vw import ik as ik_mod
    from iglp_vw.cb import DriverCB
    from iglp_vw.learner import IGLP
    from iglp_vw.replay import replay
    from iglp_vw.stream import LogStream

    spent = defaultdict(float)

    def timed(owner, name, part):
        original = getattr(owner, name)

        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                spent[part] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    def cpu_of(pid) -> float:
        """User + system CPU seconds of a live process (Linux /proc)."""
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.txt"
        subprocess.run([sys.executable, "-m", "iglp_vw.cli", "simulate", "grounded", "--dataset", "synthetic50k",
                        "--passes", str(-(-args.events // 50_000)), "--events", str(args.events), "--users",
                        str(args.users), "--seed", str(args.seed), "--out", str(log)], check=True, capture_output=True)

        # 1. The default replay: CPU per process.
        ik_cpu = {}
        original_close = ik_mod.IKProcess.close

        def close(self):
            ik_cpu["IK process"] = cpu_of(self.pid)
            return original_close(self)

        ik_mod.IKProcess.close = close
        start, before = time.perf_counter(), os.times()
        summary = replay([log], Path(tmp) / "default", learner_params={"seed": args.seed})
        wall_default, after = time.perf_counter() - start, os.times()
        ik_mod.IKProcess.close = original_close
        cb_args = IGLP.load(Path(tmp) / "default").cb_full_args
        t0, vw_before = time.perf_counter(), os.times()
        subprocess.run([sys.executable, "-m", "vowpalwabbit", *cb_args.split(), "-d", str(log), "--quiet"], check=True)
        vw, vw_after = time.perf_counter() - t0, os.times()
        n = summary.events
        children = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        driver = (vw_after.children_user - vw_before.children_user) + (vw_after.children_system - vw_before.children_system)
        cpu = {
            "this process (reader's events in, Algorithm 1 but the IK, pipes)":
                (after.user - before.user) + (after.system - before.system),
            "IK process (IK and prior, VW csoaa_ldf)": ik_cpu.get("IK process", 0.0),
            "VW's driver, the CB (its run alone on the log)": driver,
        }
        cpu["reader process (the rest of the children)"] = max(children - cpu["IK process (IK and prior, VW csoaa_ldf)"] - driver, 0.0)
        total = sum(cpu.values())
        print(f"{n:,} events, {args.users:,} users, the IK in its own process (the default): replay {wall_default:.1f} s "
              f"({n / wall_default:,.0f} ev/s); VW's driver, CB alone: {vw:.1f} s ({n / vw:,.0f} ev/s); "
              f"ratio {vw / wall_default:.3f}")
        print(f"{'CPU per process':<68}{'µs/event':>10}")
        for name, seconds in cpu.items():
            print(f"{name:<68}{1e6 * seconds / n:>10.1f}")
        print(f"{'all processes':<68}{1e6 * total / n:>10.1f}")
        print(f"{'wall time (two cores: at least half the line above)':<68}{1e6 * wall_default / n:>10.1f}")
        print()

        # 2. IK vs prior, in this process: the two workspaces of the action-feature IK, told apart by the call order.
        original_learn = ik_mod.ActionFeatureIK.learn
        recorded = []  # the first RECORD events' IK and prior examples, for part 3

        def ik_learn(self, context_text, code, action, weight, action_texts=()):
            ik, prior = self._workspaces(context_text, action_texts)
            t0 = time.perf_counter()
            body = self._body(action_texts, action, weight)
            lines = self._with_shared(f"{context_text} |{ik_mod.CODE_NAMESPACE} {code} ", body)
            if len(recorded) < RECORD:
                recorded.append((self.args, self.prior_args, "\n".join(lines), "\n".join(self._with_shared(context_text, body))))
            t1 = time.perf_counter()
            posterior = ik.learn(lines)
            t2 = time.perf_counter()
            lines = self._with_shared(context_text, body)
            t3 = time.perf_counter()
            p = prior.learn(lines)
            t4 = time.perf_counter()
            spent["IK"] += t2 - t1
            spent["prior"] += t4 - t3
            spent["IK formatting"] += (t1 - t0) + (t3 - t2)
            return posterior, p

        ik_mod.ActionFeatureIK.learn = ik_learn
        timed(decoder_mod.CommunicationDecoder, "code", "decoder")
        timed(decoder_mod.CommunicationDecoder, "update", "decoder")
        timed(DriverCB, "learn", "CB (pipe)")
        timed(IGLP, "learn", "learn total")
        original_iter = LogStream.__iter__

        def iterate(self):
            it = original_iter(self)
            while True:
                start = time.perf_counter()
                try:
                    event = next(it)
                except StopIteration:
                    return
                finally:
                    spent["reader"] += time.perf_counter() - start
                yield event

        LogStream.__iter__ = iterate
        start = time.perf_counter()
        summary = replay([log], Path(tmp) / "model", parallel_read=not args.serial_read,
                         learner_params={"seed": args.seed}, ik_process=False)
        wall = time.perf_counter() - start
        ik_mod.ActionFeatureIK.learn = original_learn

    n = summary.events
    learn = spent.pop("learn total")
    parts = {
        "reader": spent["reader"],
        "formatting (IK lines)": spent["IK formatting"],
        "IK (VW csoaa_ldf)": spent["IK"],
        "prior (VW csoaa_ldf)": spent["prior"],
        "decoder": spent["decoder"],
        "CB (pipe to VW's driver)": spent["CB (pipe)"],
    }
    parts["formatting, group test, rest of learn"] = learn - sum(v for k, v in parts.items() if k != "reader")
    parts["replay loop (summary, checks)"] = wall - learn - spent["reader"]
    print(f"the IK in this process: replay {wall:.1f} s ({n / wall:,.0f} ev/s); "
          f"VW's driver, CB alone: {vw:.1f} s ({n / vw:,.0f} ev/s); ratio {vw / wall:.3f}")
    print(f"{'part':<40}{'µs/event':>10}{'share':>8}")
    for name, seconds in parts.items():
        print(f"{name:<40}{1e6 * seconds / n:>10.1f}{seconds / wall:>8.1%}")
    print()
    vw_own_time(recorded)


RECORD = 20_000


def vw_own_time(recorded) -> None:
    """3. VW's own time on the IK's and the prior's examples of the replay, through pyvw's
    low-level calls and nothing else (fresh workspaces, the same arguments, in order)."""
    from vowpalwabbit import pyvw
    from vowpalwabbit.pyvw import pylibvw

    print(f"VW's own time per event on the replay's first {len(recorded):,} IK examples (pyvw, nothing else):")
    print(f"{'model':<10}{'parse':>8}{'learn':>8}{'read':>8}{'finish':>8}  µs")
    for name, column in (("IK", 2), ("prior", 3)):
        ws = pyvw.Workspace(arg_list=recorded[0][column - 2].split())
        spent = [0.0] * 4
        for record in recorded:
            t0 = time.perf_counter()
            examples = ws._parse(record[column])
            t1 = time.perf_counter()
            pylibvw.vw.learn_multi(ws, examples)
            t2 = time.perf_counter()
            pylibvw.example.get_action_scores(examples[0])
            t3 = time.perf_counter()
            ws._finish_example_multi_ex(examples)
            t4 = time.perf_counter()
            for i, (a, b) in enumerate(((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                spent[i] += b - a
        ws.finish()
        print(f"{name:<10}" + "".join(f"{1e6 * x / len(recorded):>8.1f}" for x in spent))


if __name__ == "__main__":
    main()
