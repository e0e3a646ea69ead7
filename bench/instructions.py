"""Instructions per turn: the load benchmark's scenario against Switchboard under callgrind.

    .venv/bin/python bench/instructions.py                       # this checkout, 16 guests x 2
    .venv/bin/python bench/instructions.py --baseline ../old     # and another checkout, same run
    .venv/bin/python bench/instructions.py --env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
    .venv/bin/python bench/instructions.py --no-background ...  # A/B of the turn's own code

On a shared machine turns/s and CPU time move by 20% from one run to the next; the number of
instructions a turn executes does not (about 0.5%). This counts them for the whole server
process (its store and export threads included) with valgrind's callgrind, switched on only
for the measured rounds: one round of the guests first, uninstrumented, warms the bot up.
The guests, their scenario, the connector and the config (opening hours made 24/7) are
bench/load.py's. A baseline is another checkout (a `git worktree` of an older commit) run on
its own example config: the scenario follows whatever that config asks.

Under callgrind the bot runs some fifty times slower, so its work done once a second (the
timer poll, the delivery sweep, the console's fold, a metric export) lands on far fewer turns
than at full speed, and varies with how long the run took: `--no-background` turns those
loops off (the scenario needs none of them), for comparing what a turn itself costs.

What it does not see: time spent in the kernel (system calls, the hand-offs between threads),
waiting, and cache misses. Use it to compare code, and bench/load.py for turns per second.
Needs valgrind (`apt-get install valgrind`); about a minute per checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
from load import Rig, Runner, Window, always_open, specs  # noqa: E402


async def measure(root: Path, guests: int, rounds: int, env: dict[str, str]) -> tuple[int, int]:
    """(instructions, turns) of `rounds` rounds of `guests` guests against `root`'s app.py."""
    with tempfile.TemporaryDirectory(prefix="switchboard-instructions-") as tmp:
        work = Path(tmp)
        rig = Rig(argparse.Namespace(no_pin=True, nice=0), work)
        await rig.open()
        try:
            await rig.reset_connector(True)
            config, _ = always_open(root / "examples" / "helpdesk.yaml", work)
            port = load.free_port()
            spec = specs(work, config, False)["switchboard"](port)
            out = work / "callgrind.out"
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={out}", load.PYTHON, str(root / "app.py")]
            proc = rig.children.start("switchboard", argv, env={**spec.env, **env}, cwd=root,
                                      log_dir=work)
            try:
                load.wait_port(port, proc, 900)
                runner = Runner(rig, f"http://127.0.0.1:{port}", "switchboard",
                                load.ConfigView.load(config), 0, "HR")
                warm = Window("warm-up", guests)
                await asyncio.gather(*(runner.scenario_once(warm, lambda: True)
                                       for _ in range(guests)))
                _control("-i", "on", proc.pid)
                win = Window("measured", guests)
                for _ in range(rounds):
                    await asyncio.gather(*(runner.scenario_once(win, lambda: True)
                                           for _ in range(guests)))
                _control("-i", "off", proc.pid)
                _control("-d", None, proc.pid)
            finally:
                rig.children.stop(proc, timeout=60)
            if win.errors:
                raise RuntimeError(f"{root}: {win.errors} turns failed: {win.error_samples[:3]}")
            return _total(out), win.turns
        finally:
            await rig.close()


# the loops that run on a clock, not on turns (settings.py; OpenTelemetry's metric export)
BACKGROUND_OFF = {
    "SWITCHBOARD_TIMER_INTERVAL": "0", "SWITCHBOARD_SWEEP_INTERVAL": "0",
    "SWITCHBOARD_PURGE_INTERVAL": "0", "SWITCHBOARD_CONSOLE_FOLD_INTERVAL": "0",
    "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
}


def _control(option: str, value: str | None, pid: int) -> None:
    subprocess.run(["callgrind_control", option, *([value] if value else []), str(pid)],
                   check=True, capture_output=True)


def _total(out: Path) -> int:
    """The instructions callgrind counted, over every dump of every thread."""
    total = 0
    for path in out.parent.glob(out.name + "*"):
        with open(path, errors="replace") as f:
            for line in f:
                found = re.match(r"(summary|totals): (\d+)", line)
                if found:
                    total = max(total, int(found.group(2)))
    return total


async def main_async(args: argparse.Namespace) -> int:
    env = dict(item.split("=", 1) for item in args.env)
    if args.no_background:
        env = {**BACKGROUND_OFF, **env}
    roots = [("this checkout", ROOT)]
    if args.baseline:
        roots.append(("baseline", args.baseline))
    figures = {}
    for name, root in roots:
        instructions, turns = await measure(root, args.guests, args.rounds, env)
        figures[name] = instructions / turns
        print(f"{name:14} {root}: {turns} turns, {instructions / 1e6:,.1f} M instructions, "
              f"{instructions / turns / 1e6:.2f} M per turn", flush=True)
    if args.baseline:
        print(f"this checkout / baseline: {figures['this checkout'] / figures['baseline']:.3f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guests", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", default=None, help="another checkout to measure as well")
    parser.add_argument("--no-background", action="store_true",
                        help="turn off the loops that run on a clock (timers, sweep, purge, "
                             "console fold, metric export)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable for the bot (repeat)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("instructions.py needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    if args.baseline:
        args.baseline = Path(args.baseline).resolve()
        if not (args.baseline / "app.py").is_file():
            print(f"--baseline {args.baseline}: no app.py there: give a checkout of "
                  f"Switchboard (git worktree add ../old <commit>)", file=sys.stderr)
            return 2
    if any("=" not in item for item in args.env):
        print("--env takes NAME=VALUE", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
