"""Where every kind of document lives: containers, partition keys, indexes, expiry.

One declaration serves both backends and the deployment: the embedded store creates a table
and one SQLite index per `Index`; Cosmos DB gets the partition key, an indexing policy that
indexes only these fields, and TTL; `infra/cosmos-containers.json` (what the Bicep creates)
is generated from it (`python -m storage.layout`), and a test keeps the two equal.

An `Index` names the equality fields of a query, then the field it sorts or bounds on. Its
`scope` says how much of the partition key the query pins: the whole key (`partition`), the
first level (`prefix`), or nothing (`all`, a cross-partition query). Every query the bot
runs is served by one of these (tests/test_query_plans.py checks SQLite's plans and the
Cosmos policy against the queries a whole scenario makes). An indexed field holds strings
or numbers (a boolean is compared by equality only).
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

Scope = Literal["partition", "prefix", "all"]


@dataclass(frozen=True, slots=True)
class Index:
    fields: tuple[str, ...]
    scope: Scope = "partition"
    # the last field's order (what the query sorts by)
    descending: bool = False
    # the `type` of the documents it serves (its first field is then `type`): the embedded
    # store keeps only those in it, so other documents' writes never touch it
    kind: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.fields[:1] != ("type",):
            raise ValueError(f"an index of one kind starts with `type`: {self.fields}")


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    # the partition key's fields, outermost first (two or three: a hierarchical key)
    keys: tuple[str, ...]
    indexes: tuple[Index, ...] = ()
    # documents may carry `ttl` (seconds): they expire that long after their last write
    ttl: bool = False
    # created only when something opens it (botbuilder `Storage`), not by `open()`
    lazy: bool = False
    # fields indexed for point filters though no declared query sorts on them
    extra_paths: tuple[str, ...] = field(default=())

    def __hash__(self) -> int:
        # the caches below are keyed by container, on every write: hashing every field of a
        # frozen dataclass each time cost more than the write's SQL
        return hash(self.name)

    @property
    def hierarchical(self) -> bool:
        return len(self.keys) > 1

    def paths(self) -> tuple[str, ...]:
        """Every field an index or a query filter uses, in first-seen order."""
        return _paths(self)


@functools.cache
def _paths(container: Container) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for index in container.indexes:
        for name in index.fields:
            seen.setdefault(name)
    for name in container.extra_paths:
        seen.setdefault(name)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class Layout:
    containers: tuple[Container, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.containers]
        if len(set(names)) != len(names):
            raise ValueError(f"container names repeat: {names}")

    def __getitem__(self, name: str) -> Container:
        for container in self.containers:
            if container.name == name:
                return container
        raise ValueError(f"unknown container {name!r}")

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.containers)


TENANT_DATA = "tenant_data"
CONVERSATIONS = "conversations"
AGENTS = "agents"
TIMERS = "timers"
CONFIG = "config"
BOTSTATE = "botstate"
CONSOLE = "console"

LAYOUT = Layout((
    # A department's chats. Each session and its transcript lines (which are also the
    # messages the bot owes, see storage/outbox.py) share the key (tenantId, sessionId): one
    # logical partition per chat, so no department is capped at one partition's 20 GB, a
    # session and its lines still go in one transactional batch, and department-wide
    # queries are targeted by the first level.
    Container(
        TENANT_DATA,
        ("tenantId", "sessionId"),
        indexes=(
            # a session's transcript: the first line, the last N, the lines still owed
            Index(("type", "seq"), kind="transcript"),
            # the waiting list, and admin's / the console's lists of a department's chats
            Index(("type", "state", "phase", "updated_at"), scope="prefix", descending=True,
                  kind="session"),
            Index(("type", "updated_at"), scope="prefix", descending=True, kind="session"),
            # the sweep: sessions with messages owed whose lease has run out, rehomes a
            # crash left half-done; and admin's lists across departments
            Index(("type", "pending", "pending_until"), scope="all", kind="session"),
            Index(("type", "state", "updated_at"), scope="all", descending=True,
                  kind="session"),
            Index(("type", "updated_at"), scope="all", descending=True, kind="session"),
            # FAQ answers' records, for the report
            Index(("type", "at"), scope="prefix", descending=True, kind="faq"),
            Index(("type", "at"), scope="all", descending=True, kind="faq"),
            # the supervisor console's feeds (storage/stats.py): a department's sessions by
            # when they opened and when they closed, and its waits for an agent as they end
            Index(("type", "created_at"), scope="prefix", descending=True, kind="session"),
            Index(("type", "closed_at"), scope="prefix", descending=True, kind="session"),
            Index(("type", "at"), scope="prefix", descending=True, kind="wait"),
        ),
        ttl=True,
    ),
    # conversation -> its live session; ids of agents' activities already handled
    Container(
        CONVERSATIONS,
        ("conversationId",),
        indexes=(Index(("type",)),),
        ttl=True,
    ),
    # one document per agent (the person), across their departments: presence, how to
    # reach them, and their chats, so capacity is checked and reserved in one write
    Container(
        AGENTS,
        ("agentId",),
        indexes=(
            Index(("tenants", "name"), scope="all"),
            # who can take a chat now: a department's or a skill's open seats (published
            # beside each agent record, storage/agents.py), least busy first
            Index(("type", "pool", "load"), scope="all", kind="seat"),
        ),
    ),
    # timers, partitioned by the minute they are due: the poll reads one or two partitions
    Container(
        TIMERS,
        ("bucket",),
        indexes=(
            Index(("due_at",)),
            # a process's first poll: the oldest timer anywhere (then it reads buckets)
            Index(("due_at",), scope="all"),
        ),
        ttl=True,
    ),
    # the tenants' configuration each instance loaded; leases (the sweep)
    Container(CONFIG, ("configId",)),
    # botbuilder Storage (ConversationState, UserState, dialogs)
    Container(BOTSTATE, ("stateKey",), lazy=True),
    # the supervisor console (storage/stats.py, console/): per department (`scope` = its
    # id) one rollup per day, the feeds' cursors and one search digest per closed chat; the
    # console's sign-ins under the scope `signin`
    Container(
        CONSOLE,
        ("scope",),
        indexes=(
            # a department's rollups for a range of days
            Index(("type", "day"), descending=True),
            # a department's chats for search, newest first
            Index(("type", "created_at"), descending=True),
        ),
        ttl=True,
    ),
))


# -- Cosmos DB --------------------------------------------------------------------------


def cosmos_indexing_policy(container: Container) -> dict[str, Any]:
    """Index only what queries use; everything else (card bodies, typed text) is not."""
    included = [{"path": f"/{name}/?"} for name in container.paths()]
    composite = []
    for index in container.indexes:
        if len(index.fields) < 2:
            continue
        order = "descending" if index.descending else "ascending"
        entries = [{"path": f"/{name}", "order": "ascending"} for name in index.fields[:-1]]
        entries.append({"path": f"/{index.fields[-1]}", "order": order})
        if entries not in composite:
            composite.append(entries)
    policy: dict[str, Any] = {
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": included,
        "excludedPaths": [{"path": "/*"}, {"path": '/"_etag"/?'}],
    }
    if composite:
        policy["compositeIndexes"] = composite
    return policy


def cosmos_partition_key(container: Container) -> dict[str, Any]:
    paths = [f"/{name}" for name in container.keys]
    if container.hierarchical:
        return {"paths": paths, "kind": "MultiHash", "version": 2}
    return {"paths": paths, "kind": "Hash", "version": 2}


def cosmos_definitions(layout: Layout = LAYOUT) -> list[dict[str, Any]]:
    """What `infra/cosmos-containers.json` holds: one entry per container the Bicep creates.

    The deployment creates the lazy ones too (botbuilder Storage): with a managed identity
    the bot cannot create containers itself."""
    out = []
    for container in layout.containers:
        entry: dict[str, Any] = {
            "name": container.name,
            "partitionKey": cosmos_partition_key(container),
            "indexingPolicy": cosmos_indexing_policy(container),
        }
        if container.ttl:
            entry["defaultTtl"] = -1
        out.append(entry)
    return out


def main() -> None:
    document = {
        "$comment": "Generated from storage/layout.py by `python -m storage.layout`: do not "
                    "edit by hand (tests/test_query_plans.py checks it is up to date).",
        "containers": cosmos_definitions(),
    }
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
