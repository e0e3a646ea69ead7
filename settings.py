"""Switchboard's settings: every one an environment variable, checked at start.

A mistake in them (a port that is not a number, a store that does not exist, Cosmos without
an endpoint...) is reported before anything starts, one line per mistake naming the
variable, what is wrong and the fix (`SettingsError`; the bot exits with code 2).
"""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.documents import DocumentStore
from storage.factory import create_store
from storage.models import DEFAULT_RETENTION_DAYS
from telemetry.config import problems as telemetry_problems

HERE = Path(__file__).resolve().parent


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
    # how long one store call may keep retrying Cosmos's 429s and 503s (seconds)
    cosmos_retry_seconds: float = Field(
        30.0, gt=0, le=600, validation_alias=_env("COSMOS_RETRY_SECONDS")
    )
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
    # -- the supervisor console (console/, docs/console.md) --
    # the Entra app supervisors sign in with (default: the bot's MICROSOFT_APP_ID and
    # password); neither set = local development: open to this machine only
    console_client_id: str = Field("", validation_alias=_env("SWITCHBOARD_CONSOLE_CLIENT_ID"))
    console_client_secret: str = Field(
        "", validation_alias=_env("SWITCHBOARD_CONSOLE_CLIENT_SECRET"))
    # where they sign in (default: https://login.microsoftonline.com/ and the bot's Entra
    # tenant, or `organizations`)
    console_authority: str = Field("", validation_alias=_env("SWITCHBOARD_CONSOLE_AUTHORITY"))
    # the console's public address, for Entra's redirect (https://bot.example.com)
    console_url: str = Field("", validation_alias=_env("SWITCHBOARD_CONSOLE_URL"))
    # the key that signs the console's cookies (the same on every instance)
    console_secret: str = Field("", validation_alias=_env("SWITCHBOARD_CONSOLE_SECRET"))
    console_session_hours: float = Field(
        8.0, gt=0, le=24 * 30, validation_alias=_env("SWITCHBOARD_CONSOLE_SESSION_HOURS"))
    # how often the live view is recomputed while a console is open (seconds)
    console_refresh: float = Field(
        2.0, ge=0.2, le=60, validation_alias=_env("SWITCHBOARD_CONSOLE_REFRESH"))
    # how often the figures are folded from the store's feeds (seconds; 0 = only at start)
    console_fold_interval: float = Field(
        10.0, ge=0, validation_alias=_env("SWITCHBOARD_CONSOLE_FOLD_INTERVAL"))
    # how far behind now the fold stays, for writes still landing (seconds)
    console_fold_lag: float = Field(
        60.0, ge=0, le=3600, validation_alias=_env("SWITCHBOARD_CONSOLE_FOLD_LAG"))
    # a guest silent this long in a pipeline is no longer shown as in it (minutes)
    console_idle_minutes: float = Field(
        30.0, gt=0, validation_alias=_env("SWITCHBOARD_CONSOLE_IDLE_MINUTES"))

    @property
    def console_sign_in(self) -> bool:
        """Supervisors sign in with Entra ID (else: local development mode)."""
        return bool(self.console_client_id or self.app_id)

    @property
    def console_asked(self) -> bool:
        """A console setting is set: the console is meant to be used, so it must be whole."""
        return bool(self.console_client_id or self.console_url or self.console_secret
                    or self.console_authority or self.console_client_secret)


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
        cosmos_retry_seconds=settings.cosmos_retry_seconds,
    )


def instance_name(settings: Settings) -> str:
    """A name that survives a restart of this instance (not of another one)."""
    for name in (settings.instance_name, os.environ.get("WEBSITE_INSTANCE_ID"),
                 os.environ.get("CONTAINER_APP_REPLICA_NAME")):
        if name:
            return name.replace("/", "_")
    return f"{socket.gethostname()}:{settings.port}"




class SettingsError(Exception):
    """What is wrong with the settings: one line per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def variable(field: str) -> str:
    """The environment variable a field is read from (its first name)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias or field).upper()


_KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _fix(field: str) -> str:
    info = Settings.model_fields[field]
    annotation = info.annotation
    choices = getattr(annotation, "__args__", None)
    if getattr(annotation, "__origin__", None) is Literal and choices:
        return "use " + " or ".join(repr(c) for c in choices)
    limits = []
    for meta in info.metadata:
        for name, word in (("ge", "at least"), ("gt", "more than"), ("le", "at most"),
                           ("lt", "less than"), ("multiple_of", "a multiple of")):
            if getattr(meta, name, None) is not None:
                limits.append(f"{word} {getattr(meta, name)}")
    kind = _KINDS.get(annotation, "a value")  # type: ignore[arg-type]
    return f"use {kind}" + (f", {', '.join(limits)}" if limits else "") + (
        f" (default {info.default!r})" if info.default not in (None, "") else "")


