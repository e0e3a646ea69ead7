"""The small typed interfaces between the engine, the actions and live-agent routing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pipelines.actions.base import GuestInput
    from pipelines.config import StageConfig
    from pipelines.engine import Turn


class RoutingService(Protocol):
    """What a pipeline stage (connect_to_agent) asks of routing, inside the guest's turn.

    Each call records into the turn (session changes, lines, messages owed, timers): nothing
    is sent or written before the turn's one write.
    """

    async def start(self, turn: Turn, stage: StageConfig) -> None:
        """The guest starts waiting: the waiting card, the search's timers."""

    async def relay_from_guest(self, turn: Turn, guest: GuestInput) -> None:
        """The guest wrote while connected: a message owed to their agent."""

    async def guest_leaves(self, turn: Turn, stage: StageConfig) -> None:
        """The guest cancelled (or left) while waiting or connected."""
