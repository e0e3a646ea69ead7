"""The tenants' configuration, kept in the store beside the sessions.

Each bot instance publishes the config it loaded at start, so admin tools (and other
instances) can see which departments, pipelines and version are live without the file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from storage.documents import DocumentStore
from storage.models import utcnow

CONFIG = "config"
ACTIVE = "active"


class ConfigSnapshot(BaseModel):
    source: str
    # sha256 of the config as loaded: instances on different versions are easy to spot
    digest: str
    config: dict[str, Any]
    loaded_at: str = Field(default_factory=utcnow)


def snapshot(config: BaseModel) -> ConfigSnapshot:
    data = config.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return ConfigSnapshot(source=str(data.get("source", "")), digest=digest, config=data)


async def publish(docs: DocumentStore, config: BaseModel) -> ConfigSnapshot:
    snap = snapshot(config)
    await docs.upsert(CONFIG, ACTIVE, ACTIVE, {"type": "config", **snap.model_dump()})
    return snap


async def active(docs: DocumentStore) -> ConfigSnapshot | None:
    doc = await docs.read(CONFIG, ACTIVE, ACTIVE)
    return ConfigSnapshot.model_validate(doc.body) if doc else None
