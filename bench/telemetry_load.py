"""What telemetry costs a turn: the load benchmark, three Switchboards in one run.

    .venv/bin/python bench/telemetry_load.py --quick    # a smoke run (about 2 minutes)
    .venv/bin/python bench/telemetry_load.py            # 10 s windows (about 6 minutes)

The servers, one at a time, each on its own copy of the same pre-filled store:

- `before`: the code before telemetry (`--before`, by default the parent of the commit that
  added telemetry/), taken with `git archive` into the temp dir and run with this venv;
- `off`: this code, no telemetry variable set (nothing is exported, no SDK is loaded);
- `otlp`: this code, `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a local OTLP/HTTP receiver
  (tests/otlp_receiver.py, its own process on the load generator's core, decoding every
  request), as configured by default: about 5 turns a second traced (every turn while there
  are fewer), metrics every 60 s, warnings and errors exported as log records;
- `otlp-all`: the same with every turn traced (`OTEL_TRACES_SAMPLER=parentbased_always_on`)
  and every log line exported (`OTEL_PYTHON_LOG_HANDLER_LEVEL=info`).

Everything else is bench/load.py's, reused as it is: the rig (the lean connector, the pinned
cores), the guests and their scenario, the windows (N = 1, 16, 64), the CPU and latency
measures, the per-kind phases. Printed: each server's windows, then the loss in turns/s and
the extra CPU per turn, `off` against `before` and `otlp` against `off` (target: `otlp`
loses at most 10% of `off`'s turns/s).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
from load import FULL, QUICK, Budget, ServerResult, ServerSpec, fmt, pct, table  # noqa: E402
from policy import ConfigView  # noqa: E402
from proc import free_port, wait_port  # noqa: E402

VARIANTS = ("before", "off", "otlp", "otlp-all")
TARGET_LOSS = 0.10  # otlp may lose at most this share of off's turns/s


def before_revision() -> str:
    """The parent of the commit that added telemetry/ (the code before it)."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "telemetry/__init__.py"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("no commit adds telemetry/__init__.py: pass --before REV")
    return added[-1] + "^"


