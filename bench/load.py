"""Load benchmark: Switchboard against a stock botbuilder echo bot and a bare aiohttp handler.

    .venv/bin/python bench/load.py            # the full run (5-11 min on 2 cores)
    .venv/bin/python bench/load.py --quick    # a smoke run (about a minute)

This process is the load generator: N guests at once (N = 1, 16, 64), each running the
seed scenario over HTTP with Teams-shaped activities whose serviceUrl is a lean local
connector (bench/lean_connector.py, its own process). Three servers are measured, each
its own subprocess on a free loopback port, one at a time: a bare aiohttp handler (the
HTTP ceiling), the stock echo bot (bench/servers/echo_bot.py) and Switchboard (app.py with
the embedded store on a temp file, pre-filled with 100,000 documents of template chats, its
timers, delivery sweep and expiry purge at their default intervals). See bench/README.md for
the method and how to read the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # the bot's own modules, for the pre-fill

from policy import ConfigView, Guest, Step, replies_from  # noqa: E402
from proc import (  # noqa: E402
    Children,
    MachineCpu,
    cpu_seconds,
    free_port,
    loop_thread_cpu,
    memory_kib,
    pin,
    tail,
    wait_port,
)

PYTHON = str(ROOT / ".venv" / "bin" / "python")
AAD_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT = {"id": "28:switchboard-bot", "name": "Switchboard"}
STEP_LIMIT = 25  # turns in one scenario before the guest gives up (a stuck scenario)
REQUEST_TIMEOUT = 30.0

# targets (the issue)
TARGET_TPS_RATIO = 4.0  # Switchboard guest turns/s >= 4x the echo bot's
TARGET_P99_RATIO = 0.25  # Switchboard p99 at N=16 <= 1/4 of the echo bot's
TARGET_TRANSFER_RATIO = 2.0  # a transfer's CPU <= 2x a guest turn's
TARGET_BYTES_PER_SESSION = 1024  # RSS growth from 100 to 10,000 sessions, per session
MEMORY_TARGET_SESSIONS = 10_000


@dataclass(frozen=True)
class Budget:
    """How long and how much each phase may take."""

    window: float  # seconds of one measured window (server x N)
    max_turns: int  # turns in one measured window at most
    warmup: float  # seconds of warm-up per server (N=16, not measured)
    class_guests: int  # guests in the transfer / guest-turn CPU phases
    memory_small: int
    memory_large: int
    memory_time: float  # seconds at most to open the sessions of the memory phase
    retries: int  # measure a window again (at most this often) when the machine was noisy
    concurrency: tuple[int, ...] = (1, 16, 64)


QUICK = Budget(window=1.5, max_turns=4000, warmup=0.5, class_guests=32,
               memory_small=100, memory_large=600, memory_time=20, retries=0)
FULL = Budget(window=10.0, max_turns=60_000, warmup=3.0, class_guests=300,
              memory_small=100, memory_large=10_000, memory_time=300, retries=1)
# a window is "noisy" when other processes used more than this fraction of one core
NOISE_LIMIT = 0.15


# -- the configuration ----------------------------------------------------------------

WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def always_open(src: Path, workdir: Path) -> tuple[Path, int]:
    """A copy of the config where every `opening_hours` is 24/7 and no day is a holiday, so
    the scenario does not depend on the hour the benchmark runs at (a closed HR ends the
    chat at its transfer). The copy sits in a temp dir next to symlinks to everything
    beside the original (cards, knowledge bases), so relative paths still resolve.
    Returns (path, how many opening hours were changed); the original when none."""
    import yaml

    raw = yaml.safe_load(src.read_text())
    changed = 0

    def walk(node: Any) -> None:
        nonlocal changed
        if isinstance(node, dict):
            if isinstance(node.get("opening_hours"), dict):
                node["opening_hours"] = {day: ["00:00-24:00"] for day in WEEK}
                changed += 1
                if "holidays" in node:
                    node["holidays"] = []
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(raw)
    if not changed:
        return src, 0
    folder = workdir / "config"
    folder.mkdir()
    for entry in src.parent.iterdir():
        if entry.name != src.name:
            (folder / entry.name).symlink_to(entry)
    dst = folder / src.name
    dst.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return dst, changed


# -- activities ----------------------------------------------------------------------


class Conversation:
    """One guest's personal chat: the activity's constant part serialized once."""

    def __init__(self, service_url: str, name: str) -> None:
        aad = str(uuid.uuid4())
        self.id = f"a:1{uuid.uuid4().hex}"
        self.quoted = quote(self.id, safe="")
        self.n = 0
        common = {
            "timestamp": datetime.now(UTC).isoformat(),
            "channelId": "msteams",
            "serviceUrl": service_url,
            "from": {"id": f"29:{aad}", "name": name, "aadObjectId": aad},
            "recipient": BOT,
            "conversation": {"id": self.id, "conversationType": "personal",
                             "tenantId": AAD_TENANT},
            "channelData": {"tenant": {"id": AAD_TENANT}},
            "locale": "en-US",
        }
        self._common = json.dumps(common, separators=(",", ":"))[1:-1].encode()
        self._prefix = f"act-{self.id[-12:]}-".encode()

    def body(self, step: Step) -> bytes:
        self.n += 1
        head = b'"id":"%s%d",' % (self._prefix, self.n)
        if step.execute is not None:
            tail_ = (b',"name":"adaptiveCard/action","value":'
                     + json.dumps({"action": step.execute, "trigger": "manual"}).encode())
            return b'{"type":"invoke",' + head + self._common + tail_ + b"}"
        extra = b""
        if step.text is not None:
            extra += b',"text":' + json.dumps(step.text).encode() + b',"textFormat":"plain"'
        if step.value is not None:
            extra += b',"value":' + json.dumps(step.value).encode()
        return b'{"type":"message",' + head + self._common + extra + b"}"


# -- results -------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (ms); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class Window:
    """One measured run of N guests against one server."""

    server: str
    n: int
    turns: int = 0
    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    scenarios_done: int = 0
    scenarios_stuck: int = 0
    anomalies: int = 0
    anomaly_samples: list[str] = field(default_factory=list)
    no_reply_turns: int = 0
    transfers_unconfirmed: int = 0
    server_cpu: float = 0.0
    connector_cpu: float = 0.0
    loadgen_cpu: float = 0.0
    other_cpu: float = 0.0
    server_core_busy: float = 0.0
    client_core_busy: float = 0.0
    hwm_kib: int = 0
    loop_cpu: float = 0.0  # the server's main thread (its event loop); the rest: other threads
    rss_kib: int = 0
    connector: dict[str, int] = field(default_factory=dict)
    client_connections: int = 0
    replies_seen: int = 0
    attempts: int = 1

    @property
    def noise(self) -> float:
        """CPU other processes used during the window, as a fraction of one core."""
        return self.other_cpu / self.seconds if self.seconds else 0.0

    def all_latencies(self) -> list[float]:
        return [v for vs in self.latencies.values() for v in vs]

    def guest_latencies(self) -> list[float]:
        return self.latencies["start"] + self.latencies["guest"]

    @property
    def tps(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_turn(self) -> float:
        return 1000 * self.server_cpu / self.turns if self.turns else float("nan")

    @property
    def replies(self) -> int:
        return self.connector.get("activities", 0) + self.connector.get("updates", 0)

    @property
    def conns_per_reply(self) -> float:
        return self.connector.get("accepted", 0) / self.replies if self.replies else float("nan")

    def summary(self) -> dict[str, Any]:
        lat = self.all_latencies()
        return {
            "server": self.server, "n": self.n, "turns": self.turns,
            "seconds": round(self.seconds, 3), "turns_per_s": round(self.tps, 1),
            "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
            "guest_p50_ms": pct(self.guest_latencies(), 50),
            "guest_p99_ms": pct(self.guest_latencies(), 99),
            "transfer_p50_ms": pct(self.latencies["transfer"], 50),
            "transfer_p99_ms": pct(self.latencies["transfer"], 99),
            "transfers": len(self.latencies["transfer"]),
            "server_cpu_ms_per_turn": self.cpu_ms_per_turn,
            "server_loop_thread_cpu_s": self.loop_cpu,
            "server_core_busy": self.server_core_busy,
            "client_core_busy": self.client_core_busy,
            "connector_cpu_s": self.connector_cpu, "loadgen_cpu_s": self.loadgen_cpu,
            "other_cpu_s": self.other_cpu, "peak_mem_kib": self.hwm_kib,
            "rss_kib": self.rss_kib, "connector": self.connector,
            "client_connections": self.client_connections,
            "conns_per_reply": self.conns_per_reply, "errors": self.errors,
            "error_samples": self.error_samples[:5], "scenarios_done": self.scenarios_done,
            "scenarios_stuck": self.scenarios_stuck, "anomalies": self.anomalies,
            "no_reply_turns": self.no_reply_turns,
            "transfers_unconfirmed": self.transfers_unconfirmed,
        }


# -- the rig: connector, HTTP clients, servers ----------------------------------------


@dataclass
class ServerSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    scenario: str  # "switchboard" (the real scenario) or "plain" (text messages)
    health: str | None = None  # a GET path answering 200 when ready
    cwd: Path | None = None  # where it runs (this checkout when None)


class Rig:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.children = Children()
        self.server_cores: set[int] | None = None
        self.client_cores: set[int] | None = None
        allowed = sorted(os.sched_getaffinity(0))
        self.allowed = allowed
        if not args.no_pin and len(allowed) >= 2:
            self.server_cores = {allowed[0]}
            self.client_cores = set(allowed[1:2])
            pin(0, self.client_cores)
        self.connector_port = free_port()
        self.control_port = free_port()
        self.service_url = f"http://127.0.0.1:{self.connector_port}"
        self.control_url = f"http://127.0.0.1:{self.control_port}"
        self.connector: subprocess.Popen | None = None
        self.client_connections = 0
        self.http: aiohttp.ClientSession | None = None
        self.control: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.connector = self.children.start(
            "connector",
            [PYTHON, str(HERE / "lean_connector.py"), "--port", str(self.connector_port),
             "--control-port", str(self.control_port)],
            cwd=ROOT, log_dir=self.workdir, cores=self.client_cores,
        )
        self.renice(self.connector.pid)
        self.renice(os.getpid())
        wait_port(self.control_port, self.connector, 20)
        wait_port(self.connector_port, self.connector, 20)
        trace = aiohttp.TraceConfig()

        async def created(session, ctx, params) -> None:
            self.client_connections += 1

        trace.on_connection_create_end.append(created)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT), trace_configs=[trace],
            skip_auto_headers=("User-Agent",),
        )
        self.control = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        )

    def renice(self, pid: int) -> None:
        if self.args.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, pid, self.args.nice)
            except OSError as exc:
                print(f"could not set priority {self.args.nice} on {pid}: {exc}", flush=True)

    async def close(self) -> None:
        for session in (self.http, self.control):
            if session is not None:
                await session.close()
        self.children.stop_all()

    async def reset_connector(self, keep: bool) -> None:
        assert self.control is not None
        async with self.control.post(f"{self.control_url}/reset?keep={int(keep)}") as r:
            await r.read()

    async def connector_stats(self) -> dict[str, int]:
        assert self.control is not None
        async with self.control.get(f"{self.control_url}/stats") as r:
            return await r.json()

    async def drain(self, conversation: Conversation) -> list[dict[str, Any]]:
        assert self.control is not None
        async with self.control.get(f"{self.control_url}/drain/{conversation.quoted}") as r:
            return replies_from(await r.read())

    def start_server(self, spec: ServerSpec, port: int) -> subprocess.Popen:
        proc = self.children.start(spec.name, spec.argv, env=spec.env, cwd=spec.cwd or ROOT,
                                   log_dir=self.workdir, cores=self.server_cores)
        self.renice(proc.pid)
        wait_port(port, proc, 60)
        return proc


def base_environment() -> dict[str, str]:
    """This process's environment without any setting of the bot's (each server gets its own)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MICROSOFT_APP", "SWITCHBOARD_", "COSMOS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def switchboard_spec(port: int, config: Path, keep_rate_limits: bool,
                     store: dict[str, str]) -> ServerSpec:
    """app.py as it runs: timers, the delivery sweep and the expiry purge at their default
    intervals (none of their settings is set), on the store that `store` names."""
    env = {
        **base_environment(),
        "SWITCHBOARD_HOST": "127.0.0.1",
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_CONFIG": str(config),
        "MICROSOFT_APP_ID": "",
        "MICROSOFT_APP_PASSWORD": "",
        **store,
    }
    if not keep_rate_limits:
        # Teams' throttling, as the bot models it, is not the bot's cost: lifted
        env["SWITCHBOARD_SENDS_PER_APP"] = "1000000"
        env["SWITCHBOARD_SENDS_PER_CONVERSATION"] = "1000000"
    return ServerSpec("switchboard", [PYTHON, "app.py"], env, "switchboard", "/healthz")


