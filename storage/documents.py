"""The document store: the few primitives both backends share.

Everything Switchboard keeps (sessions, transcripts, the conversation pointer, config,
botbuilder state) is a JSON document in a *container*, under a *partition key*, with an
ETag. The higher layers (sessions, rehoming, botbuilder Storage) are written once against
these primitives, so the embedded store and Cosmos DB behave the same and one test suite
covers both.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, Literal

# container name -> the body field that holds its partition key (Cosmos path without "/")
CONTAINERS: dict[str, str] = {
    # sessions, transcript entries, agents: everything a department owns
    "tenant_data": "tenantId",
    # the conversation -> live session pointer
    "conversations": "conversationId",
    # the loaded tenants' configuration
    "config": "configId",
    # botbuilder Storage (ConversationState, UserState, dialogs)
    "botstate": "stateKey",
}


class StoreError(Exception):
    """Base of the errors a backend raises; callers never see backend-specific ones."""


class NotFound(StoreError):
    pass


class AlreadyExists(StoreError):
    pass


class PreconditionFailed(StoreError):
    """The ETag given with If-Match no longer matches: someone else wrote first."""


class StoreUnavailable(StoreError):
    """The backend did not answer (or kept answering 429/503) within the retry budget."""


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    partition: str
    body: dict[str, Any]
    etag: str


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One write in a same-partition batch."""

    kind: Literal["create", "replace", "upsert", "delete"]
    id: str
    body: dict[str, Any] | None = None
    if_match: str | None = None


@dataclass(slots=True)
class OpStats:
    """Round trips and request charge, so the benchmark can print what a turn costs."""

    round_trips: int = 0
    request_charge: float = 0.0
    by_op: dict[str, int] = field(default_factory=dict)

    def record(self, op: str, charge: float = 0.0) -> None:
        self.round_trips += 1
        self.request_charge += charge
        self.by_op[op] = self.by_op.get(op, 0) + 1

    def reset(self) -> None:
        self.round_trips = 0
        self.request_charge = 0.0
        self.by_op.clear()


class DocumentStore(abc.ABC):
    """Async document primitives. `partition` is the value of the container's key field.

    Bodies passed in never need to contain `id` or the partition field: the store adds
    them. Bodies returned contain both. Every method is one round trip to the backend.
    """

    def __init__(self) -> None:
        self.stats = OpStats()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create what is missing (database, containers, tables)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""

    @abc.abstractmethod
    async def read(self, container: str, partition: str, id: str) -> Document | None: ...

    @abc.abstractmethod
    async def create(
        self, container: str, partition: str, id: str, body: dict[str, Any]
    ) -> Document:
        """Raise AlreadyExists if the id is taken in that partition."""

    @abc.abstractmethod
    async def replace(
        self, container: str, partition: str, id: str, body: dict[str, Any], if_match: str | None
    ) -> Document:
        """Raise NotFound, or PreconditionFailed when `if_match` is stale."""

    @abc.abstractmethod
    async def upsert(
        self, container: str, partition: str, id: str, body: dict[str, Any]
    ) -> Document: ...

    @abc.abstractmethod
    async def delete(
        self, container: str, partition: str, id: str, if_match: str | None = None
    ) -> bool:
        """True if something was deleted; PreconditionFailed when `if_match` is stale."""

    @abc.abstractmethod
    async def query(
        self,
        container: str,
        partition: str | None,
        equals: dict[str, Any],
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        at_most: dict[str, Any] | None = None,
    ) -> list[Document]:
        """Documents whose top-level fields equal `equals`; all partitions when None.

        `at_most` adds `field <= value` for each item (ANDed with `equals`), so "what is due
        by now" is one query. Values are numbers or strings (ISO timestamps compare as text);
        a document whose field is missing, null or of the other type does not match.
        """

    @abc.abstractmethod
    async def batch(self, container: str, partition: str, ops: list[WriteOp]) -> list[Document]:
        """Several writes in one partition in one round trip, all or nothing.

        Raises PreconditionFailed / AlreadyExists / NotFound for the first op that fails;
        then none of the ops has been applied.
        """


def bounds(at_most: dict[str, Any] | None) -> dict[str, int | float | str]:
    """`at_most` checked: only numbers and strings have an order both backends agree on."""
    for name, value in (at_most or {}).items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(value, str) or (number and math.isfinite(value))):
            raise ValueError(f"at_most[{name!r}] must be a number or a string, not {value!r}")
    return dict(at_most or {})


def with_keys(container: str, partition: str, id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body as stored: our fields plus `id` and the partition field."""
    out = dict(body)
    out["id"] = id
    out[CONTAINERS[container]] = partition
    return out
