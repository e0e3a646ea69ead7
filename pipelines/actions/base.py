"""The one small interface every pipeline action implements.

An action gets a `StageContext` (the session, the config, a way to send cards and to bind
templates) and answers with an `Outcome`: wait for the guest, go to another stage, close
the session, or transfer it. The engine does the rest (persisting, transfers, hop limits),
so an action module holds only its own settings model and behaviour.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pipelines.config import StageConfig
from storage.models import MetadataValue, Session, SessionState

if TYPE_CHECKING:
    from pipelines.config import PipelineConfig, SwitchboardConfig, TenantConfig
    from pipelines.routing.protocols import RoutingService


@dataclass(frozen=True, slots=True)
class GuestInput:
    """What the guest sent: typed text, or a card submit (Action.Submit / Action.Execute)."""

    text: str | None = None
    # the card's inputs and data, as the channel delivered them
    value: dict[str, Any] | None = None
    # from the card's `switchboard` data: what the button meant, and for which stage
    verb: str | None = None
    session_id: str | None = None
    stage_key: str | None = None
    choice: str | None = None
    # True for Action.Execute: the reply may replace the pressed card
    invoke: bool = False
    # the channel's id of the activity: a redelivery carries the same one
    activity_id: str | None = None

    @property
    def answer(self) -> str | None:
        if self.value is not None and "answer" in self.value:
            raw = self.value["answer"]
            return raw.strip() if isinstance(raw, str) else None
        return self.text


@dataclass(frozen=True, slots=True)
class Wait:
    """Stay on this stage until the guest answers."""


@dataclass(frozen=True, slots=True)
class Goto:
    key: str


@dataclass(frozen=True, slots=True)
class Close:
    state: SessionState
    card: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    tenant_id: str
    # the stage setting whose resolved template is the transfer card
    template_setting: str = "template"
    # where to go when the hop limit stops the transfer (None: close the session)
    on_hop_limit: str | None = None
    # an agent's transfer: the target tenant's transfer template, and who sent it
    template: dict[str, Any] | None = None
    by: str = "pipeline"
    by_name: str | None = None
    # where the chat starts in the target (default: its primary pipeline's first stage); a
    # warm transfer lands on a live-agent stage (pipelines/routing/consult.py)
    pipeline_id: str | None = None
    stage_key: str | None = None


Outcome = Wait | Goto | Close | Transfer


class StageContext(Protocol):
    session: Session
    config: SwitchboardConfig
    tenant: TenantConfig
    pipeline: PipelineConfig
    # set by an action answering an Action.Execute: the card that replaces the pressed one
    replace_card: dict[str, Any] | None
    use_execute: bool

    async def send_card(self, card: dict[str, Any]) -> None: ...

    async def send_text(self, text: str) -> None: ...

    def template(self, stage: StageConfig, setting: str) -> dict[str, Any]:
        """The stage's resolved (not yet bound) template for `setting`."""
        ...

    def bind(self, template: dict[str, Any]) -> dict[str, Any]: ...

    def bind_text(self, text: str) -> str: ...

    def set_metadata(self, key: str, value: MetadataValue) -> None: ...

    def keep(self, name: str, body: dict[str, Any]) -> None:
        """Keep a record of this session's (its `type` in `body`: an FAQ answer, say) in the
        turn's one write, for as long as the transcript; the same `name` replaces it."""
        ...

    def after_persist(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` once the session write of this turn has succeeded (e.g. notify an agent)."""
        ...

    def schedule(self, kind: str, delay: float, payload: dict[str, Any] | None = None) -> None:
        """A timer this session wants (one per kind), written before the session in this
        turn; it fires `delay` seconds later, also after a crash (storage/timers.py)."""
        ...

    @property
    def routing(self) -> RoutingService:
        """Live-agent routing, as a stage sees it (pipelines/routing/protocols.py)."""
        ...

    def now(self) -> datetime:
        """The current time (UTC, aware), from the engine's injectable clock."""
        ...


S = TypeVar("S", bound=StageConfig)


@dataclass
class LoadCheck:
    """What an action's `check` may look at when the config loads."""

    config: SwitchboardConfig
    tenant: TenantConfig
    pipeline: PipelineConfig
    # tenants that failed to load: their own errors are reported, references are not
    broken_tenants: frozenset[str] = frozenset()


class Action(abc.ABC, Generic[S]):
    name: ClassVar[str]
    settings: ClassVar[type[StageConfig]]

    @abc.abstractmethod
    async def enter(self, ctx: StageContext, stage: S) -> Outcome:
        """The session arrives at the stage."""

    async def receive(self, ctx: StageContext, stage: S, guest: GuestInput) -> Outcome:
        """The guest answered while the session waits on this stage."""
        return await self.enter(ctx, stage)

    def check(self, stage: S, load: LoadCheck) -> list[str]:
        """Extra load-time checks that need the whole config (e.g. a target tenant)."""
        return []