def embedded(path: Path) -> dict[str, str]:
    return {"SWITCHBOARD_STORE": "embedded", "SWITCHBOARD_DB_PATH": str(path)}


def specs(workdir: Path, config: Path, keep_rate_limits: bool,
          prefilled: Path | None = None) -> dict[str, Callable]:
    """The three servers. Switchboard runs on `prefilled` (a store file filled beforehand)
    when given, else on a new file."""
    base_env = base_environment()

    def bare(port: int) -> ServerSpec:
        return ServerSpec("bare", [PYTHON, str(HERE / "servers" / "bare.py"), "--port",
                                   str(port)], base_env, "plain")

    def echo(port: int) -> ServerSpec:
        return ServerSpec("echo", [PYTHON, str(HERE / "servers" / "echo_bot.py"), "--port",
                                   str(port)], base_env, "plain")

    def switchboard(port: int, db_name: str = "switchboard.sqlite3") -> ServerSpec:
        path = workdir / db_name if prefilled is None or db_name != "switchboard.sqlite3" \
            else prefilled
        return switchboard_spec(port, config, keep_rate_limits, embedded(path))

    return {"bare": bare, "echo": echo, "switchboard": switchboard}


# -- guests --------------------------------------------------------------------------


class Runner:
    """Plays guests against one server; every turn is one POST, timed, then one drain."""

    def __init__(self, rig: Rig, url: str, scenario: str, config: ConfigView,
                 plain_turns: int, department: str) -> None:
        self.rig = rig
        self.url = url + "/api/messages"
        self.scenario = scenario
        self.config = config
        self.plain_turns = plain_turns
        self.department = department
        self.names = [f"Guest {i}" for i in range(1000)]
        self.path_seen: list[str] | None = None

    async def post(self, body: bytes) -> tuple[int, float]:
        assert self.rig.http is not None
        started = time.perf_counter()
        async with self.rig.http.post(self.url, data=body,
                                      headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            status = resp.status
        return status, (time.perf_counter() - started) * 1000

    def conversation(self) -> tuple[Conversation, Guest]:
        conv = Conversation(self.rig.service_url, random.choice(self.names))
        return conv, Guest(self.config, department=self.department)

    def first_step(self, guest: Guest) -> Step:
        return guest.first()

    def next_step(self, guest: Guest, replies: list[dict[str, Any]], turn: int) -> Step | None:
        if self.scenario == "plain":
            if turn >= self.plain_turns:
                return None
            return Step("guest", "say text", text=f"message number {turn + 1}")
        return guest.next(replies)

    async def turn(self, conv: Conversation, guest: Guest, step: Step, win: Window,
                   sem: asyncio.Semaphore | None = None) -> list[dict[str, Any]] | None:
        """One turn: POST, time it, drain what the bot sent. None when the turn failed."""
        body = conv.body(step)
        try:
            if sem is None:
                status, ms = await self.post(body)
            else:
                async with sem:
                    status, ms = await self.post(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            win.errors += 1
            win.error_samples.append(f"{type(exc).__name__}: {exc}")
            return None
        win.turns += 1
        if status not in (200, 201):
            win.errors += 1
            win.error_samples.append(f"HTTP {status}")
            return None
        win.latencies[step.kind].append(ms)
        replies = await self.rig.drain(conv)
        win.replies_seen += len(replies)
        if not replies and step.execute is None:
            win.no_reply_turns += 1
        if step.kind == "transfer" and not _session_changed(step, replies):
            win.transfers_unconfirmed += 1
        return replies

    async def scenario_once(self, win: Window, keep_going: Callable[[], bool],
                            path: list[str] | None = None) -> None:
        conv, guest = self.conversation()
        step: Step | None = self.first_step(guest)
        turn = 0
        while step is not None and keep_going():
            if path is not None:
                path.append(step.label + (" [transfer]" if step.kind == "transfer" else ""))
            replies = await self.turn(conv, guest, step, win)
            if replies is None:
                return
            turn += 1
            if turn >= STEP_LIMIT:
                win.scenarios_stuck += 1
                return
            step = self.next_step(guest, replies, turn)
        if step is None:
            win.scenarios_done += 1
        win.anomalies += len(guest.anomalies)
        win.anomaly_samples.extend(guest.anomalies[:3 - len(win.anomaly_samples)])

    async def closed_loop(self, win: Window, n: int, seconds: float, max_turns: int) -> None:
        """N guests, each running scenarios back to back, until time or turns run out."""
        deadline = time.perf_counter() + seconds
        max_errors = max(20, max_turns // 20)

        def keep_going() -> bool:
            return (time.perf_counter() < deadline and win.turns < max_turns
                    and win.errors < max_errors)

        async def guest_loop() -> None:
            while keep_going():
                await self.scenario_once(win, keep_going)

        await asyncio.wait_for(asyncio.gather(*(guest_loop() for _ in range(n))),
                               seconds + 2 * REQUEST_TIMEOUT + 30)


def _session_changed(step: Step, replies: list[dict[str, Any]]) -> bool:
    from policy import _sb, buttons, cards

    if step.session is None:
        return True
    sessions = {_sb(b).get("session") for a in replies for c in cards(a) for b in buttons(c)}
    sessions.discard(None)
    texts = " ".join(json.dumps(a.get("attachments") or []) for a in replies)
    return bool(sessions - {step.session}) or "Moving you" in texts


# -- measurement ---------------------------------------------------------------------


class Meter:
    """CPU of the server, the connector and this process, and the machine, over a window."""

    def __init__(self, rig: Rig, server_pid: int) -> None:
        self.rig = rig
        self.pid = server_pid

    def snap(self) -> tuple[float, float, float, MachineCpu, float, float]:
        assert self.rig.connector is not None
        return (cpu_seconds(self.pid), cpu_seconds(self.rig.connector.pid), cpu_seconds(),
                MachineCpu.read(), time.perf_counter(), loop_thread_cpu(self.pid))

    def fill(self, win: Window, before, after) -> None:
        win.server_cpu = after[0] - before[0]
        win.loop_cpu = after[5] - before[5]
        win.connector_cpu = after[1] - before[1]
        win.loadgen_cpu = after[2] - before[2]
        busy = after[3].busy_seconds_since(before[3])
        win.other_cpu = max(0.0, busy - win.server_cpu - win.connector_cpu - win.loadgen_cpu)
        if self.rig.server_cores:
            core = f"cpu{min(self.rig.server_cores)}"
            win.server_core_busy = after[3].busy_since(before[3], core)
        if self.rig.client_cores:
            core = f"cpu{min(self.rig.client_cores)}"
            win.client_core_busy = after[3].busy_since(before[3], core)
        mem = memory_kib(self.pid)
        win.hwm_kib, win.rss_kib = mem.get("VmHWM", 0), mem.get("VmRSS", 0)


async def measured(rig: Rig, meter: Meter, win: Window, body) -> Window:
    """Run `body` from a quiet start to a quiet end; CPU and connector counts around it."""
    await rig.reset_connector(keep=True)
    conns_before = rig.client_connections
    await asyncio.sleep(0.05)
    before = meter.snap()
    await body()
    t_end = time.perf_counter()
    await asyncio.sleep(0.05)  # trailing work of the last turns (logging, writes)
    after = meter.snap()
    win.seconds = t_end - before[4]
    meter.fill(win, before, after)
    win.connector = await rig.connector_stats()
    win.client_connections = rig.client_connections - conns_before
    return win


@dataclass
class ClassCosts:
    """Switchboard's turns split by kind, each kind measured alone (CPU and latency)."""

    phases: dict[str, Window] = field(default_factory=dict)
    guests: int = 0
    reached_transfer: int = 0
    attempts: int = 1

    def cpu_ms(self, *names: str) -> float:
        turns = sum(self.phases[n].turns for n in names if n in self.phases)
        cpu = sum(self.phases[n].server_cpu for n in names if n in self.phases)
        return 1000 * cpu / turns if turns else float("nan")

    def tps(self, *names: str) -> float:
        turns = sum(self.phases[n].turns for n in names if n in self.phases)
        secs = sum(self.phases[n].seconds for n in names if n in self.phases)
        return turns / secs if secs else float("nan")


async def class_phases(rig: Rig, runner: Runner, meter: Meter, guests: int,
                       concurrency: int = 16) -> ClassCosts:
    """Three quiet windows: every guest up to its transfer (guest turns only), then every
    guest's transfer (transfers only), then the rest (guest turns only). At most
    `concurrency` requests in flight, like N=16."""
    costs = ClassCosts(guests=guests)
    sem = asyncio.Semaphore(concurrency)
    states: list[list[Any]] = []  # [conversation, guest, next step, turn, done]
    for _ in range(guests):
        conv, guest = runner.conversation()
        states.append([conv, guest, guest.first(), 0, False])

    async def until(state, win: Window, stop_at_transfer: bool, only_one: bool) -> None:
        conv, guest, step, turn, done = state
        while step is not None and not done:
            if stop_at_transfer and step.kind == "transfer":
                break
            replies = await runner.turn(conv, guest, step, win, sem)
            turn += 1
            if replies is None or turn >= STEP_LIMIT:
                done = True
                win.scenarios_stuck += replies is not None
                break
            step = runner.next_step(guest, replies, turn)
            if only_one:
                break
        state[2:] = [step, turn, done or step is None]

    limit = 120 + guests * 2.0
    for name, stop, one in (("before", True, False), ("transfer", False, True),
                            ("after", False, False)):
        win = Window("switchboard", concurrency)
        if name == "transfer":
            ready = [s for s in states if not s[4] and s[2] is not None
                     and s[2].kind == "transfer"]
            costs.reached_transfer = len(ready)
            todo = ready
        else:
            todo = [s for s in states if not s[4]]

        async def body(todo=todo, win=win, stop=stop, one=one) -> None:
            await asyncio.wait_for(
                asyncio.gather(*(until(s, win, stop, one) for s in todo)), limit)

        costs.phases[name] = await measured(rig, meter, win, body)
    return costs


# -- the memory phase ----------------------------------------------------------------


@dataclass
class MemoryResult:
    idle: dict[str, int] = field(default_factory=dict)
    points: list[tuple[int, dict[str, int]]] = field(default_factory=list)  # (sessions, KiB)
    small: int = 0
    large: int = 0
    opened: int = 0
    errors: int = 0
    seconds: float = 0.0
    replies: int = 0
    target: int = 0
    timed_out: bool = False

    def at(self, sessions: int) -> dict[str, int]:
        return next((m for n, m in self.points if n == sessions), {})

    @property
    def small_kib(self) -> int:
        return self.at(self.small).get("VmRSS", 0)

    @property
    def large_kib(self) -> int:
        return self.at(self.large).get("VmRSS", 0)

    @property
    def ratio(self) -> float:
        return self.large_kib / self.small_kib if self.small_kib else float("nan")

    @property
    def bytes_per_session(self) -> float:
        if self.large <= self.small:
            return float("nan")
        return (self.large_kib - self.small_kib) * 1024 / (self.large - self.small)


async def memory_phase(rig: Rig, spec: ServerSpec, port: int, budget: Budget) -> MemoryResult:
    """A fresh Switchboard; guests that each say "hi" once (a session left waiting at the
    first question), 16 at a time: RSS after `small` sessions, at a few points on the way,
    and after `large`."""
    result = MemoryResult(target=budget.memory_large)
    proc = rig.start_server(spec, port)
    try:
        await wait_healthy(rig, port, spec, proc)
        await rig.reset_connector(keep=False)
        await asyncio.sleep(0.5)
        result.idle = memory_kib(proc.pid)
        url = f"http://127.0.0.1:{port}/api/messages"
        hi = Step("start", 'say "hi"', text="hi")
        bodies = [Conversation(rig.service_url, f"Guest {i}").body(hi)
                  for i in range(budget.memory_large)]
        started = time.perf_counter()
        deadline = started + budget.memory_time
        sem = asyncio.Semaphore(16)

        async def open_one(body: bytes) -> None:
            assert rig.http is not None
            async with sem:
                if time.perf_counter() > deadline:
                    result.timed_out = True
                    return
                try:
                    async with rig.http.post(url, data=body, headers={
                            "Content-Type": "application/json"}) as resp:
                        await resp.read()
                        ok = resp.status in (200, 201)
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
            if ok:
                result.opened += 1
            else:
                result.errors += 1

        large = budget.memory_large
        marks = sorted({budget.memory_small, *(m for m in (1000, 2500, 5000) if m < large),
                        large})
        done = 0
        for mark in marks:
            await asyncio.gather(*(open_one(b) for b in bodies[done:mark]))
            done = mark
            await asyncio.sleep(1.0)  # let the last writes and frees settle
            result.points.append((result.opened, memory_kib(proc.pid)))
            if result.timed_out:
                break
        result.small = result.points[0][0]
        result.large = result.points[-1][0]
        result.seconds = time.perf_counter() - started
        result.replies = (await rig.connector_stats()).get("activities", 0)
    finally:
        rig.children.stop(proc)
    return result


async def wait_healthy(rig: Rig, port: int, spec: ServerSpec, proc) -> None:
    if spec.health is None:
        return
    assert rig.http is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{spec.name} exited:\n{tail(proc.log_path)}")
        try:
            async with rig.http.get(f"http://127.0.0.1:{port}{spec.health}") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{spec.name} is not healthy after 60s:\n{tail(proc.log_path)}")


# -- one server, all N ---------------------------------------------------------------


@dataclass
class ServerResult:
    name: str
    windows: dict[int, Window] = field(default_factory=dict)
    classes: ClassCosts | None = None
    path: list[str] = field(default_factory=list)
    turns_per_scenario: float = 0.0
    startup_kib: int = 0


async def bench_server(rig: Rig, make_spec, budget: Budget, config: ConfigView,
                       plain_turns: int, department: str, say) -> ServerResult:
    port = free_port()
    spec: ServerSpec = make_spec(port)
    say(f"[{spec.name}] starting: {' '.join(spec.argv[1:])} on 127.0.0.1:{port}")
    proc = rig.start_server(spec, port)
    result = ServerResult(spec.name)
    try:
        await wait_healthy(rig, port, spec, proc)
        result.startup_kib = memory_kib(proc.pid)["VmRSS"]
        runner = Runner(rig, f"http://127.0.0.1:{port}", spec.scenario, config, plain_turns,
                        department)
        meter = Meter(rig, proc.pid)
        # one guest, alone, to show the path the policy took (and check it ends)
        probe = Window(spec.name, 1)
        await rig.reset_connector(keep=True)
        await runner.scenario_once(probe, lambda: True, result.path)
        if probe.errors or not probe.scenarios_done:
            raise RuntimeError(
                f"{spec.name}: the scenario did not complete for one guest "
                f"(errors {probe.error_samples[:3]}, path {result.path}):\n"
                + tail(proc.log_path))
        say(f"[{spec.name}] scenario: " + " -> ".join(result.path))
        # warm-up: 16 guests, not measured
        warm = Window(spec.name, 16)
        await runner.closed_loop(warm, 16, budget.warmup, budget.max_turns)
        result.turns_per_scenario = len(result.path)
        for n in budget.concurrency:
            best: Window | None = None
            for attempt in range(1, budget.retries + 2):
                win = Window(spec.name, n)

                async def body(win=win, n=n) -> None:
                    await runner.closed_loop(win, n, budget.window, budget.max_turns)

                await measured(rig, meter, win, body)
                if best is None or win.noise < best.noise:
                    best = win
                best.attempts = attempt
                if win.noise <= NOISE_LIMIT or attempt > budget.retries:
                    break
                say(f"[{spec.name}] N={n}: other processes used {100 * win.noise:.0f}% of a "
                    f"core during the window: measuring again")
            assert best is not None
            win = result.windows[n] = best
            say(f"[{spec.name}] N={n:<3} {win.turns:>6} turns {win.tps:>8.1f}/s  "
                f"p99 {pct(win.all_latencies(), 99):>8.1f} ms  "
                f"cpu {win.cpu_ms_per_turn:.2f} ms/turn  errors {win.errors}")
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.name} died:\n{tail(proc.log_path)}")
        if spec.scenario == "switchboard":
            for attempt in range(1, budget.retries + 2):
                classes = await class_phases(rig, runner, meter, budget.class_guests)
                noise = max(w.noise for w in classes.phases.values())
                if result.classes is None or noise < max(
                        w.noise for w in result.classes.phases.values()):
                    result.classes = classes
                result.classes.attempts = attempt
                if noise <= NOISE_LIMIT or attempt > budget.retries:
                    break
                say(f"[{spec.name}] kinds of turn: other processes used {100 * noise:.0f}% of "
                    "a core: measuring again")
            c = result.classes
            say(f"[{spec.name}] classes: guest {c.cpu_ms('before', 'after'):.2f} ms CPU/turn, "
                f"transfer {c.cpu_ms('transfer'):.2f} ms CPU/turn "
                f"({c.reached_transfer}/{c.guests} guests reached the transfer)")
    finally:
        rig.children.stop(proc)
    return result


# -- the report ----------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # nan
        return "-"
    return f"{value:,.{digits}f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths,
                                                                                     strict=True)))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


