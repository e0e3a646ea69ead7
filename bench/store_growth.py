"""Store growth: is the bot as fast with a million documents in its store as with a thousand?

    .venv/bin/python bench/store_growth.py            # full run (about 15 minutes on 2 cores)
    .venv/bin/python bench/store_growth.py --quick    # smoke run (1k and 10k; about 2 minutes)

1. Template chats (bench/growth_chats.py) are played over HTTP against the real bot on an
   embedded store: the documents a help desk's day leaves, in the shapes the bot writes them.
2. The store is filled with copies of them (bench/growth_fill.py) to 1,000, 10,000, 100,000
   and 1,000,000 documents. At each size the real bot (app.py, a subprocess, timers, sweep and
   purge at their default intervals) is started on it and measured over HTTP: 16 guests play
   the seed scenario (guest-turn p50/p99), and a probe in its own process asks /healthz
   every 20 ms while the bot is idle and while it is loaded (the longest stall). Then, with
   the bot stopped, what a timer poll and an offer round cost in store operations is counted
   on the same store (bench/growth_costs.py).
3. The first size is measured again at the end, on a copy taken before its first
   measurement: the baseline is the mean of its two runs, the same bot in the same run.
4. The same on Cosmos DB (the local server) at the sizes it holds in reasonable time.

Targets (issue 10): guest-turn p99 at the largest size at most 1.5x the baseline's; no stall
over 50 ms at any size (idle, with the timer poll running); timer-poll and offer-round cost
(store calls and documents read) the same at every size, every query on an index
(embedded) and no cross-partition query (Cosmos). Exit status 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from growth_chats import MIX, capture_templates  # noqa: E402
from growth_costs import Cost, measure  # noqa: E402
from growth_fill import Filler, Templates  # noqa: E402
from growth_report import report  # noqa: E402
from load import (  # noqa: E402
    PYTHON,
    Meter,
    Rig,
    Runner,
    ServerSpec,
    Window,
    always_open,
    base_environment,
    embedded,
    measured,
    pct,
    quiet_machine,
    switchboard_spec,
    wait_healthy,
)
from policy import ConfigView  # noqa: E402
from proc import free_port  # noqa: E402

from app import Settings  # noqa: E402
from storage.models import DEFAULT_RETENTION_DAYS  # noqa: E402


@dataclass(frozen=True)
class Budget:
    sizes: tuple[int, ...]
    cosmos_sizes: tuple[int, ...]
    warmup: float  # seconds of 16 guests before measuring (not measured)
    idle: float  # seconds of the idle probe window (>= 15: one delivery sweep falls in it)
    turns: int  # guest turns in the load window
    window: float  # seconds at most of the load window


FULL = Budget(sizes=(1_000, 10_000, 100_000, 1_000_000), cosmos_sizes=(1_000, 10_000),
              warmup=2.0, idle=16.0, turns=1_500, window=30.0)
QUICK = Budget(sizes=(1_000, 10_000), cosmos_sizes=(1_000,), warmup=0.5, idle=3.0,
               turns=200, window=8.0)


@dataclass
class Probe:
    """The stall probe's answers: the longest and the 99th percentile, per route."""

    healthz: list[float] = field(default_factory=list)
    loop: list[float] = field(default_factory=list)
    control: list[float] = field(default_factory=list)  # a bare server on the bot's core
    failed: int = 0

    @classmethod
    def load(cls, path: Path) -> Probe:
        raw = json.loads(path.read_text())
        out = cls()
        for name in raw:
            ok = 200 if name == "healthz" else 405
            getattr(out, name).extend(ms for _, ms, status in raw[name] if status == ok)
            out.failed += sum(1 for _, _, status in raw[name] if status != ok)
        return out


@dataclass
class SizeResult:
    backend: str
    label: str
    documents: int  # when the bot started
    documents_after: int
    fill_seconds: float
    window: Window
    idle: Probe
    busy: Probe
    costs: dict[str, Cost]


