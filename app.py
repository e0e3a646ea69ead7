"""Switchboard's aiohttp server: /api/messages and /healthz. Wires everything.

Run: `python app.py` (settings come from the environment, see `Settings`).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from typing import NoReturn

from aiohttp import web

import telemetry
from bots.adapter import StockAdapter, SwitchboardAdapter, on_turn_error
from bots.agent_desk import AgentDesk
from bots.authentication import bot_auth
from bots.help_desk_bot import HelpDeskBot
from bots.json_logging import configure as configure_logging
from bots.messenger import LeanChannel, StockChannel
from bots.outbound import Outbound, RateLimiter
from bots.tokens import BotTokenProvider
from console import mount as mount_console
from pipelines.config import SwitchboardConfig
from pipelines.delivery import Deliverer, Owner
from pipelines.engine import Engine
from pipelines.http_steps import HttpSteps, environment_problems
from pipelines.loader import ConfigError, load_config
from pipelines.recovery import Recovery, SweepLease
from pipelines.routing import Desk, Routing
from settings import Settings, SettingsError, instance_name, make_store, unknown
from settings import load as load_settings
from storage.agents import AgentStore
from storage.config_store import publish
from storage.documents import DocumentStore, StoreError
from storage.sessions import SessionStore
from storage.timers import TimerRunner, TimerStore

log = logging.getLogger("switchboard")

MAX_BODY_BYTES = 256 * 1024

DOCS = web.AppKey("docs", DocumentStore)
SESSIONS = web.AppKey("sessions", SessionStore)
ENGINE = web.AppKey("engine", Engine)
BOT = web.AppKey("bot", HelpDeskBot)
TIMERS = web.AppKey("timers", TimerRunner)
ROUTING = web.AppKey("routing", Routing)
RECOVERY = web.AppKey("recovery", Recovery)
DELIVERER = web.AppKey("deliverer", Deliverer)
OUTBOUND = web.AppKey("outbound", Outbound)
HTTP_STEPS = web.AppKey("http_steps", HttpSteps)

_background: set[asyncio.Task] = set()


def _quiet_gc() -> None:
    """Fewer, cheaper garbage collections: a full collection over the long-lived objects
    of botbuilder, msrest and pydantic stalls every turn in flight for milliseconds.

    What is loaded at start-up is moved out of the collector's sight (`gc.freeze`), and the
    young generation is collected less often. Reference cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 20, 50)