def baseline(root: Path, workdir: Path, args) -> tuple[Callable, ConfigView]:
    """Another checkout of Switchboard (a `git worktree` of an older commit), run on its own
    example config made 24/7 and a new store: its ratio to the same echo bot, same run."""
    home = workdir / "baseline"
    home.mkdir()
    config_path, _ = always_open(root / "examples" / "helpdesk.yaml", home)

    def make(port: int) -> ServerSpec:
        spec = switchboard_spec(port, config_path, args.keep_rate_limits,
                                embedded(home / "baseline.sqlite3"))
        return ServerSpec("baseline", [PYTHON, str(root / "app.py")], spec.env, spec.scenario,
                          spec.health, root)

    return make, ConfigView.load(config_path)


def report(results: dict[str, ServerResult], memory: MemoryResult | None, rig: Rig,
           budget: Budget, args, started: float) -> tuple[str, dict[str, Any]]:
    out: list[str] = []
    data: dict[str, Any] = {"servers": {}, "targets": {}}
    p = out.append
    p("")
    p("=" * 100)
    p("RESULTS (server = one subprocess on 127.0.0.1; latency = POST sent -> HTTP response read, "
      "at the load generator)")
    rows = []
    for name in ("bare", "echo", "switchboard", "baseline"):
        r = results.get(name)
        if r is None:
            continue
        data["servers"][name] = {"windows": {n: w.summary() for n, w in r.windows.items()},
                                 "path": r.path, "turns_per_scenario": r.turns_per_scenario}
        for n, w in r.windows.items():
            lat = w.all_latencies()
            rows.append([
                name, n, w.turns, fmt(w.tps), fmt(pct(lat, 50), 2), fmt(pct(lat, 95), 2),
                fmt(pct(lat, 99), 2), fmt(w.cpu_ms_per_turn, 2),
                fmt(1000 / w.cpu_ms_per_turn if w.cpu_ms_per_turn else float("nan"), 0),
                f"{100 * w.server_cpu / w.seconds:.0f}%" if w.seconds else "-",
                f"{100 * (1 - w.loop_cpu / w.server_cpu):.0f}%" if w.server_cpu else "-",
                f"{w.hwm_kib / 1024:.1f}", fmt(w.replies / w.turns if w.turns else 0, 2),
                w.connector.get("accepted", 0), fmt(w.conns_per_reply, 3),
                f"{100 * (w.loadgen_cpu + w.connector_cpu) / w.seconds:.0f}%" if w.seconds
                else "-",
                fmt(1e6 * w.connector_cpu / w.replies if w.replies else float("nan"), 0),
                fmt(w.other_cpu / w.seconds * 100 if w.seconds else 0, 0) + "%",
                w.errors,
            ])
    p(table(rows, ["server", "N", "turns", "turns/s", "p50 ms", "p95 ms", "p99 ms",
                   "CPU ms/turn", "1-core cap/s", "srv CPU", "threads", "peak MB",
                   "replies/turn",
                   "new conns", "conns/reply", "load CPU", "conn us/reply", "other",
                   "errors"]))
    p("  CPU ms/turn: the server process's user+sys CPU over the window / turns. 1-core cap/s: "
      "1000 / that (what one")
    p("  core could serve if nothing else limited it). srv CPU / load CPU: CPU used by the "
      "server / by the load generator")
    p("  + connector, % of one core. threads: the share of the server's CPU spent outside its "
      "main thread (the event loop):")
    p("  Switchboard's store threads, the echo bot's `requests` pool. new conns: TCP "
      "connections the connector accepted")
    p("  from the bot in the window.")
    p("  conn us/reply: connector CPU per reply. other: CPU used by processes outside the "
      "benchmark (noise), % of one core.")
    warn = []
    for name, r in results.items():
        for n, w in r.windows.items():
            load = (w.loadgen_cpu + w.connector_cpu) / w.seconds if w.seconds else 0
            if load > 0.75:
                warn.append(f"{name} N={n}: the load generator's core was "
                            f"{100 * w.client_core_busy:.0f}% busy: turns/s is a lower bound "
                            f"(harness-limited); CPU ms/turn still holds")
            if w.noise > NOISE_LIMIT:
                warn.append(f"{name} N={n}: {100 * w.noise:.0f}% of a core used by other "
                            f"processes during the window (noisy machine; quietest of "
                            f"{w.attempts} tries): turns/s and latency are skewed, CPU/turn "
                            f"much less")
            if w.errors or w.scenarios_stuck or w.anomalies or w.no_reply_turns:
                warn.append(f"{name} N={n}: errors {w.errors} {w.error_samples[:2]}, stuck "
                            f"scenarios {w.scenarios_stuck}, bot said 'went wrong'/'earlier "
                            f"step' {w.anomalies}x {w.anomaly_samples}, turns without reply "
                            f"{w.no_reply_turns}")
            if w.transfers_unconfirmed:
                warn.append(f"{name} N={n}: {w.transfers_unconfirmed} turns classified as "
                            f"transfers did not show a new session / transfer card")
            if (rig.server_cores and w.server_core_busy < 0.6 and n >= 16
                    and w.client_core_busy < 0.9):
                warn.append(f"{name} N={n}: neither core is saturated (server "
                            f"{100 * w.server_core_busy:.0f}%): the server waits on something "
                            f"(a lock, a rate limit, a thread pool, the store)")
    p("\nWARNINGS" if warn else "\nWARNINGS: none")
    for w_ in warn:
        p(f"  ! {w_}")
    for name, r in results.items():
        done = sum(w.scenarios_done for w in r.windows.values())
        p(f"\n{name}: scenario ({len(r.path)} turns) = {' -> '.join(r.path)}  "
          f"[{done} scenarios completed in the windows]")

    sb, echo, bare = results.get("switchboard"), results.get("echo"), results.get("bare")
    if sb is not None:
        p("\nSWITCHBOARD BY KIND OF TURN")
        rows = []
        for n, w in sb.windows.items():
            for label, lat in (("guest turn", w.guest_latencies()),
                               ("transfer", w.latencies["transfer"])):
                rows.append([f"N={n} mixed run", label, len(lat), fmt(pct(lat, 50), 2),
                             fmt(pct(lat, 95), 2), fmt(pct(lat, 99), 2), "", ""])
        if sb.classes:
            c = sb.classes
            for name, label in (("before", "guest turns up to the menu"),
                                ("transfer", "transfers only"),
                                ("after", "guest turns after the transfer")):
                w = c.phases.get(name)
                if w is None:
                    continue
                lat = w.all_latencies()
                rows.append(["alone, 16 in flight", label, w.turns, fmt(pct(lat, 50), 2),
                             fmt(pct(lat, 95), 2), fmt(pct(lat, 99), 2),
                             fmt(w.cpu_ms_per_turn, 2), fmt(w.tps)])
            rows.append(["alone, 16 in flight", "guest turns (before + after)",
                         c.phases["before"].turns + c.phases["after"].turns, "", "", "",
                         fmt(c.cpu_ms("before", "after"), 2), fmt(c.tps("before", "after"))])
            data["servers"]["switchboard"]["classes"] = {
                k: w.summary() for k, w in c.phases.items()}
        p(table(rows, ["run", "kind", "turns", "p50 ms", "p95 ms", "p99 ms", "CPU ms/turn",
                       "turns/s"]))
        p("  'alone' = a separate phase: the same guests stopped before their transfer, then "
          "all transfer, then all finish;")
        p("  each phase a quiet window of its own, so its server CPU belongs to that kind of "
          "turn only.")

    p("\nRATIOS")
    ratios = []
    for n in budget.concurrency:
        if sb and echo and n in sb.windows and n in echo.windows:
            s, e = sb.windows[n], echo.windows[n]
            cpu = s.cpu_ms_per_turn / e.cpu_ms_per_turn
            ratios.append(f"  N={n:<3} Switchboard / echo turns/s = {s.tps / e.tps:.2f}x   "
                          f"p99 Switchboard / echo = {_ratio(s, e, 99)}   "
                          f"CPU/turn Switchboard / echo = {cpu:.2f}x")
        old = results.get("baseline")
        if old and echo and n in old.windows and n in echo.windows:
            b, e = old.windows[n], echo.windows[n]
            line = f"  N={n:<3} baseline / echo turns/s = {b.tps / e.tps:.2f}x"
            if sb and n in sb.windows:
                now = sb.windows[n].tps / e.tps
                line += (f"   Switchboard's ratio / the baseline's = "
                         f"{now / (b.tps / e.tps):.3f} (issue 11: at least 0.9)")
            ratios.append(line)
        if bare and echo and n in bare.windows and n in echo.windows:
            b, e = bare.windows[n], echo.windows[n]
            ratios.append(f"  N={n:<3} bare / echo turns/s = {b.tps / e.tps:.1f}x   "
                          f"CPU/turn echo / bare = {e.cpu_ms_per_turn / b.cpu_ms_per_turn:.1f}x")
    p("\n".join(ratios))

    p("\nCONNECTIONS (the connector counts the TCP connections it accepts from the bot)")
    for name, r in results.items():
        acc = sum(w.connector.get("accepted", 0) for w in r.windows.values())
        rep = sum(w.replies for w in r.windows.values())
        cli = sum(w.client_connections for w in r.windows.values())
        p(f"  {name:<12} {acc:>7} new connections for {rep:>7} replies = "
          f"{acc / rep if rep else float('nan'):.3f} per reply   (load generator -> server: "
          f"{cli} new connections in the windows)")

    if memory is not None:
        p("\nMEMORY (a fresh Switchboard; each guest says hi once and is left at the first "
          "question)")
        rows = [["idle, after start", f"{memory.idle.get('VmRSS', 0) / 1024:.1f}",
                 f"{memory.idle.get('RssAnon', 0) / 1024:.1f}",
                 f"{memory.idle.get('RssFile', 0) / 1024:.1f}",
                 f"{memory.idle.get('RssShmem', 0) / 1024:.1f}", "", ""]]
        prev = None
        for n, m in memory.points:
            slope = ""
            if prev is not None and n > prev[0]:
                slope = fmt((m["VmRSS"] - prev[1]["VmRSS"]) * 1024 / (n - prev[0]), 0)
            rows.append([f"{n} sessions", f"{m['VmRSS'] / 1024:.1f}",
                         f"{m.get('RssAnon', 0) / 1024:.1f}", f"{m.get('RssFile', 0) / 1024:.1f}",
                         f"{m.get('RssShmem', 0) / 1024:.1f}", f"{m['VmHWM'] / 1024:.1f}", slope])
            prev = (n, m)
        p(table(rows, ["", "RSS MB", "anon MB", "file MB", "shmem MB", "peak MB",
                       "bytes/session since previous"]))
        p(f"  {memory.small} -> {memory.large} sessions: RSS ratio {memory.ratio:.3f}x, "
          f"{fmt(memory.bytes_per_session, 0)} bytes per extra session")
        p(f"  {memory.opened} opened in {memory.seconds:.1f}s, {memory.errors} errors, "
          f"{memory.replies} replies ({memory.replies / max(1, memory.opened):.2f} per session)"
          + ("  TIMED OUT before the target" if memory.timed_out else ""))
        data["memory"] = vars(memory) | {"ratio": memory.ratio,
                                          "bytes_per_session": memory.bytes_per_session}

    p("\nTARGETS")
    targets = data["targets"]

    def verdict(key: str, ok: bool | None, text: str) -> None:
        mark = "n/a" if ok is None else ("met" if ok else "MISSED")
        targets[key] = {"met": ok, "detail": text}
        p(f"  [{mark:>6}] {text}")

    if sb and echo and 16 in echo.windows and sb.classes:
        guest_tps = sb.classes.tps("before", "after")
        e16 = echo.windows[16].tps
        by_tps = guest_tps / e16
        by_cpu = echo.windows[16].cpu_ms_per_turn / sb.classes.cpu_ms("before", "after")
        noisy = _noise(echo.windows[16], *sb.classes.phases.values())
        # on a noisy machine turns/s measures the neighbours as much as the server: judge by
        # CPU per turn (the throughput one core allows), and say so
        ratio = by_cpu if noisy else by_tps
        verdict("guest_turn_throughput", ratio >= TARGET_TPS_RATIO,
                f"Switchboard guest turn >= {TARGET_TPS_RATIO:g}x the echo bot's turns/s: "
                f"measured {guest_tps:.1f}/s (guest turns only, 16 in flight) vs echo "
                f"{e16:.1f}/s at N=16 = {by_tps:.2f}x; by CPU per turn (one core's capacity) "
                f"{by_cpu:.2f}x; mixed scenario at N=16 {sb.windows[16].tps / e16:.2f}x"
                + (f". Judged by CPU per turn ({by_cpu:.2f}x) because the machine was noisy"
                   + noisy if noisy else ""))
    if sb and echo and 16 in sb.windows and 16 in echo.windows:
        s99 = pct(sb.windows[16].all_latencies(), 99)
        e99 = pct(echo.windows[16].all_latencies(), 99)
        verdict("p99_n16", s99 <= TARGET_P99_RATIO * e99,
                f"Switchboard p99 at N=16 {s99:.1f} ms <= 1/4 of echo's {e99:.1f} ms: "
                f"{s99 / e99:.2f}x (all scenario turns, transfers included)"
                + _noise(sb.windows[16], echo.windows[16]))
    if sb and sb.classes:
        g, t = sb.classes.cpu_ms("before", "after"), sb.classes.cpu_ms("transfer")
        verdict("transfer_cost", t <= TARGET_TRANSFER_RATIO * g,
                f"a transfer {t:.2f} ms CPU <= {TARGET_TRANSFER_RATIO:g}x a guest turn "
                f"{g:.2f} ms: {t / g:.2f}x")
    if sb:
        bad = [f"N={n}: {w.connector.get('accepted', 0)} new for {w.replies} replies"
               for n, w in sb.windows.items() if w.connector.get("accepted", 0) > n + 4]
        acc = sum(w.connector.get("accepted", 0) for w in sb.windows.values())
        rep = sum(w.replies for w in sb.windows.values())
        verdict("pooled_connections", not bad,
                f"replies reuse pooled connections (new connections in a window <= N + 4): "
                f"{acc} new for {rep} replies = {acc / rep if rep else float('nan'):.3f} per reply"
                + (f"; over in {'; '.join(bad)}" if bad else ""))
    if memory is not None:
        bps = memory.bytes_per_session
        complete = memory.large >= MEMORY_TARGET_SESSIONS and not memory.timed_out
        verdict("memory_flat", (bps <= TARGET_BYTES_PER_SESSION) if complete else None,
                f"memory flat from {memory.small} to {memory.large} sessions: "
                f"<= {TARGET_BYTES_PER_SESSION} bytes of RSS per extra session: "
                f"{fmt(bps, 0)} B/session, ratio {memory.ratio:.3f}x"
                + ("" if complete else f" (judged at {MEMORY_TARGET_SESSIONS} sessions only: "
                   "the first thousand sessions also warm caches and the allocator)"))
    if args.quick:
        p("  (--quick is a smoke run: windows of 1.5 s on small counts; its verdicts are "
          "indicative only)")
    p(f"\n(total {time.perf_counter() - started:.0f}s; {'--quick' if args.quick else 'full'} "
      f"run; JSON: {args.json or 'not written (--json PATH)'})")
    return "\n".join(out), data


