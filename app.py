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
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

from aiohttp import web
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import CallerIdConstants
from botframework.connector.auth import AuthenticationConstants
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bots.adapter import StockAdapter, SwitchboardAdapter, on_turn_error
from bots.agent_desk import AgentDesk
from bots.help_desk_bot import HelpDeskBot
from bots.json_logging import configure as configure_logging
from bots.messenger import LeanChannel, StockChannel
from bots.outbound import Outbound, RateLimiter
from bots.tokens import BotTokenProvider
from pipelines.delivery import Deliverer, Owner
from pipelines.engine import Engine
from pipelines.loader import ConfigError, load_config
from pipelines.recovery import Recovery, SweepLease
from pipelines.routing import Desk, Routing
from storage.agents import AgentStore
from storage.config_store import publish
from storage.documents import DocumentStore, StoreError
from storage.factory import create_store
from storage.models import DEFAULT_RETENTION_DAYS
from storage.sessions import SessionStore
from storage.timers import TimerRunner, TimerStore

log = logging.getLogger("switchboard")

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 256 * 1024

DOCS = web.AppKey("docs", DocumentStore)
SESSIONS = web.AppKey("sessions", SessionStore)
ENGINE = web.AppKey("engine", Engine)
BOT = web.AppKey("bot", HelpDeskBot)
TIMERS = web.AppKey("timers", TimerRunner)
ROUTING = web.AppKey("routing", Routing)
RECOVERY = web.AppKey("recovery", Recovery)
DELIVERER = web.AppKey("deliverer", Deliverer)

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


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every setting is an environment variable (names in `validation_alias`)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # Azure Bot Service registration; empty app id = local development, no auth
    app_id: str = Field("", validation_alias=_env("MICROSOFT_APP_ID", "MicrosoftAppId"))
    app_password: str = Field(
        "", validation_alias=_env("MICROSOFT_APP_PASSWORD", "MicrosoftAppPassword")
    )
    app_type: Literal["MultiTenant", "SingleTenant", "UserAssignedMSI"] = Field(
        "MultiTenant", validation_alias=_env("MICROSOFT_APP_TYPE", "MicrosoftAppType")
    )
    # the Microsoft Entra tenant of a SingleTenant / MSI bot (not a help-desk tenant)
    aad_tenant_id: str = Field(
        "", validation_alias=_env("MICROSOFT_APP_TENANT_ID", "MicrosoftAppTenantId")
    )
    host: str = Field("127.0.0.1", validation_alias=_env("SWITCHBOARD_HOST", "HOST"))
    port: int = Field(3978, validation_alias=_env("SWITCHBOARD_PORT", "PORT"))
    config_path: str = Field(
        str(HERE / "examples" / "helpdesk.yaml"), validation_alias=_env("SWITCHBOARD_CONFIG")
    )
    store: Literal["embedded", "cosmos"] = Field(
        "embedded", validation_alias=_env("SWITCHBOARD_STORE")
    )
    db_path: str = Field(
        str(HERE / "data" / "switchboard.sqlite3"), validation_alias=_env("SWITCHBOARD_DB_PATH")
    )
    cosmos_endpoint: str = Field("", validation_alias=_env("COSMOS_ENDPOINT"))
    cosmos_database: str = Field("switchboard", validation_alias=_env("COSMOS_DATABASE"))
    cosmos_key: str = Field("", validation_alias=_env("COSMOS_KEY"))
    cosmos_verify: bool = Field(True, validation_alias=_env("COSMOS_VERIFY_TLS"))
    # where Cosmos throughput is set: shared by the database, per container, or not here
    # (serverless accounts, or containers made by infra/)
    cosmos_throughput: Literal["database", "container", "none"] = Field(
        "database", validation_alias=_env("COSMOS_THROUGHPUT")
    )
    cosmos_autoscale_max: int = Field(
        1000, ge=1000, multiple_of=1000, validation_alias=_env("COSMOS_AUTOSCALE_MAX")
    )
    # closed chats, their transcripts, de-duplication records: kept this long, then expire
    retention_days: float = Field(
        DEFAULT_RETENTION_DAYS, gt=0, le=3650, validation_alias=_env("SWITCHBOARD_RETENTION_DAYS")
    )
    # how often the embedded store deletes what expired (seconds; Cosmos does it itself)
    purge_interval: float = Field(
        300.0, ge=0, validation_alias=_env("SWITCHBOARD_PURGE_INTERVAL")
    )
    # this instance's name: the same across restarts (a restarted instance knows that what
    # its previous process was sending died with it); default: App Service's or Container
    # Apps' instance name, else host:port
    instance_name: str = Field("", validation_alias=_env("SWITCHBOARD_INSTANCE"))
    # how long a message's sender holds it before another instance may deliver it
    delivery_lease_seconds: float = Field(
        60.0, ge=5, le=3600, validation_alias=_env("SWITCHBOARD_DELIVERY_LEASE_SECONDS")
    )
    # how often one instance sweeps for messages owed and transfers left half-done
    # (seconds); 0 = only at start
    sweep_interval: float = Field(15.0, ge=0, validation_alias=_env("SWITCHBOARD_SWEEP_INTERVAL"))
    # on SIGTERM: how long turns in flight may take to finish their sends
    shutdown_seconds: float = Field(
        30.0, ge=0, validation_alias=_env("SWITCHBOARD_SHUTDOWN_SECONDS")
    )
    # send Action.Execute (Universal Actions) buttons instead of Action.Submit
    use_execute: bool = Field(False, validation_alias=_env("SWITCHBOARD_USE_EXECUTE"))
    # Accept buttons on agents' offer cards as Action.Execute (Universal Actions)
    offer_execute: bool = Field(True, validation_alias=_env("SWITCHBOARD_OFFER_EXECUTE"))
    # how often this instance looks for due timers (seconds); 0 = only when asked (tests)
    timer_interval: float = Field(1.0, ge=0, validation_alias=_env("SWITCHBOARD_TIMER_INTERVAL"))
    # outgoing messages: Teams' published limits, and how long a send may keep retrying
    sends_per_conversation: float = Field(
        7.0, gt=0, validation_alias=_env("SWITCHBOARD_SENDS_PER_CONVERSATION")
    )
    sends_per_app: float = Field(50.0, gt=0, validation_alias=_env("SWITCHBOARD_SENDS_PER_APP"))
    send_retry_seconds: float = Field(
        30.0, ge=0, validation_alias=_env("SWITCHBOARD_SEND_RETRY_SECONDS")
    )
    # where the bot gets its outgoing token (default: Microsoft's login for its app type)
    login_url: str | None = Field(
        None, validation_alias=_env("TO_CHANNEL_FROM_BOT_LOGIN_URL")
    )
    # false: botbuilder's turn exactly as shipped (for comparison; slower, no send limiter)
    lean_adapter: bool = Field(True, validation_alias=_env("SWITCHBOARD_LEAN_ADAPTER"))
    log_level: str = Field("INFO", validation_alias=_env("SWITCHBOARD_LOG_LEVEL"))
    # with no app id (no authentication), listen beyond loopback anyway
    allow_unauthenticated: bool = Field(
        False, validation_alias=_env("SWITCHBOARD_ALLOW_UNAUTHENTICATED")
    )
    # where the adapter fetches the keys that sign Bot Framework tokens (tests use loopback)
    openid_metadata_url: str | None = Field(
        None, validation_alias=_env("TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL")
    )
    token_issuer: str | None = Field(
        None, validation_alias=_env("TO_BOT_FROM_CHANNEL_TOKEN_ISSUER")
    )


