"""Build the configured store: the embedded file by default, Cosmos DB by one setting."""

from __future__ import annotations

from typing import Literal

from storage.documents import DocumentStore


def create_store(
    kind: Literal["embedded", "cosmos"],
    *,
    db_path: str = "data/switchboard.sqlite3",
    cosmos_endpoint: str | None = None,
    cosmos_database: str = "switchboard",
    cosmos_key: str | None = None,
    cosmos_verify: bool = True,
    cosmos_throughput: Literal["database", "container", "none"] = "database",
    cosmos_autoscale_max: int = 1000,
    cosmos_retry_seconds: float = 30.0,
) -> DocumentStore:
    if kind == "embedded":
        from storage.embedded import EmbeddedStore

        return EmbeddedStore(db_path)
    if kind == "cosmos":
        if not cosmos_endpoint:
            raise ValueError("SWITCHBOARD_STORE=cosmos needs COSMOS_ENDPOINT")
        from storage.cosmos import CosmosStore

        return CosmosStore(
            cosmos_endpoint,
            cosmos_database,
            key=cosmos_key or None,
            connection_verify=cosmos_verify,
            throughput=cosmos_throughput,
            autoscale_max=cosmos_autoscale_max,
            max_retry_seconds=cosmos_retry_seconds,
        )
    raise ValueError(f"unknown store {kind!r}: use embedded or cosmos")