def _noise(*windows: Window) -> str:
    worst = max((w.noise for w in windows), default=0.0)
    if worst <= NOISE_LIMIT:
        return ""
    return (f"  [NOISY: other processes used up to {100 * worst:.0f}% of a core in these "
            "windows; rerun on a quiet machine]")


def _ratio(s: Window, e: Window, q: float) -> str:
    a, b = pct(s.all_latencies(), q), pct(e.all_latencies(), q)
    return f"{a / b:.2f}x" if b == b and b else "-"


async def quiet_machine(wait: float, say) -> None:
    """How busy the machine is before we start (other people's work skews every figure);
    with --wait-quiet, wait up to that long for it to drop under a quarter of one core."""
    deadline = time.monotonic() + wait
    while True:
        before, own = MachineCpu.read(), cpu_seconds()
        await asyncio.sleep(1.0)
        busy = MachineCpu.read().busy_seconds_since(before) - (cpu_seconds() - own)
        if busy < 0.25 or time.monotonic() >= deadline:
            break
        say(f"machine busy: {100 * busy:.0f}% of a core used by other processes; waiting")
    say(f"machine before the run: {100 * busy:.0f}% of a core used by other processes"
        + ("" if busy < 0.25 else "  (NOISY: figures will be skewed; see 'other' per window)"))


