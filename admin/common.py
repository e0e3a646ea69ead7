"""What the command groups share: output helpers, the configured store, the config."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import typer

T = TypeVar("T")

# exit codes: 0 fine, 1 the thing checked is wrong (invalid config, unreachable agents...),
# 2 the command was used wrongly (typer's own usage errors use it too)
OK, PROBLEMS, USAGE = 0, 1, 2


def out(text: str = "") -> None:
    typer.echo(text)


def err(text: str) -> None:
    typer.echo(text, err=True)


def fail(message: str, code: int = PROBLEMS) -> typer.Exit:
    """Print `message` to stderr; raise the returned Exit."""
    err(message)
    return typer.Exit(code)


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def settings():
    """The bot's own settings (`app.Settings`): the same environment variables as the bot."""
    from app import Settings

    return Settings()


def load_config_or_exit(path: str | Path):
    from pipelines.loader import ConfigError, load_config

    try:
        config, _warnings = load_config(path)
    except ConfigError as exc:
        raise fail("\n".join(exc.problems)) from None
    return config


def _is_file(path: str) -> bool:
    return Path(path).is_file()


@contextlib.asynccontextmanager
async def open_store(db_path: str | None = None) -> AsyncIterator[object]:
    """The store the bot is configured with (SWITCHBOARD_STORE, SWITCHBOARD_DB_PATH, COSMOS_*),
    opened for reading. An embedded store file that does not exist is an error, not created."""
    from app import make_store

    config = settings()
    if db_path is not None:
        config = config.model_copy(update={"db_path": db_path})
    if config.store == "embedded" and config.db_path != ":memory:" and not _is_file(
        config.db_path
    ):
        raise fail(
            f"no embedded store at {config.db_path}: set SWITCHBOARD_DB_PATH (or --db) to the "
            f"bot's file, or SWITCHBOARD_STORE=cosmos with COSMOS_ENDPOINT"
        )
    try:
        docs = make_store(config)
    except ValueError as exc:
        raise fail(f"cannot open the store: {exc}") from None
    from storage.documents import StoreError

    try:
        await docs.open()
    except StoreError as exc:
        raise fail(f"cannot open the {config.store} store: {exc}") from None
    try:
        yield docs
    finally:
        await docs.close()
