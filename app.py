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
from typing import Literal

from aiohttp import web
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bots.adapter import StockAdapter, SwitchboardAdapter, on_turn_error
from bots.agent_desk import AgentDesk
from bots.authentication import bot_auth
from bots.help_desk_bot import HelpDeskBot
from bots.json_logging import configure as configure_logging
from bots.messenger import Messenger
from bots.outbound import Outbound, RateLimiter
from bots.tokens import BotTokenProvider
from pipelines.engine import Engine
from pipelines.loader import ConfigError, load_config
from pipelines.routing import Routing
from storage.agents import AgentStore
from storage.config_store import publish
from storage.documents import DocumentStore, StoreError
from storage.factory import create_store
from storage.rehome import recover_transfers
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


def make_store(settings: Settings) -> DocumentStore:
    return create_store(
        settings.store,
        db_path=settings.db_path,
        cosmos_endpoint=settings.cosmos_endpoint or None,
        cosmos_database=settings.cosmos_database,
        cosmos_key=settings.cosmos_key or None,
        cosmos_verify=settings.cosmos_verify,
    )


def create_app(
    settings: Settings | None = None,
    docs: DocumentStore | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The aiohttp app. Raises ConfigError before serving if the config is wrong."""
    settings = settings or Settings()
    config, _warnings = load_config(settings.config_path)
    docs = docs or make_store(settings)
    sessions = SessionStore(docs)
    engine = Engine(config, sessions, use_execute=settings.use_execute, clock=clock)
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
    timers = TimerStore(docs, owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                        clock=clock)
    routing = Routing(
        engine, sessions, AgentStore(docs), timers, Messenger(adapter, settings.app_id),
        clock=clock, use_execute=settings.offer_execute,
    )
    engine.routing = routing
    runner = TimerRunner(timers, routing.on_timer, interval=settings.timer_interval or 1.0)
    bot = HelpDeskBot(engine, sessions, AgentDesk(routing))

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[DOCS] = docs
    app[SESSIONS] = sessions
    app[ENGINE] = engine
    app[BOT] = bot
    app[TIMERS] = runner
    app[ROUTING] = routing

    async def messages(request: web.Request) -> web.Response:
        return await adapter.process(request, bot)

    async def healthz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(docs.ping(), timeout=5)
        except (StoreError, TimeoutError) as exc:
            return web.json_response({"status": "unavailable", "store": str(exc)}, status=503)
        return web.json_response({"status": "ok", "store": settings.store})

    async def on_startup(app: web.Application) -> None:
        await docs.open()
        snap = await publish(docs, config)
        log.info("config published", extra={"digest": snap.digest, "source": snap.source})
        recovered = await recover_transfers(sessions)
        if recovered:
            log.warning("finished %d transfers a crash had left half-done", len(recovered))
        if settings.timer_interval > 0:
            runner.start()
            routing.kick = lambda: _spawn(runner.run_once())
        _quiet_gc()

    async def on_cleanup(app: web.Application) -> None:
        # each step runs even if one before it fails or shutdown cancels it
        try:
            await runner.stop()
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
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
