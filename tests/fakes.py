"""In-process fakes for unit tests.

`FakeContext` is a `StageContext` (see `pipelines/actions/base.py`) without an engine, a
store or a channel: it records what an action sends, binds with the real `cards.binding.bind`
and serves the templates the real loader resolved. It mirrors `pipelines.engine.Turn`, so a
test can drive an action through `enter` / `receive` and look at the Outcome and at what the
guest would have seen.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cards.binding import bind
from pipelines.actions import get_action
from pipelines.actions.base import GuestInput, Outcome
from pipelines.config import PipelineConfig, StageConfig, SwitchboardConfig, TenantConfig
from pipelines.loader import load_config
from storage.models import MetadataValue, Session

CONFIGS = Path(__file__).resolve().parent / "configs"

GUEST = {"Guest.Id": "29:guest-1", "Guest.Name": "Ada"}
# what `ctx.now()` answers unless a test says otherwise: a Wednesday, 10:00 UTC
WEDNESDAY_10_UTC = datetime(2026, 1, 21, 10, 0, tzinfo=UTC)


def load_fixture(name: str) -> SwitchboardConfig:
    """A config from `tests/configs/`, which must load without errors or warnings."""
    config, warnings = load_config(CONFIGS / name)
    assert warnings == [], warnings
    return config


class FakeContext:
    """A StageContext that records sent activities as ("card", dict) or ("text", str)."""

    def __init__(
        self,
        config: SwitchboardConfig,
        *,
        tenant_id: str | None = None,
        pipeline_id: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        session_id: str = "s-1",
        use_execute: bool = False,
        now: datetime = WEDNESDAY_10_UTC,
    ) -> None:
        self.config = config
        self.tenant: TenantConfig = config.tenant(tenant_id or config.primary_tenant)
        self.pipeline: PipelineConfig = self.tenant.pipeline(
            pipeline_id or self.tenant.primary_pipeline
        )
        self.session = Session(
            id=session_id,
            tenant_id=self.tenant.id,
            conversation_id="conv-1",
            pipeline_id=self.pipeline.id,
            stage_key=self.pipeline.first.key,
            metadata={**GUEST, "Session.Id": session_id, **(metadata or {})},
        )
        self.replace_card: dict[str, Any] | None = None
        self.use_execute = use_execute
        self.sent: list[tuple[str, Any]] = []
        # the engine's clock, as `now()` sees it: set it to move time
        self.clock: datetime = now
        # what `keep` was given, by name (the engine writes them with the session)
        self.kept: dict[str, dict[str, Any]] = {}
        # what `schedule` was given: kind -> (delay, payload)
        self.scheduled: dict[str, tuple[float, dict[str, Any]]] = {}

    # -- StageContext ----------------------------------------------------------------

    async def send_card(self, card: dict[str, Any]) -> None:
        # a copy: the test must see what was sent, not what an action changed later
        self.sent.append(("card", copy.deepcopy(card)))

    async def send_text(self, text: str) -> None:
        self.sent.append(("text", text))

    def template(self, stage: StageConfig, setting: str) -> dict[str, Any]:
        return self.config.template(self.tenant.id, self.pipeline.id, stage.key, setting)

    def values(self) -> dict[str, Any]:
        return {
            **self.session.metadata,
            "Tenant.Id": self.tenant.id,
            "Tenant.Name": self.tenant.name,
        }

    def bind(self, template: dict[str, Any]) -> dict[str, Any]:
        return bind(template, self.values())

    def bind_text(self, text: str) -> str:
        return bind(text, self.values())

    def set_metadata(self, key: str, value: MetadataValue) -> None:
        self.session.metadata[key] = value

    def now(self) -> datetime:
        return self.clock

    def keep(self, name: str, body: dict[str, Any]) -> None:
        if "type" not in body:
            raise ValueError(f"record {name!r} needs a `type`")
        self.kept[name] = copy.deepcopy(body)

    def schedule(self, kind: str, delay: float, payload: dict[str, Any] | None = None) -> None:
        self.scheduled[kind] = (delay, dict(payload or {}))

    # -- for tests -------------------------------------------------------------------

    @property
    def metadata(self) -> dict[str, MetadataValue]:
        return self.session.metadata

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [item for kind, item in self.sent if kind == "card"]

    @property
    def texts(self) -> list[str]:
        return [item for kind, item in self.sent if kind == "text"]

    def stage(self, key: str) -> StageConfig:
        return self.pipeline.stage(key)

    def clear(self) -> None:
        self.sent.clear()
        self.replace_card = None

    async def enter(self, key: str) -> Outcome:
        """Enter the stage `key` with its own action, as the engine does."""
        stage = self.stage(key)
        self.session.stage_key = key
        return await get_action(stage.action).enter(self, stage)

    async def receive(self, key: str, guest: GuestInput | str) -> Outcome:
        """Deliver the guest's input (typed text, or a GuestInput) to the stage `key`."""
        stage = self.stage(key)
        self.session.stage_key = key
        if isinstance(guest, str):
            guest = GuestInput(text=guest)
        return await get_action(stage.action).receive(self, stage, guest)