def environment(rig: Rig, args) -> list[str]:
    lines = []
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, timeout=5).stdout
        changed = [ln[3:] for ln in dirty.splitlines()]
        lines.append(f"switchboard tree: {head}" + (
            f" + uncommitted changes in {len(changed)} files ({', '.join(changed[:6])}"
            f"{'...' if len(changed) > 6 else ''})" if changed else " (clean)"))
    except Exception:
        pass
    try:
        from importlib.metadata import version

        lines.append(f"python {platform.python_version()}, aiohttp {version('aiohttp')}, "
                     f"botbuilder-core {version('botbuilder-core')}, msrest {version('msrest')}")
    except Exception:
        pass
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    lines.append(f"cpus allowed: {rig.allowed} (os.cpu_count {os.cpu_count()}), "
                 f"loadavg: {' '.join(loadavg)}")
    if rig.server_cores:
        lines.append(f"pinning: server on cpu {sorted(rig.server_cores)}, load generator and "
                     f"connector on cpu {sorted(rig.client_cores or [])}")
    else:
        lines.append("pinning: none (fewer than 2 cpus, or --no-pin)")
    if args.nice:
        lines.append(f"priority: nice {args.nice} for the servers, the connector and the load "
                     "generator")
    store = (f"embedded store pre-filled with {args.prefilled:,} documents of template chats "
             "(bench/growth_fill.py; --prefill)" if args.prefilled else
             "embedded store on a new, empty file (--prefill 0)")
    lines.append(f"switchboard: {store}; timers, delivery sweep and expiry purge at their "
                 "default intervals (1 s, 15 s, 300 s: none of their settings is set); "
                 f"config {args.config}, log level INFO (its default: one JSON line per turn), "
                 + ("rate limits as configured" if args.keep_rate_limits else
                    "SWITCHBOARD_SENDS_PER_APP/PER_CONVERSATION lifted to 1e6 (Teams' throttle "
                    "model is not the bot's cost)"))
    return lines