class Growth:
    def __init__(self, args: argparse.Namespace, rig: Rig, workdir: Path, config: Path,
                 budget: Budget, say) -> None:
        self.args, self.rig, self.workdir, self.config = args, rig, workdir, config
        self.view = ConfigView.load(config)
        self.budget = budget
        self.say = say
        self.results: list[SizeResult] = []
        self.control: str | None = None
        self.lasting: dict[str, int] = {}

    def start_control(self) -> None:
        """A bare aiohttp server on the bot's core: the stall probe's control."""
        port = free_port()
        self.rig.start_server(ServerSpec("control", [PYTHON, str(HERE / "servers" / "bare.py"),
                                                     "--port", str(port)],
                                         base_environment(), "plain"), port)
        self.control = f"http://127.0.0.1:{port}"

    # -- the templates -------------------------------------------------------------------

    async def templates(self) -> Templates:
        return await capture_templates(self.rig, self.workdir, self.config, self.view, self.say)

    # -- one size ------------------------------------------------------------------------

    def _spec(self, port: int, store: dict[str, str]):
        return switchboard_spec(port, self.config, False, store)

    async def size(self, backend: str, label: str, store: dict[str, str], fill_seconds: float,
                   count, costs) -> SizeResult:
        documents = await count()
        port = free_port()
        spec = self._spec(port, store)
        self.say(f"[{backend} {label}] {documents:,} documents: starting the bot")
        proc = self.rig.start_server(spec, port)
        try:
            await wait_healthy(self.rig, port, spec, proc)
            runner = Runner(self.rig, f"http://127.0.0.1:{port}", "switchboard", self.view,
                            7, "HR")
            await runner.closed_loop(Window("warm-up", 16), 16, self.budget.warmup, 10_000)
            idle = await self._probe(port, self.budget.idle)
            prober = self._start_probe(port, 3600)
            win = Window("switchboard", 16)

            async def body() -> None:
                await runner.closed_loop(win, 16, self.budget.window, self.budget.turns)

            await measured(self.rig, Meter(self.rig, proc.pid), win, body)
            busy = self._stop_probe(prober)
            if proc.poll() is not None:
                raise RuntimeError(f"the bot died at {label} documents")
        finally:
            self.rig.children.stop(proc)
        measured_costs = await costs()
        result = SizeResult(backend, label, documents, await count(), fill_seconds, win, idle,
                            busy, measured_costs)
        self.results.append(result)
        g = win.guest_latencies()
        self.say(f"[{backend} {label}] guest turn p50 {pct(g, 50):.1f} ms p99 {pct(g, 99):.1f} ms"
                 f" ({win.turns} turns, {win.tps:.0f}/s); stall idle {max(idle.healthz):.1f} ms, "
                 f"loaded {max(busy.healthz, default=0):.1f} ms; poll "
                 f"{measured_costs['timer poll'].shape()}; offer round "
                 f"{measured_costs['offer round'].shape()}")
        return result

    def _start_probe(self, port: int, seconds: float):
        out = self.workdir / f"probe-{uuid.uuid4().hex[:8]}.json"
        proc = self.rig.children.start(
            "probe", [PYTHON, str(HERE / "stall_probe.py"), "--url", f"http://127.0.0.1:{port}",
                      "--seconds", str(seconds), "--out", str(out),
                      *(["--control", self.control] if self.control else [])],
            cwd=ROOT, log_dir=self.workdir, cores=self.rig.client_cores)
        proc.out = out  # type: ignore[attr-defined]
        return proc

    def _stop_probe(self, proc) -> Probe:
        self.rig.children.stop(proc, timeout=10)
        return Probe.load(proc.out)

    async def _probe(self, port: int, seconds: float) -> Probe:
        proc = self._start_probe(port, seconds)
        await asyncio.to_thread(proc.wait, seconds + 20)
        return self._stop_probe(proc)

    def settings(self, **store) -> Settings:
        return Settings(config_path=str(self.config), sends_per_app=1e6,
                        sends_per_conversation=1e6, **store)

    # -- the embedded store ----------------------------------------------------------------

    async def embedded(self, templates: Templates) -> None:
        from storage.embedded import EmbeddedStore

        db = self.workdir / "growth.sqlite3"
        filler = Filler(templates, MIX, DEFAULT_RETENTION_DAYS * 86_400)
        await filler.create_embedded(db)
        baseline_copy = self.workdir / "baseline.sqlite3"

        async def count() -> int:
            return count_rows(db)

        async def costs(path: Path = db) -> dict[str, Cost]:
            return await measure(self.settings(db_path=str(path)), EmbeddedStore(path),
                                 self.rig.service_url, path)

        for n, target in enumerate(self.budget.sizes):
            started = time.perf_counter()
            filler.fill_embedded(db, max(0, target - count_rows(db)))
            filled = time.perf_counter() - started
            if n == 0:
                shutil.copy(db, baseline_copy)
            await self.size("embedded", f"{target:,}", embedded(db), filled, count, costs)
        first = self.budget.sizes[0]

        async def count_base() -> int:
            return count_rows(baseline_copy)

        async def costs_base() -> dict[str, Cost]:
            return await costs(baseline_copy)

        await self.size("embedded", f"{first:,} again", embedded(baseline_copy), 0.0,
                        count_base, costs_base)
        self.say(f"[embedded] copies by kind: {filler.by_kind}")
        self.lasting = never_expire(db)
        self.say(f"[embedded] documents with no expiry at {count_rows(db):,}: {self.lasting}")

    # -- Cosmos DB -------------------------------------------------------------------------

    async def cosmos(self, templates: Templates) -> None:
        from storage.cosmos import CosmosStore
        from tests.local_cosmos import local_cosmos_server

        with local_cosmos_server() as server:
            database = f"growth-{uuid.uuid4().hex[:8]}"

            def store() -> CosmosStore:
                return CosmosStore(server.endpoint, database, key=server.key,
                                   connection_verify=False)

            env = {"SWITCHBOARD_STORE": "cosmos", "COSMOS_ENDPOINT": server.endpoint,
                   "COSMOS_KEY": server.key, "COSMOS_DATABASE": database,
                   "COSMOS_VERIFY_TLS": "false"}
            filler = Filler(templates, MIX, DEFAULT_RETENTION_DAYS * 86_400)
            docs = store()
            await docs.open()
            try:
                await filler.create_cosmos(docs)
                for target in self.budget.cosmos_sizes:
                    started = time.perf_counter()
                    await filler.fill_cosmos(docs, max(0, target - await cosmos_count(docs)))
                    filled = time.perf_counter() - started

                    async def count() -> int:
                        return await cosmos_count(docs)

                    async def costs() -> dict[str, Cost]:
                        return await measure(
                            self.settings(store="cosmos", cosmos_endpoint=server.endpoint,
                                          cosmos_key=server.key, cosmos_database=database,
                                          cosmos_verify=False),
                            store(), self.rig.service_url, None)

                    await self.size("cosmos", f"{target:,}", env, filled, count, costs)
            finally:
                await docs.close()


