"""The Azure Cosmos DB store, on the `azure-cosmos` async client.

The engine users move to when one machine is not enough: several bot instances behind a load
balancer share one account. It behaves as the embedded store does (same primitives, errors,
body shape, ETag rules), so the layers above are written once and one test suite covers both.

Layout: one database, one container per entry of storage/layout.py (optionally with a name
prefix, so several deployments can share a database), each with its partition key
(hierarchical for `tenant_data`: `/tenantId`, then `/sessionId`), an indexing policy that
indexes only the fields queries use, and TTL on where documents expire. `open()` creates
what is missing, except `lazy` containers (botbuilder Storage), created when first opened.
Throughput is a setting: autoscale shared by the database (`throughput="database"`), autoscale
per container (`"container"`), or none set here (`"none"`: serverless accounts, or containers
created beforehand). With Entra ID (no key) the data-plane roles cannot create databases or
containers: create them beforehand (infra/ Bicep, which reads the same layout), and `open()`
only checks that they exist with the right partition key; an indexing policy that differs
is logged as a warning (it still works, at a higher cost).

Errors: 404 -> NotFound (a read answers None, a delete False), 409 -> AlreadyExists,
412 -> PreconditionFailed; anything else, an unreachable endpoint, a credential that cannot get
a token, or 429/503 that outlast the retry budget -> StoreUnavailable. No SDK exception leaves
this module. A 404 whose sub-status says the *database or container* is missing (1003) is
StoreUnavailable too, never "no such item".

Retries (429, 503, dropped connections) are the SDK's own, bounded by `max_retry_seconds`:
- 429 (throttled): the SDK's throttle policy (`RetryOptions`) waits what the service asks
  (x-ms-retry-after-ms) and retries while its cumulative wait stays under
  `retry_throttle_backoff_max`; we set that to `max_retry_seconds`, and allow enough attempts
  (`retry_throttle_total`, one per 10 ms of budget) that time, not a count, ends it.
- 503, 500, 408 and connection errors: the SDK retries on the next region (once on the same
  one for a single-region account) after 500 ms.
- Every call passes the SDK's absolute `timeout=max_retry_seconds`, which spans all the retries
  of that call: past it the SDK raises CosmosClientTimeoutError -> StoreUnavailable. The SDK
  looks at that clock only between attempts, so a Retry-After longer than what is left would
  overrun it: a hard `asyncio.timeout` one second later cancels the call in that case.
  So no call takes longer than `max_retry_seconds` + 1 s, whatever the service does.

Request charge: every primitive records one entry in `self.stats` (`stats.record(op, charge)`),
with `charge` the sum of the `x-ms-request-charge` headers of all the HTTP responses that call
caused (retries and the SDK's metadata look-ups included). It is collected with a per-call
`raw_response_hook`, not from `client_connection.last_response_headers`, which concurrent calls
share and overwrite.

Queries are parameterized (`SELECT [TOP n] * FROM c WHERE c["f"] = @p0 ... AND c["g"] <= @p1
ORDER BY c["f"]`); when a composite index of the layout covers the equality fields and the
sort field, the ORDER BY names them all, so Cosmos serves it from that index.
Field names must be plain identifiers (letters, digits, `_`), as in the embedded store; the
bracket form also allows the SQL keywords (`value`, `order`, ...) as field names. With a
partition (or a prefix of a hierarchical key) the query is scoped by `partition_key=` *and*
by `c["<field>"] = @pk0 ...` in the WHERE clause: the first routes it to one partition (or
the partitions of the prefix) on real Cosmos, the second makes it correct on a server that
ignores the first (the local test server does). Rows with equal sort values come back sorted
by id in the query's direction, as in the embedded store, except that with `limit` which of
several tied rows at the cut are returned is Cosmos's choice.

Transactional batch (`execute_item_batch`, one partition, at most 100 operations, all or
nothing on real Cosmos). A failed batch raises the error of its failing operation
(409/412/404 -> AlreadyExists/PreconditionFailed/NotFound). One difference is smoothed over: the
embedded store treats deleting a missing item without If-Match as a no-op, Cosmos fails the
whole batch with 404. When the failing operation is such a delete, the batch is sent again
without it (nothing was applied, the batch being atomic), so the outcome is the one the
embedded store gives.

The local test server (`@vercel/cosmosdb-server`, see scripts/cosmos_server.mjs and
tests/fixtures/cosmos.py) differs from real Cosmos in ways this module does not lean on:
- Reading a missing item: the package answers 500, which the SDK retries as a server fault
  (about 0.5 s per missing read) before raising. Nothing here treats a 500 as "missing": real
  Cosmos answers 404, and a real 500 is a fault (StoreUnavailable). The test launcher instead
  fixes the server so that it answers 404 as Cosmos does, which keeps the tests fast and this
  code free of a special case that would turn real server faults into "no such item".
- Batch: the package is not atomic. When the first operation fails (e.g. a replace with a stale
  If-Match -> 412) it applies nothing after it: every later operation answers 424, as on real
  Cosmos. When a later operation fails, the ones before it stay applied (real Cosmos rolls
  them back). The package also read the batch's partition key only from each operation, not
  from the request header the Python SDK sends, so any replace/upsert/delete in a batch failed
  with 500 there; the launcher fixes that too.
- A query's `partition_key=` is ignored (hence the WHERE filter above); TTL is not enforced;
  indexing policies are stored but not applied; throughput is not modelled; request charges
  are always 1.
- A hierarchical key is honoured only at its first level (the server keeps only the first
  element of the partition-key header). The launcher records the headers it receives, so the
  tests check that the SDK sends the whole key on every point operation and batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.cosmos import PartitionKey, ThroughputProperties
from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy

from storage.documents import (
    AlreadyExists,
    Bound,
    Document,
    DocumentStore,
    Key,
    NotFound,
    Partition,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    WriteOp,
    bounds,
    ttl_of,
)
from storage.layout import (
    LAYOUT,
    Container,
    Index,
    Layout,
    cosmos_indexing_policy,
    cosmos_partition_key,
)

# system properties Cosmos adds to every item; bodies we return keep only `_etag`, as the
# embedded store's do, and bodies we send never carry them
_SYSTEM_FIELDS = ("_rid", "_self", "_ts", "_attachments", "_etag", "_lsn")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]+")
_MAX_BATCH_OPS = 100  # Cosmos's limit for one transactional batch
_OWNER_RESOURCE_NOT_FOUND = 1003  # 404 sub-status: the database or container is missing
_HARD_CAP_GRACE = 1.0  # seconds past max_retry_seconds before a call is cancelled outright

log = logging.getLogger("switchboard.cosmos")


class _Charge:
    """A raw_response_hook that adds up the request charge of one call's responses."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0.0

    def __call__(self, pipeline_response: Any) -> None:
        value = pipeline_response.http_response.headers.get("x-ms-request-charge")
        if value:
            with contextlib.suppress(ValueError):
                self.total += float(value)