def _bot_auth(settings: Settings) -> ConfigurationBotFrameworkAuthentication:
    config = SimpleNamespace(
        APP_ID=settings.app_id,
        APP_PASSWORD=settings.app_password,
        APP_TYPE=settings.app_type,
        APP_TENANTID=settings.aad_tenant_id,
    )
    overrides = {
        "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": settings.openid_metadata_url,
        "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": settings.token_issuer,
        "TO_CHANNEL_FROM_BOT_LOGIN_URL": settings.login_url,
    }
    if any(overrides.values()):
        # with any of these set botbuilder uses only what it is given (an unset issuer would
        # refuse every token): the others keep the public cloud's values
        for name, default in _PUBLIC_CLOUD.items():
            setattr(config, name, overrides.get(name) or default)
    return ConfigurationBotFrameworkAuthentication(config)


_PUBLIC_CLOUD = {
    "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL":
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
    "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
    "TO_CHANNEL_FROM_BOT_LOGIN_URL": AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX,
    "TO_CHANNEL_FROM_BOT_OAUTH_SCOPE": AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
    "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL":
        AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
    "OAUTH_URL": AuthenticationConstants.OAUTH_URL,
    "CALLER_ID": CallerIdConstants.public_azure_channel,
}


def make_store(settings: Settings) -> DocumentStore:
    return create_store(
        settings.store,
        db_path=settings.db_path,
        cosmos_endpoint=settings.cosmos_endpoint or None,
        cosmos_database=settings.cosmos_database,
        cosmos_key=settings.cosmos_key or None,
        cosmos_verify=settings.cosmos_verify,
        cosmos_throughput=settings.cosmos_throughput,
        cosmos_autoscale_max=settings.cosmos_autoscale_max,
    )