def _spawn(coro) -> None:
    """Fire and forget, keeping a reference so the task is not collected mid-run."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def create_app(
    settings: Settings | None = None,
    docs: DocumentStore | None = None,
    clock: Callable[[], float] = time.time,
    config: SwitchboardConfig | None = None,
) -> web.Application:
    """The aiohttp app. Raises ConfigError before serving if the config is wrong.

    `config`: the tenants' configuration already loaded from `settings.config_path` (tests
    that start many bots load it once)."""
    settings = settings or Settings()
    if config is None:
        config, _warnings = load_config(settings.config_path)
    # what http_request stages read from the environment: URLs and secrets
    problems, notes = environment_problems(config, os.environ, settings.config_path)
    if problems:
        raise ConfigError(problems)
    for note in notes:
        log.warning(note)
    docs = telemetry.traced_store(docs or make_store(settings))
    lease = settings.delivery_lease_seconds
    owner = Owner(instance_name(settings), uuid.uuid4().hex[:12])
    sessions = SessionStore(docs, clock=clock, lease_seconds=lease,
                            retention_days=settings.retention_days, owner=owner.name,
                            dead=owner.dead)
    adapter_class = SwitchboardAdapter if settings.lean_adapter else StockAdapter
    adapter = adapter_class(bot_auth(settings))
    adapter.outbound = Outbound(
        token=BotTokenProvider(
            settings.app_id, settings.app_password, app_type=settings.app_type,
            aad_tenant_id=settings.aad_tenant_id, login_url=settings.login_url,
        ),
        limiter=RateLimiter(settings.sends_per_conversation, settings.sends_per_app),
        retry_budget=settings.send_retry_seconds,
    )
    adapter.on_turn_error = on_turn_error
    channel = (LeanChannel(adapter.outbound) if settings.lean_adapter
               else StockChannel(adapter, settings.app_id))
    deliverer = Deliverer(sessions, channel, owner, clock=clock, lease_seconds=lease)
    timers = TimerStore(docs, owner=owner.name, clock=clock, dead=owner.dead)
    engine = Engine(config, sessions, use_execute=settings.use_execute, clock=clock,
                    deliverer=deliverer, timers=timers)
    desk = Desk(engine, sessions, AgentStore(docs), timers, clock=clock,
                use_execute=settings.offer_execute)
    routing = Routing(desk)
    engine.routing = routing
    http_steps = HttpSteps(engine)
    runner = TimerRunner(timers, telemetry.traced_timer(http_steps.timers_or(routing.on_timer),
                                                        clock),
                         interval=settings.timer_interval or 1.0)
    recovery = Recovery(engine, deliverer, clock=clock)
    sweep_lease = SweepLease(docs, owner.name, seconds=max(5.0, settings.sweep_interval * 2),
                             clock=clock, dead=owner.dead)
    bot = HelpDeskBot(engine, sessions, recovery, AgentDesk(routing))
    loops: list[asyncio.Task] = []

    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=telemetry.server_middlewares())
    app[DOCS] = docs
    app[SESSIONS] = sessions
    app[ENGINE] = engine
    app[BOT] = bot
    app[TIMERS] = runner
    app[ROUTING] = routing
    app[RECOVERY] = recovery
    app[DELIVERER] = deliverer
    app[OUTBOUND] = adapter.outbound
    app[HTTP_STEPS] = http_steps

    async def messages(request: web.Request) -> web.Response:
        return await adapter.process(request, bot)

    async def healthz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(docs.ping(), timeout=5)
        except (StoreError, TimeoutError) as exc:
            return web.json_response({"status": "unavailable", "store": str(exc)}, status=503)
        return web.json_response({"status": "ok", "store": settings.store})

    async def sweep_once() -> None:
        if await sweep_lease.take():
            settled = await recovery.sweep()
            if settled:
                log.warning("the sweep settled %d chats a crash had left owing", settled)

    async def every(seconds: float, job: Callable[[], object], what: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.warning("%s failed; trying again in %gs", what, seconds, exc_info=True)

    async def purge() -> None:
        # bounded batches, each its own transaction in the store's writer thread
        for _ in range(100):
            if await docs.purge_expired(500) < 500:
                return
            await asyncio.sleep(0.05)

    async def on_startup(app: web.Application) -> None:
        await docs.open()
        snap = await publish(docs, config)
        log.info("config published", extra={"digest": snap.digest, "source": snap.source})
        await sweep_once()
        log.info("listening", extra={"store": settings.store, "config": settings.config_path,
                                     "instance": owner.name})
        if settings.timer_interval > 0:
            runner.start()
            engine.kick = desk.kick = lambda: _spawn(runner.run_once())
        if settings.sweep_interval > 0:
            loops.append(asyncio.create_task(every(settings.sweep_interval, sweep_once,
                                                   "the delivery sweep")))
        if settings.purge_interval > 0:
            loops.append(asyncio.create_task(every(settings.purge_interval, purge,
                                                   "the expiry purge")))
        loops.extend(telemetry.watch_gauges(config, sessions, desk.agents, clock))
        _quiet_gc()

    async def on_shutdown(app: web.Application) -> None:
        """New turns are refused by now; let what runs (timers, follow-ups) finish."""
        for task in loops:
            task.cancel()
        await runner.stop(grace=settings.shutdown_seconds)
        if _background:
            await asyncio.wait(list(_background), timeout=settings.shutdown_seconds)

    async def on_cleanup(app: web.Application) -> None:
        # each step runs even if one before it fails or shutdown cancels it
        try:
            await runner.stop(grace=0)
        finally:
            try:
                await adapter.outbound.close()
                await http_steps.close()
                if isinstance(adapter, SwitchboardAdapter):
                    await adapter.close_clients()
            finally:
                await docs.close()

    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    # the supervisor console under /console (console/, docs/console.md)
    mount_console(app, settings=settings, config=config, docs=docs, sessions=sessions,
                  routing=routing, owner=owner.name, clock=clock)
    return app


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only this machine can connect."""
    name = host.strip().strip("[]").casefold()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _local_mode_banner(settings: Settings) -> str:
    rule = "=" * 78
    where = f"http://{settings.host}:{settings.port}/api/messages"
    lines = [
        rule,
        "  SWITCHBOARD IS IN LOCAL DEVELOPMENT MODE: REQUESTS ARE NOT AUTHENTICATED",
        "",
        "  MICROSOFT_APP_ID is not set, so the bot accepts any request to",
        f"  {where} without a Bot Framework token: whoever can reach it",
        "  can write to the bot as any guest or agent.",
    ]
    if is_loopback(settings.host):
        lines.append("  It listens on this machine only (loopback).")
    else:
        lines.append(f"  It listens on {settings.host}, beyond this machine, because "
                     "SWITCHBOARD_ALLOW_UNAUTHENTICATED=true.")
    if not settings.console_sign_in:
        lines.append(f"  The supervisor console, http://{settings.host}:{settings.port}/console/,"
                     " needs no sign-in and answers this machine only.")
    lines += [
        "  For Teams, set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD (see README.md).",
        rule,
    ]
    return "\n".join(lines)