async def prefill(rig: Rig, workdir: Path, config_path: Path, config: ConfigView,
                  path: Path, documents: int, say) -> int:
    """A store file filled with copies of template chats played against the real bot
    (bench/growth_chats.py, bench/growth_fill.py); how many documents it holds."""
    from growth_chats import MIX, capture_templates
    from growth_fill import Filler

    from storage.models import DEFAULT_RETENTION_DAYS

    started = time.perf_counter()
    templates = await capture_templates(rig, workdir, config_path, config, lambda _: None)
    filler = Filler(templates, MIX, DEFAULT_RETENTION_DAYS * 86_400)
    shared = await filler.create_embedded(path)
    filler.fill_embedded(path, max(0, documents - shared))
    say(f"switchboard's store: pre-filled with {filler.documents:,} documents "
        f"({filler.copies:,} chats copied from {len(templates.chats)} templates) in "
        f"{time.perf_counter() - started:.0f}s")
    return filler.documents


async def main_async(args) -> int:
    budget = QUICK if args.quick else FULL
    if args.window:
        budget = Budget(**{**vars(budget), "window": args.window})
    if args.retries is not None:
        budget = Budget(**{**vars(budget), "retries": args.retries})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="switchboard-load-") as tmp:
        workdir = Path(tmp)
        config_path, opened = Path(args.config), 0
        if args.hours == "always-open":
            config_path, opened = always_open(config_path, workdir)
        config = ConfigView.load(config_path)
        rig = Rig(args, workdir)

        def say(line: str) -> None:
            print(line, flush=True)

        try:
            await rig.open()
            for line in environment(rig, args):
                say(line)
            if opened:
                say(f"config: {args.config}, with opening hours made 24/7 and holidays "
                    f"removed ({opened} schedules; --hours always-open), so the scenario is "
                    "the same at any hour")
            await quiet_machine(args.wait_quiet, say)
            prefilled = None
            if "switchboard" in args.servers and args.prefill:
                prefilled = workdir / "prefilled.sqlite3"
                args.prefilled = await prefill(rig, workdir, config_path, config, prefilled,
                                               args.prefill, say)
                if not args.no_memory:  # the memory phase starts from the same store
                    shutil.copy(prefilled, workdir / "memory.sqlite3")
            makers = specs(workdir, config_path, args.keep_rate_limits, prefilled)
            results: dict[str, ServerResult] = {}
            names = [s for s in ("switchboard", "echo", "bare") if s in args.servers]
            plain_turns = args.plain_turns or 7
            if args.baseline:  # first: the drift of the machine favours no one in a row
                make, baseline_config = baseline(args.baseline, workdir, args)
                results["baseline"] = await bench_server(
                    rig, make, budget, baseline_config, plain_turns, args.department, say)
            for name in names:
                r = await bench_server(rig, makers[name], budget, config, plain_turns,
                                       args.department, say)
                results[name] = r
                if name == "switchboard" and not args.plain_turns:
                    # the plain servers' scenario: as many turns as Switchboard's
                    plain_turns = len(r.path)
            memory = None
            if "switchboard" in args.servers and not args.no_memory:
                say(f"[memory] opening {budget.memory_small} then {budget.memory_large} "
                    "sessions on a fresh Switchboard")
                port = free_port()
                spec = makers["switchboard"](port, "memory.sqlite3")
                memory = await memory_phase(rig, spec, port, budget)
            text, data = report(results, memory, rig, budget, args, started)
            print(text, flush=True)
            if args.json:
                data["environment"] = environment(rig, args)
                with open(args.json, "w") as f:  # noqa: ASYNC230 (once, at the end)
                    json.dump(data, f, indent=2, default=str)
            return 0
        finally:
            await rig.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small counts: a smoke run of about a minute")
    parser.add_argument("--servers", nargs="+", default=["bare", "echo", "switchboard"],
                        choices=["bare", "echo", "switchboard"])
    parser.add_argument("--config", default=str(ROOT / "examples" / "helpdesk.yaml"))
    parser.add_argument("--department", default="HR", help="the menu button the guests press")
    parser.add_argument("--plain-turns", type=int, default=0,
                        help="turns per scenario of the bare and echo servers (default: as "
                             "many as Switchboard's scenario took)")
    parser.add_argument("--window", type=float, default=0.0, help="seconds per measured window")
    parser.add_argument("--retries", type=int, default=None,
                        help="measure a noisy window again, at most this often (default: 1, "
                             "0 with --quick)")
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling priority of the benchmark's processes (e.g. -10 on a "
                             "shared machine, as root: other work then yields to the run)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory phase")
    parser.add_argument("--keep-rate-limits", action="store_true",
                        help="run Switchboard with its send rate limits as configured")
    parser.add_argument("--hours", choices=["always-open", "as-configured"],
                        default="always-open",
                        help="opening hours of the tenants: 24/7 (default, the scenario does "
                             "not depend on the time of day) or as the config says")
    parser.add_argument("--wait-quiet", type=float, default=0.0,
                        help="wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--prefill", type=int, default=None,
                        help="documents in Switchboard's store before it starts (default "
                             "100,000; 10,000 with --quick; 0: a new, empty store)")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout of Switchboard (git worktree add ../old "
                             "<commit>), measured in the same run on its own example config")
    args = parser.parse_args()
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        if not (args.baseline / "app.py").is_file():
            parser.error(f"--baseline {args.baseline}: no app.py there: give a checkout of "
                         "Switchboard (git worktree add ../old <commit>)")
    if args.prefill is None:
        args.prefill = 10_000 if args.quick else 100_000
    args.prefilled = args.prefill  # the documents it holds, once filled
    args.config = os.path.abspath(args.config)

    def terminated(signum, frame) -> None:
        raise KeyboardInterrupt  # unwinds through `finally`: every child is stopped

    signal.signal(signal.SIGTERM, terminated)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