def instance_name(settings: Settings) -> str:
    """A name that survives a restart of this instance (not of another one)."""
    for name in (settings.instance_name, os.environ.get("WEBSITE_INSTANCE_ID"),
                 os.environ.get("CONTAINER_APP_REPLICA_NAME")):
        if name:
            return name.replace("/", "_")
    return f"{socket.gethostname()}:{settings.port}"


def create_app(
    settings: Settings | None = None,
    docs: DocumentStore | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The aiohttp app. Raises ConfigError before serving if the config is wrong."""
    settings = settings or Settings()
    config, _warnings = load_config(settings.config_path)
    docs = docs or make_store(settings)
    lease = settings.delivery_lease_seconds
    sessions = SessionStore(docs, clock=clock, lease_seconds=lease,
                            retention_days=settings.retention_days)
    adapter_class = SwitchboardAdapter if settings.lean_adapter else StockAdapter
    adapter = adapter_class(_bot_auth(settings))
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
    owner = Owner(instance_name(settings), uuid.uuid4().hex[:12])
    deliverer = Deliverer(sessions, channel, owner, clock=clock, lease_seconds=lease)
    timers = TimerStore(docs, owner=owner.name, clock=clock)
    engine = Engine(config, sessions, use_execute=settings.use_execute, clock=clock,
                    deliverer=deliverer, timers=timers)
    desk = Desk(engine, sessions, AgentStore(docs), timers, clock=clock,
                use_execute=settings.offer_execute)
    routing = Routing(desk)
    engine.routing = routing
    runner = TimerRunner(timers, routing.on_timer, interval=settings.timer_interval or 1.0)
    recovery = Recovery(engine, deliverer, clock=clock)
    sweep_lease = SweepLease(docs, owner.name, seconds=max(5.0, settings.sweep_interval * 2),
                             clock=clock)
    bot = HelpDeskBot(engine, sessions, recovery, AgentDesk(routing))
    loops: list[asyncio.Task] = []

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[DOCS] = docs
    app[SESSIONS] = sessions
    app[ENGINE] = engine
    app[BOT] = bot
    app[TIMERS] = runner
    app[ROUTING] = routing
    app[RECOVERY] = recovery
    app[DELIVERER] = deliverer

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
        if settings.timer_interval > 0:
            runner.start()
            engine.kick = desk.kick = lambda: _spawn(runner.run_once())
        if settings.sweep_interval > 0:
            loops.append(asyncio.create_task(every(settings.sweep_interval, sweep_once,
                                                   "the delivery sweep")))
        if settings.purge_interval > 0:
            loops.append(asyncio.create_task(every(settings.purge_interval, purge,
                                                   "the expiry purge")))
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
                if isinstance(adapter, SwitchboardAdapter):
                    await adapter.close_clients()
            finally:
                await docs.close()

    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
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
    lines += [
        "  For Teams, set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD (see README.md).",
        rule,
    ]
    return "\n".join(lines)


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    if not settings.app_id and not is_loopback(settings.host) and (
        not settings.allow_unauthenticated
    ):
        print(
            f"switchboard: refusing to start: no MICROSOFT_APP_ID (local development mode, "
            f"requests are not authenticated) and SWITCHBOARD_HOST={settings.host} is not a "
            f"loopback address, so anyone who can reach it could write to the bot as anyone. "
            f"Set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD, or listen on 127.0.0.1, or set "
            f"SWITCHBOARD_ALLOW_UNAUTHENTICATED=true if you really mean it.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if not settings.app_id:
        log.warning(
            "LOCAL DEVELOPMENT MODE: no MICROSOFT_APP_ID, so requests are not authenticated"
        )
        print(_local_mode_banner(settings), file=sys.stderr, flush=True)
    log.info(
        "listening",
        extra={"url": f"http://{settings.host}:{settings.port}/api/messages",
               "store": settings.store, "config": settings.config_path},
    )
    # SIGTERM (every deploy, every scale-in): stop taking new turns, let those in flight
    # finish with their sends, then exit
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None,
                shutdown_timeout=settings.shutdown_seconds)


if __name__ == "__main__":
    main()