class CosmosStore(DocumentStore):
    """`DocumentStore` on Azure Cosmos DB (NoSQL API).

    `key` is an account key; `credential` any async token credential (or key); with neither,
    `azure.identity.aio.DefaultAzureCredential()` is used (managed identity, workload identity,
    az login...) and closed with the store. `connection_verify=False` is for a loopback test
    server with a self-signed certificate only.

    Retries: 429 and 503 are retried by the SDK's own policies with backoff (429: the wait the
    service asks for, `retry_throttle_backoff_max=max_retry_seconds`; 503: the next region
    after 500 ms), and every call carries the SDK's absolute `timeout=max_retry_seconds`,
    which bounds all the retries of that call (plus a hard cap 1 s later); past it the call
    raises StoreUnavailable. See the module docstring.
    """

    def __init__(
        self,
        endpoint: str,
        database: str,
        *,
        key: str | None = None,
        credential: Any = None,
        connection_verify: bool = True,
        container_prefix: str = "",
        max_retry_seconds: float = 30.0,
        layout: Layout = LAYOUT,
        throughput: Literal["database", "container", "none"] = "database",
        autoscale_max: int = 1000,
    ) -> None:
        super().__init__(layout)
        if max_retry_seconds <= 0:
            raise ValueError("max_retry_seconds must be positive")
        if throughput not in ("database", "container", "none"):
            raise ValueError(f"throughput must be database, container or none: {throughput!r}")
        if autoscale_max < 1000 or autoscale_max % 1000:
            raise ValueError("the autoscale maximum is a multiple of 1000 RU/s, at least 1000")
        self.endpoint = endpoint
        self.database = database
        self.container_prefix = container_prefix
        self.max_retry_seconds = float(max_retry_seconds)
        self.throughput = throughput
        self.autoscale_max = autoscale_max
        self._key = key
        self._credential = credential
        self._connection_verify = connection_verify
        self._owned_credential: Any = None
        self._client: CosmosClient | None = None
        self._db: DatabaseProxy | None = None
        self._containers: dict[str, ContainerProxy] = {}

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        credential = self._key if self._key is not None else self._credential
        if credential is None:
            from azure.identity.aio import DefaultAzureCredential

            credential = self._owned_credential = DefaultAzureCredential()
        budget = self.max_retry_seconds
        client = CosmosClient(
            self.endpoint,
            credential=credential,
            connection_verify=self._connection_verify,
            # 429: wait what the service asks, up to `budget` seconds in all; the attempt count
            # is set high (one per 10 ms of budget) so that time, not a count, ends the retries
            retry_throttle_total=max(9, int(budget * 100)),
            retry_throttle_backoff_max=budget,
            timeout=budget,
        )
        try:
            db = await self._call(
                "open", client.create_database_if_not_exists, self.database, count=False,
                **throughput_options(self.throughput == "database", self.autoscale_max),
            )
            containers = {}
            for spec in self.layout.containers:
                if not spec.lazy:
                    containers[spec.name] = await self._open_container(db, spec)
        except BaseException:
            await client.close()
            await self._close_credential()
            raise
        self._client, self._db, self._containers = client, db, containers

    async def open_container(self, container: str) -> None:
        spec = self.layout[container]
        if container in self._containers:
            return
        if self._db is None:
            raise StoreUnavailable("the Cosmos store is not open")
        self._containers[container] = await self._open_container(self._db, spec)

    async def _open_container(self, db: DatabaseProxy, spec: Container) -> ContainerProxy:
        container_id = self.container_prefix + spec.name
        expected = cosmos_partition_key(spec)
        options: dict[str, Any] = {
            "indexing_policy": cosmos_indexing_policy(spec),
            **throughput_options(self.throughput == "container", self.autoscale_max),
        }
        if spec.ttl:
            options["default_ttl"] = -1  # on, but only documents that carry `ttl` expire
        container = await self._call(
            "open",
            db.create_container_if_not_exists,
            id=container_id,
            partition_key=PartitionKey(
                path=expected["paths"] if spec.hierarchical else expected["paths"][0],
                kind=expected["kind"],
            ),
            count=False,
            **options,
        )
        properties = await self._call("open", container.read, count=False)
        got = properties.get("partitionKey") or {}
        if got.get("paths") != expected["paths"] or (
            spec.hierarchical and got.get("kind") != "MultiHash"
        ):
            raise StoreUnavailable(
                f"Cosmos container {container_id!r} in {self.database!r} is partitioned by "
                f"{got.get('paths')} ({got.get('kind')}), expected {expected['paths']} "
                f"({expected['kind']}): a container's partition key cannot change; create a "
                f"new container (or database) and move the data"
            )
        if spec.ttl and properties.get("defaultTtl") is None:
            log.warning("Cosmos container %r has TTL off: closed chats will never expire; "
                        "set its default TTL to -1 (on, per item)", container_id)
        if not _same_policy(properties.get("indexingPolicy"), cosmos_indexing_policy(spec)):
            log.warning("Cosmos container %r has another indexing policy than the one "
                        "Switchboard declares (storage/layout.py): it works, but writes and "
                        "queries may cost more", container_id)
        return container

    async def close(self) -> None:
        client, self._client = self._client, None
        self._db = None
        self._containers = {}
        if client is not None:
            await client.close()
        await self._close_credential()

    async def _close_credential(self) -> None:
        credential, self._owned_credential = self._owned_credential, None
        if credential is not None:
            await credential.close()

    async def delete_database(self) -> None:
        """Drop the whole database. For tests and throwaway deployments only."""
        if self._client is None:
            raise StoreUnavailable("the Cosmos store is not open")
        await self._call("open", self._client.delete_database, self.database, count=False)

    async def ping(self) -> None:
        if self._db is None:
            raise StoreUnavailable("the Cosmos store is not open")
        await self._call("ping", self._db.read, count=False)

    # -- primitives ------------------------------------------------------------------

    async def read(self, container: str, partition: Partition, id: str) -> Document | None:
        proxy, key = self._container(container), self.key(container, partition)
        try:
            item = await self._call("read", proxy.read_item, id, partition_key=_sdk_key(key))
        except NotFound:
            return None
        return _document(key, item)

    async def create(
        self, container: str, partition: Partition, id: str, body: dict[str, Any]
    ) -> Document:
        proxy, key = self._container(container), self.key(container, partition)
        item = await self._call("create", proxy.create_item,
                                self._outgoing(container, key, id, body))
        return _document(key, item)

    async def replace(
        self,
        container: str,
        partition: Partition,
        id: str,
        body: dict[str, Any],
        if_match: str | None,
    ) -> Document:
        proxy, key = self._container(container), self.key(container, partition)
        item = await self._call(
            "replace",
            proxy.replace_item,
            id,
            self._outgoing(container, key, id, body),
            **_if_match(if_match),
        )
        return _document(key, item)

    async def upsert(
        self, container: str, partition: Partition, id: str, body: dict[str, Any]
    ) -> Document:
        proxy, key = self._container(container), self.key(container, partition)
        item = await self._call("upsert", proxy.upsert_item,
                                self._outgoing(container, key, id, body))
        return _document(key, item)

    async def delete(
        self, container: str, partition: Partition, id: str, if_match: str | None = None
    ) -> bool:
        proxy, key = self._container(container), self.key(container, partition)
        try:
            await self._call(
                "delete", proxy.delete_item, id, partition_key=_sdk_key(key),
                **_if_match(if_match),
            )
        except NotFound:
            if if_match is not None:
                raise
            return False
        return True

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
        proxy = self._container(container)
        spec = self.layout[container]
        key = None if partition is None else self.key(container, partition, prefix=True)
        sql, parameters = query_sql(
            spec, key, equals, order_by, descending, limit, bounds(at_most, at_least)
        )
        if limit is not None and int(limit) <= 0:
            self.stats.record("query")
            return []
        options: dict[str, Any] = {"parameters": parameters}
        if key is not None:
            options["partition_key"] = _sdk_key(key)

        async def run(**kwargs: Any) -> list[dict[str, Any]]:
            return [item async for item in proxy.query_items(sql, **options, **kwargs)]

        items = await self._call("query", run)
        docs = [_document(tuple(item[name] for name in spec.keys), item) for item in items]
        if order_by:
            docs = _ties_by_id(docs, order_by, descending)
        return docs

    async def batch(
        self, container: str, partition: Partition, ops: list[WriteOp]
    ) -> list[Document]:
        proxy, key = self._container(container), self.key(container, partition)
        if len(ops) > _MAX_BATCH_OPS:
            raise ValueError(f"a Cosmos batch holds at most {_MAX_BATCH_OPS} operations")
        pending = list(ops)
        charge = _Charge()
        try:
            while True:
                if not pending:
                    return []
                try:
                    results = await self._sdk(
                        proxy.execute_item_batch,
                        [self._batch_op(container, key, op) for op in pending],
                        partition_key=_sdk_key(key),
                        raw_response_hook=charge,
                    )
                except cosmos_errors.CosmosBatchOperationError as exc:
                    index = exc.error_index or 0
                    failed = pending[index] if index < len(pending) else None
                    if (
                        exc.status_code == 404
                        and failed is not None
                        and failed.kind == "delete"
                        and failed.if_match is None
                    ):
                        # deleting what is not there is a no-op, as in the embedded store: the
                        # batch applied nothing (atomic), so send it again without that delete
                        del pending[index]
                        continue
                    raise _batch_error(exc, failed) from exc
                break
        finally:
            self.stats.record("batch", charge.total)
        out = []
        for op, result in zip(pending, results, strict=True):
            if op.kind != "delete":
                out.append(_document(key, result["resourceBody"]))
        return out

    # -- plumbing --------------------------------------------------------------------

    def _outgoing(self, container: str, key: Key, id: str, body: dict[str, Any]) -> dict[str, Any]:
        out = self.with_keys(container, key, id, body)
        for name in _SYSTEM_FIELDS:
            out.pop(name, None)
        ttl_of(self.layout[container], out)  # refuse a ttl where nothing expires, as embedded
        return out

    def _batch_op(self, container: str, key: Key, op: WriteOp) -> tuple[Any, ...]:
        options = {"if_match_etag": op.if_match} if op.if_match is not None else {}
        if op.kind == "delete":
            return ("delete", (op.id,), options)
        body = self._outgoing(container, key, op.id, op.body or {})
        if op.kind in ("create", "upsert"):
            return (op.kind, (body,), options)
        if op.kind == "replace":
            return ("replace", (op.id, body), options)
        raise ValueError(f"unknown batch operation {op.kind!r}")

    def _container(self, container: str) -> ContainerProxy:
        spec = self.layout[container]
        proxy = self._containers.get(container)
        if proxy is None:
            if spec.lazy and self._db is not None:
                raise StoreUnavailable(f"container {container!r} is not open: "
                                       f"call open_container({container!r}) first")
            raise StoreUnavailable("the Cosmos store is not open")
        return proxy

    async def _call(
        self, op: str, fn: Callable[..., Any], *args: Any, count: bool = True, **kwargs: Any
    ) -> Any:
        """One SDK call: timeout, request-charge collection, errors mapped, stats recorded."""
        charge = _Charge()
        try:
            return await self._sdk(fn, *args, raw_response_hook=charge, **kwargs)
        finally:
            if count:
                self.stats.record(op, charge.total)

    async def _sdk(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            # the SDK's own `timeout` normally ends it; the hard cap covers the one case where it
            # does not, a Retry-After longer than what is left of the budget (the SDK sleeps
            # it out before looking at the clock again)
            async with asyncio.timeout(self.max_retry_seconds + _HARD_CAP_GRACE):
                return await fn(*args, timeout=self.max_retry_seconds, **kwargs)
        except cosmos_errors.CosmosBatchOperationError:
            raise  # batch() maps it, knowing which operation failed
        except cosmos_errors.CosmosHttpResponseError as exc:
            raise _http_error(exc) from exc
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"Cosmos DB at {self.endpoint}: no answer within {self.max_retry_seconds:g}s"
            ) from exc
        except (AzureError, OSError) as exc:
            raise StoreUnavailable(f"Cosmos DB at {self.endpoint}: {_short(exc)}") from exc