def _field_of(name: str) -> str | None:
    """The field an environment variable (or a field name) sets."""
    if name in Settings.model_fields:
        return name
    for field, info in Settings.model_fields.items():
        if name in getattr(info.validation_alias, "choices", ()):
            return field
    return None


def explain(error: ValidationError) -> list[str]:
    lines = []
    for problem in error.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        field = _field_of(name)
        message = problem["msg"][:1].lower() + problem["msg"][1:]
        if field is None:
            lines.append(f"{name or 'a setting'}: {message}")
            continue
        value = problem.get("input")
        lines.append(f"{name}={value!r}: {message}: {_fix(field)}")
    return lines


def check(settings: Settings) -> list[str]:
    """Mistakes no single setting shows: what a choice needs."""
    problems = []
    if settings.store == "cosmos" and not settings.cosmos_endpoint:
        problems.append("COSMOS_ENDPOINT is not set, and SWITCHBOARD_STORE=cosmos needs it: "
                        "set it to the account's URI (https://<account>.documents.azure.com"
                        ":443/), or use SWITCHBOARD_STORE=embedded")
    if settings.cosmos_endpoint and not settings.cosmos_endpoint.startswith(
            ("https://", "http://")):
        problems.append(f"COSMOS_ENDPOINT={settings.cosmos_endpoint!r}: not a URL: set it to "
                        f"https://<account>.documents.azure.com:443/")
    if settings.app_type == "SingleTenant" and not settings.aad_tenant_id:
        problems.append("MICROSOFT_APP_TENANT_ID is not set, and MICROSOFT_APP_TYPE="
                        "SingleTenant needs it: set it to your Entra tenant's id")
    if settings.app_type in ("MultiTenant", "SingleTenant") and settings.app_id and (
            not settings.app_password):
        problems.append(f"MICROSOFT_APP_PASSWORD is not set, and MICROSOFT_APP_TYPE="
                        f"{settings.app_type} with an app id needs it: set the app's client "
                        f"secret, or use MICROSOFT_APP_TYPE=UserAssignedMSI")
    if not 0 < settings.port < 65536:
        problems.append(f"SWITCHBOARD_PORT={settings.port}: not a port: use 1 to 65535")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        problems.append(f"SWITCHBOARD_LOG_LEVEL={settings.log_level!r}: not a level: use "
                        f"DEBUG, INFO, WARNING or ERROR")
    problems += console_problems(settings)
    if not Path(settings.config_path).is_file():
        problems.append(f"SWITCHBOARD_CONFIG={settings.config_path!r}: no such file: point it "
                        f"at the tenants' configuration (YAML or JSON)")
    return problems


def console_problems(settings: Settings) -> list[str]:
    """What the console's sign-in needs, when a console setting says it is wanted (a bot
    with an app id and no console settings runs with its console off)."""
    if not settings.console_sign_in or not settings.console_asked:
        return []
    problems = []
    if not (settings.console_client_secret or settings.app_password):
        problems.append("SWITCHBOARD_CONSOLE_CLIENT_SECRET is not set, and the console's "
                        "sign-in needs the Entra app's client secret: set it (or "
                        "MICROSOFT_APP_PASSWORD when the console uses the bot's app)")
    url = settings.console_url
    if not url.startswith("https://") and not url.startswith(("http://127.0.0.1",
                                                              "http://localhost")):
        problems.append(f"SWITCHBOARD_CONSOLE_URL={url!r}: the console's sign-in needs its "
                        f"public https address, like https://bot.example.com (Entra "
                        f"redirects supervisors to <it>/console/auth/callback)")
    if len(settings.console_secret) < 32:
        problems.append("SWITCHBOARD_CONSOLE_SECRET is not set or shorter than 32 characters: "
                        "set it to a long random text, the same on every instance (it signs "
                        "the console's cookies), e.g. `python -c \"import secrets; "
                        "print(secrets.token_urlsafe(48))\"`")
    return problems


def unknown(environ: dict[str, str]) -> list[str]:
    """SWITCHBOARD_* variables that are no setting (a typo, most likely)."""
    known = {name for field in Settings.model_fields
             for name in getattr(Settings.model_fields[field].validation_alias, "choices", [])}
    out = []
    for name in sorted(environ):
        if name.startswith("SWITCHBOARD_") and name not in known:
            guess = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            out.append(f"{name} is not a setting{hint}: it is ignored")
    return out


def load() -> Settings:
    """The settings from the environment, or SettingsError listing every mistake."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SettingsError(explain(exc)) from None
    problems = check(settings) + telemetry_problems(os.environ)
    if problems:
        raise SettingsError(problems)
    return settings