def _refuse(*lines: str) -> NoReturn:
    """A mistake in how the bot was started: one line each, exit code 2."""
    for line in lines:
        print(f"switchboard: {line}", file=sys.stderr)
    raise SystemExit(2)


def _listen(settings: Settings) -> socket.socket:
    """The listening socket, bound before anything else happens (nothing is written to the
    store by a bot that cannot serve)."""
    try:
        infos = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        _refuse(f"SWITCHBOARD_HOST={settings.host!r}: not an address this machine has "
                f"({exc.strerror}): use 127.0.0.1, 0.0.0.0 or one of its addresses")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(512)
    except OSError as exc:
        sock.close()
        _refuse(f"SWITCHBOARD_PORT={settings.port}: cannot listen on {settings.host}:"
                f"{settings.port} ({exc.strerror}): another program (another bot?) uses it; "
                f"stop it or choose another port")
    return sock


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        _refuse(*exc.problems)
    configure_logging(settings.log_level)
    telemetry.configure(os.environ, instance=instance_name(settings))
    for line in unknown(dict(os.environ)):
        print(f"switchboard: warning: {line}", file=sys.stderr)
    if not settings.app_id and not is_loopback(settings.host) and (
        not settings.allow_unauthenticated
    ):
        _refuse(
            f"refusing to start: no MICROSOFT_APP_ID (local development mode, "
            f"requests are not authenticated) and SWITCHBOARD_HOST={settings.host} is not a "
            f"loopback address, so anyone who can reach it could write to the bot as anyone. "
            f"Set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD, or listen on 127.0.0.1, or set "
            f"SWITCHBOARD_ALLOW_UNAUTHENTICATED=true if you really mean it."
        )
    try:
        app = create_app(settings)
    except ConfigError as exc:
        _refuse(str(exc))
    sock = _listen(settings)
    if not settings.app_id:
        log.warning(
            "LOCAL DEVELOPMENT MODE: no MICROSOFT_APP_ID, so requests are not authenticated"
        )
        print(_local_mode_banner(settings), file=sys.stderr, flush=True)
    try:
        # SIGTERM (every deploy, every scale-in): stop taking new turns, let those in flight
        # finish with their sends, then exit
        web.run_app(app, sock=sock, print=None, access_log=None,
                    shutdown_timeout=settings.shutdown_seconds)
    except StoreError as exc:
        where = (f"COSMOS_ENDPOINT={settings.cosmos_endpoint}" if settings.store == "cosmos"
                 else f"SWITCHBOARD_DB_PATH={settings.db_path}")
        _refuse(f"{where}: the store cannot be used ({exc}): check it is reachable and that "
                f"the bot may use it (for Cosmos DB: the endpoint, COSMOS_KEY or the managed "
                f"identity's data-plane role)")


if __name__ == "__main__":
    main()