# -- helpers --------------------------------------------------------------------------


def throughput_options(here: bool, autoscale_max: int) -> dict[str, Any]:
    """`offer_throughput` for the database or a container, when throughput is set there."""
    if not here:
        return {}
    return {"offer_throughput": ThroughputProperties(auto_scale_max_throughput=autoscale_max)}


def _same_policy(got: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether the service's policy indexes what ours does (it adds fields of its own)."""
    if not got:
        return False

    def paths(policy: dict[str, Any], kind: str) -> set[str]:
        return {p.get("path", "") for p in policy.get(kind) or []}

    def composites(policy: dict[str, Any]) -> set[tuple[tuple[str, str], ...]]:
        return {
            tuple((e.get("path", ""), e.get("order", "ascending")) for e in group)
            for group in policy.get("compositeIndexes") or []
        }

    return (
        paths(got, "includedPaths") == paths(wanted, "includedPaths")
        and paths(wanted, "excludedPaths") <= paths(got, "excludedPaths")
        and composites(got) == composites(wanted)
    )


def _sdk_key(key: Key) -> str | list[str]:
    return key[0] if len(key) == 1 else list(key)


def _http_error(exc: cosmos_errors.CosmosHttpResponseError) -> StoreError:
    status = exc.status_code
    message = _short(exc)
    if status == 404:
        if exc.sub_status == _OWNER_RESOURCE_NOT_FOUND:
            return StoreUnavailable(f"Cosmos database or container missing: {message}")
        return NotFound(message)
    if status == 409:
        return AlreadyExists(message)
    if status == 412:
        return PreconditionFailed(message)
    return StoreUnavailable(f"Cosmos DB answered {status}: {message}")


def _batch_error(exc: cosmos_errors.CosmosBatchOperationError, op: WriteOp | None) -> StoreError:
    what = f"batch operation {exc.error_index}" + (f" ({op.kind} {op.id!r})" if op else "")
    status = exc.status_code
    if status == 404:
        return NotFound(what)
    if status == 409:
        return AlreadyExists(what)
    if status == 412:
        return PreconditionFailed(what)
    return StoreUnavailable(f"Cosmos DB answered {status} to {what}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _if_match(if_match: str | None) -> dict[str, Any]:
    if if_match is None:
        return {}
    return {"etag": if_match, "match_condition": MatchConditions.IfNotModified}


def _document(key: Key, item: dict[str, Any]) -> Document:
    body = {k: v for k, v in item.items() if k == "_etag" or k not in _SYSTEM_FIELDS}
    return Document(item["id"], key, body, item["_etag"])


def _field(name: str) -> str:
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"not a plain field name: {name!r}")
    return f'c["{name}"]'


def query_sql(
    container: Container,
    key: Key | None,
    equals: dict[str, Any],
    order_by: str | None,
    descending: bool,
    limit: int | None,
    ranges: list[Bound] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    where: list[str] = []
    parameters: list[dict[str, Any]] = []
    for level, value in enumerate(key or ()):
        where.append(f"{_field(container.keys[level])} = @pk{level}")
        parameters.append({"name": f"@pk{level}", "value": value})
    for i, (name, value) in enumerate(equals.items()):
        ref = _field(name)
        if value is None:
            # as SQL's IS NULL in the embedded store: a null value or no such field
            where.append(f"(NOT IS_DEFINED({ref}) OR IS_NULL({ref}))")
        else:
            where.append(f"{ref} = @p{i}")
            parameters.append({"name": f"@p{i}", "value": value})
    for i, (name, op, value) in enumerate(ranges or (), start=len(equals)):
        # a field of another type (or missing) compares as undefined: not a match
        where.append(f"{_field(name)} {op} @p{i}")
        parameters.append({"name": f"@p{i}", "value": value})
    top = ""
    if limit is not None and int(limit) > 0:
        top = f"TOP {int(limit)} "
    sql = f"SELECT {top}* FROM c"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order_by:
        direction = "DESC" if descending else "ASC"
        fields = [f"{_field(order_by)} {direction}"]
        composite = _composite_for(container, equals, order_by, descending)
        if composite:
            index, lead = composite
            fields = [f"{_field(name)} {lead}" for name in index.fields[:-1]] + fields
        sql += " ORDER BY " + ", ".join(fields)
    return sql, parameters


def _composite_for(
    container: Container, equals: dict[str, Any], order_by: str, descending: bool
) -> tuple[Index, str] | None:
    """A declared composite index whose leading fields the query pins and whose last field
    it sorts by, and the direction to name the pinned fields in (a composite index serves
    its own order and the exact reverse): naming them all in ORDER BY lets Cosmos serve the
    query from it."""
    pinned = {name for name, value in equals.items() if value is not None}
    for index in container.indexes:
        fields = index.fields
        if len(fields) > 1 and fields[-1] == order_by and set(fields[:-1]) <= pinned:
            return index, ("ASC" if index.descending == descending else "DESC")
    return None


def _ties_by_id(docs: list[Document], order_by: str, descending: bool) -> list[Document]:
    """Rows with the same `order_by` value sorted by id (in the query's direction), as the
    embedded store returns them."""
    out: list[Document] = []
    run: list[Document] = []
    marker = object()
    last: Any = marker

    def flush() -> None:
        out.extend(sorted(run, key=lambda d: d.id, reverse=descending))

    for doc in docs:
        value = _sort_identity(doc.body.get(order_by, marker))
        if run and value != last:
            flush()
            run = []
        run.append(doc)
        last = value
    flush()
    return out


def _sort_identity(value: Any) -> Any:
    # True == 1 in Python but not in Cosmos's ordering: keep the type in the comparison
    return (type(value).__name__, repr(value))
