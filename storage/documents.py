"""The document store: the few primitives both backends share.

Everything Switchboard keeps (sessions, transcripts, the conversation pointer, agents,
timers, config, botbuilder state) is a JSON document in a *container*, under a *partition
key*, with an ETag. The higher layers are written once against these primitives, so the
embedded store and Cosmos DB behave the same and one test suite covers both.

Partition keys: a container's key has one field or, for a hierarchical key, several
(storage/layout.py). A point operation or a batch names the whole key (a string for a
one-field key, a tuple of strings otherwise); a query may name the whole key, a prefix of it
(a department, for `tenant_data`), or nothing (every partition).

Expiry: a body may carry `ttl` (seconds) in a container whose layout allows it; the
document then disappears that long after its last write (Cosmos TTL; the embedded store
hides it at once and `purge_expired` deletes it).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from storage.layout import LAYOUT, Container, Layout

Key = tuple[str, ...]
Partition = str | Sequence[str]


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
    partition: Key
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
    """Async document primitives. Every method is one round trip to the backend.

    Bodies passed in never need to contain `id` or the partition fields: the store adds
    them. Bodies returned contain both, and `_etag`.
    """

    def __init__(self, layout: Layout = LAYOUT) -> None:
        self.layout = layout
        self.stats = OpStats()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create what is missing (database, containers, tables)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    async def open_container(self, container: str) -> None:  # noqa: B027 - optional hook
        """Create a `lazy` container (botbuilder Storage) the first time it is used."""

    async def purge_expired(self, limit: int = 500) -> int:
        """Delete up to `limit` expired documents; how many. Cosmos does it itself (TTL)."""
        return 0

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""

    @abc.abstractmethod
    async def read(self, container: str, partition: Partition, id: str) -> Document | None: ...

    @abc.abstractmethod
    async def create(
        self, container: str, partition: Partition, id: str, body: dict[str, Any]
    ) -> Document:
        """Raise AlreadyExists if the id is taken in that partition."""

    @abc.abstractmethod
    async def replace(
        self,
        container: str,
        partition: Partition,
        id: str,
        body: dict[str, Any],
        if_match: str | None,
    ) -> Document:
        """Raise NotFound, or PreconditionFailed when `if_match` is stale."""

    @abc.abstractmethod
    async def upsert(
        self, container: str, partition: Partition, id: str, body: dict[str, Any]
    ) -> Document: ...

    @abc.abstractmethod
    async def delete(
        self, container: str, partition: Partition, id: str, if_match: str | None = None
    ) -> bool:
        """True if something was deleted; PreconditionFailed when `if_match` is stale."""

    @abc.abstractmethod
    async def query(
        self,
        container: str,
        partition: Partition | None,
        equals: dict[str, Any],
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        at_most: dict[str, Any] | None = None,
        at_least: dict[str, Any] | None = None,
    ) -> list[Document]:
        """Documents whose top-level fields equal `equals`, in the partition (or prefix)
        given; all partitions when None.

        `at_most` adds `field <= value` for each item (ANDed with `equals`), so "what is due
        by now" is one query; `at_least` adds `field >= value`, so a walk of what changed
        since a position reads nothing older. Values are numbers or strings (ISO timestamps
        compare as text); a document whose field is missing, null or of the other type does
        not match. Rows with equal `order_by` values come back in id order.
        """

    @abc.abstractmethod
    async def batch(
        self, container: str, partition: Partition, ops: list[WriteOp]
    ) -> list[Document]:
        """Several writes in one partition in one round trip, all or nothing.

        Raises PreconditionFailed / AlreadyExists / NotFound for the first op that fails;
        then none of the ops has been applied.
        """

    # -- helpers for both backends ------------------------------------------------------

    def container(self, name: str) -> Container:
        return self.layout[name]

    def key(self, container: str, partition: Partition, *, prefix: bool = False) -> Key:
        """The partition as a tuple, checked against the container's key fields."""
        return partition_key(self.layout[container], partition, prefix=prefix)

    def with_keys(
        self, container: str, key: Key, id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The body as stored: our fields plus `id` and the partition fields."""
        out = dict(body)
        out["id"] = id
        for name, value in zip(self.layout[container].keys, key, strict=True):
            out[name] = value
        return out


def partition_key(container: Container, partition: Partition, *, prefix: bool = False) -> Key:
    if isinstance(partition, str):
        key: Key = (partition,)
    elif isinstance(partition, Sequence):
        key = tuple(partition)
    else:
        raise ValueError(f"a partition key is a string or strings, not {partition!r}")
    if not all(isinstance(part, str) and part for part in key):
        raise ValueError(f"partition key parts must be non-empty strings: {partition!r}")
    levels = len(container.keys)
    if len(key) > levels or (len(key) < levels and not prefix) or not key:
        wanted = " and ".join(container.keys)
        raise ValueError(
            f"container {container.name!r} is partitioned by {wanted}: got {list(key)}"
        )
    return key


# a query's range conditions: (field, "<=" or ">=", value)
Bound = tuple[str, str, int | float | str]


def bounds(at_most: dict[str, Any] | None,
           at_least: dict[str, Any] | None = None) -> list[Bound]:
    """`at_most` and `at_least` checked: only numbers and strings have an order both
    backends agree on."""
    out: list[Bound] = []
    for label, op, given in (("at_most", "<=", at_most), ("at_least", ">=", at_least)):
        for name, value in (given or {}).items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (isinstance(value, str) or (number and math.isfinite(value))):
                raise ValueError(f"{label}[{name!r}] must be a number or a string, "
                                 f"not {value!r}")
            out.append((name, op, value))
    return out


def ttl_of(container: Container, body: dict[str, Any]) -> float | None:
    """The body's time to live in seconds, None when it does not expire."""
    ttl = body.get("ttl")
    if ttl is None or ttl == -1:
        return None
    if not container.ttl:
        raise ValueError(f"documents in {container.name!r} do not expire: drop `ttl`")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(f"`ttl` must be a positive whole number of seconds, not {ttl!r}")
    return float(ttl)