def never_expire(path: Path) -> dict[str, int]:
    """Rows with no expiry, by container and type (they outlive the retention period)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = {}
        for t in tables:
            for kind, n in db.execute(f"SELECT json_extract(body, '$.type'), COUNT(*) FROM \"{t}\""
                                      " WHERE expires IS NULL GROUP BY 1"):
                out[f"{t}/{kind}"] = n
        return out
    finally:
        db.close()


def count_rows(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return sum(db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables)
    finally:
        db.close()


async def cosmos_count(docs) -> int:
    """Documents in every container (`SELECT VALUE COUNT(1)`, through the store's client)."""
    total = 0
    for container in docs._containers.values():  # the bench only: the SDK's proxies
        async for n in container.query_items("SELECT VALUE COUNT(1) FROM c"):
            total += int(n)
    return total


async def main_async(args: argparse.Namespace) -> int:
    budget = QUICK if args.quick else FULL
    if args.sizes:
        budget = Budget(**{**vars(budget), "sizes": tuple(args.sizes)})
    if args.cosmos_sizes is not None:
        budget = Budget(**{**vars(budget), "cosmos_sizes": tuple(args.cosmos_sizes)})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="switchboard-growth-") as tmp:
        workdir = Path(tmp)
        config, _ = always_open(Path(args.config), workdir)
        rig = Rig(args, workdir)

        def say(line: str) -> None:
            print(line, flush=True)

        try:
            await rig.open()
            await quiet_machine(args.wait_quiet, say)
            growth = Growth(args, rig, workdir, config, budget, say)
            growth.start_control()
            templates = await growth.templates()
            for kind, t in templates.chats.items():
                say(f"[template] {kind}: {len(t.rows)} documents, {len(t.tokens)} ids of its own")
            await growth.embedded(templates)
            if budget.cosmos_sizes:
                await growth.cosmos(templates)
            text, data, ok = report(growth.results, budget, args, started, growth.lasting)
            print(text, flush=True)
            if args.json:
                with open(args.json, "w") as f:  # noqa: ASYNC230 (once, at the end)
                    json.dump(data, f, indent=2, default=str)
            return 0 if ok else 1
        finally:
            await rig.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k and 10k, short windows")
    parser.add_argument("--sizes", type=int, nargs="+", help="embedded store sizes")
    parser.add_argument("--cosmos-sizes", type=int, nargs="*",
                        help="Cosmos DB sizes (none: skip Cosmos)")
    parser.add_argument("--config", default=str(ROOT / "examples" / "helpdesk.yaml"))
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--wait-quiet", type=float, default=0.0)
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()

    def terminated(signum, frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