def checkout(revision: str, into: Path) -> str:
    """The tree at `revision` in `into`; its commit id."""
    commit = subprocess.run(["git", "rev-parse", revision], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT,
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    # that tree's own modules, not this one's, must be the ones its app.py imports
    where = subprocess.run(
        [load.PYTHON, "-c", "import app, bots, storage; print(app.__file__, bots.__path__[0])"],
        cwd=into, capture_output=True, text=True, check=True).stdout
    if str(ROOT / "bots") in where or str(into) not in where:
        raise SystemExit(f"the code before telemetry imports from the wrong tree: {where}")
    return commit


def variant_spec(name: str, port: int, config: Path, store: Path, before: Path,
                 receiver_url: str) -> ServerSpec:
    spec = load.switchboard_spec(port, config, False, load.embedded(store))
    env = {k: v for k, v in spec.env.items()
           if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
    argv = [load.PYTHON, str(ROOT / "app.py")]
    if name == "before":
        argv = [load.PYTHON, str(before / "app.py")]
    elif name.startswith("otlp"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver_url
        if name == "otlp-all":
            env["OTEL_TRACES_SAMPLER"] = "parentbased_always_on"
            env["OTEL_PYTHON_LOG_HANDLER_LEVEL"] = "info"
    return replace(spec, name=name, argv=argv, env=env)


async def receiver_stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/stats") as response:
        return await response.json()


def loss(base: float, new: float) -> float:
    return (base - new) / base if base else float("nan")


def report(results: dict[str, list[ServerResult]], budget: Budget, received: dict[str, Any],
           commit: str) -> tuple[str, dict[str, Any]]:
    out: list[str] = []
    data: dict[str, Any] = {"before": commit, "variants": {}, "loss": {}}
    p = out.append
    p("")
    p("=" * 100)
    p(f"TELEMETRY COST (before = {commit[:10]}; windows of {budget.window:g} s; mean of "
      f"{len(next(iter(results.values())))} round(s))")
    rows = []
    mean: dict[str, dict[int, dict[str, float]]] = {}
    for name, rounds in results.items():
        mean[name] = {}
        for n in budget.concurrency:
            windows = [r.windows[n] for r in rounds]
            tps = sum(w.tps for w in windows) / len(windows)
            cpu = sum(w.cpu_ms_per_turn for w in windows) / len(windows)
            lat = [x for w in windows for x in w.all_latencies()]
            mean[name][n] = {"tps": tps, "cpu_ms": cpu, "p50": pct(lat, 50), "p99": pct(lat, 99),
                             "noise": max(w.noise for w in windows),
                             "errors": sum(w.errors for w in windows)}
            rows.append([name, n, fmt(tps), fmt(pct(lat, 50), 2), fmt(pct(lat, 99), 2),
                         fmt(cpu, 3), f"{100 * mean[name][n]['noise']:.0f}%",
                         mean[name][n]["errors"]])
        data["variants"][name] = mean[name]
    p(table(rows, ["server", "N", "turns/s", "p50 ms", "p99 ms", "CPU ms/turn", "other CPU",
                   "errors"]))
    p("")
    rows = []
    for base, new in (("before", "off"), ("off", "otlp"), ("off", "otlp-all")):
        if base not in mean or new not in mean:
            continue
        for n in budget.concurrency:
            b, x = mean[base][n], mean[new][n]
            turns_loss = loss(b["tps"], x["tps"])
            extra_cpu = x["cpu_ms"] - b["cpu_ms"]
            data["loss"][f"{new}_vs_{base}_N{n}"] = {"turns_per_s": turns_loss,
                                                      "extra_cpu_ms": extra_cpu}
            rows.append([f"{new} vs {base}", n, f"{100 * turns_loss:+.1f}%",
                         f"{extra_cpu:+.3f}", f"{100 * loss(b['cpu_ms'], x['cpu_ms']):+.1f}%"])
    p(table(rows, ["comparison", "N", "turns/s lost", "extra CPU ms/turn", "CPU change"]))
    if "otlp" in mean and "off" in mean:
        worst = max(loss(mean["off"][n]["tps"], mean["otlp"][n]["tps"])
                    for n in budget.concurrency if n > 1)
        verdict = "met" if worst <= TARGET_LOSS else "MISSED"
        p("")
        p(f"target: exporting to OTLP loses at most {100 * TARGET_LOSS:.0f}% of turns/s at "
          f"N >= 16: worst {100 * worst:.1f}% ({verdict})")
        data["target"] = {"worst_loss": worst, "verdict": verdict}
    p(f"the OTLP receiver got {received.get('items', {})} (spans, metrics, log records) in "
      f"{received.get('requests', {})} requests")
    data["received"] = received
    return "\n".join(out), data


async def main_async(args: argparse.Namespace) -> int:
    budget = QUICK if args.quick else FULL
    budget = replace(budget, retries=0, concurrency=tuple(args.concurrency))
    if args.window:
        budget = replace(budget, window=args.window)

    def say(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="switchboard-telemetry-") as tmp:
        workdir = Path(tmp)
        commit = checkout(args.before or before_revision(), workdir / "before")
        say(f"before: {commit} (git archive into the temp dir)")
        config_path, _ = load.always_open(Path(args.config), workdir)
        config = ConfigView.load(config_path)
        rig = load.Rig(args, workdir)
        results: dict[str, list[ServerResult]] = {v: [] for v in args.variants}
        received: dict[str, Any] = {}
        try:
            await rig.open()
            for line in load.environment(rig, args):
                say(line)
            await load.quiet_machine(args.wait_quiet, say)
            receiver_port = free_port()
            receiver = rig.children.start(
                "otlp-receiver",
                [load.PYTHON, str(ROOT / "tests" / "otlp_receiver.py"), "--port",
                 str(receiver_port)],
                cwd=ROOT, log_dir=workdir, cores=rig.client_cores)
            wait_port(receiver_port, receiver, 20)
            receiver_url = f"http://127.0.0.1:{receiver_port}"
            prefilled = workdir / "prefilled.sqlite3"
            if args.prefill:
                await load.prefill(rig, workdir, config_path, config, prefilled, args.prefill,
                                   say)
            for round_ in range(args.rounds):
                # every other round in the reverse order: no variant always goes first
                order = list(args.variants) if round_ % 2 == 0 else list(reversed(args.variants))
                for name in order:
                    store = workdir / f"{name}-{round_}.sqlite3"
                    if args.prefill:
                        shutil.copy(prefilled, store)

                    def make(port: int, name: str = name, store: Path = store) -> ServerSpec:
                        return variant_spec(name, port, config_path, store, workdir / "before",
                                            receiver_url)

                    result = await load.bench_server(rig, make, budget, config, 7,
                                                     args.department, say)
                    results[name].append(result)
                    store.unlink(missing_ok=True)
            if any(v.startswith("otlp") for v in args.variants):
                received = await receiver_stats(receiver_url)
            text, data = report(results, budget, received, commit)
            print(text, flush=True)
            if args.json:
                await asyncio.to_thread(Path(args.json).write_text,
                                        json.dumps(data, indent=2, default=str))
            return 0
        finally:
            await rig.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short windows: a smoke run")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--rounds", type=int, default=2,
                        help="measure every variant this often (alternating the order)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--before", default="", help="the revision to compare with (default: "
                        "the parent of the commit that added telemetry/)")
    parser.add_argument("--window", type=float, default=0.0, help="seconds per window")
    parser.add_argument("--prefill", type=int, default=None,
                        help="documents in each store before it starts (default 100,000; "
                             "10,000 with --quick)")
    parser.add_argument("--config", default=str(ROOT / "examples" / "helpdesk.yaml"))
    parser.add_argument("--department", default="HR")
    parser.add_argument("--wait-quiet", type=float, default=0.0)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    args.config = str(Path(args.config).resolve())
    if args.prefill is None:
        args.prefill = 10_000 if args.quick else 100_000
    # what bench/load.py's helpers read from its own arguments
    args.servers, args.keep_rate_limits, args.hours = ["switchboard"], False, "always-open"
    args.prefilled, args.no_memory, args.retries, args.plain_turns = args.prefill, True, 0, 0
    started = time.perf_counter()
    try:
        code = asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130
    print(f"({time.perf_counter() - started:.0f} s)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
