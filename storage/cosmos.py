"""The Azure Cosmos DB store, on the `azure-cosmos` async client.

The engine users move to when one machine is not enough: several bot instances behind a load
balancer share one account. It behaves as the embedded store does (same primitives, errors,
body shape, ETag rules), so the layers above are written once and one test suite covers both.

Layout: one database, one container per entry of `CONTAINERS`, each partitioned by
`/<field>` (optionally with a name prefix, so several deployments can share a database).
`open()` creates what is missing. With Entra ID (no key) the data-plane roles cannot create
databases or containers: create them beforehand (portal, Bicep, `az cosmosdb sql ...`), and
`open()` only checks that they exist with the right partition key.

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
ORDER BY c["f"]`).
Field names must be plain identifiers (letters, digits, `_`), as in the embedded store; the
bracket form also allows the SQL keywords (`value`, `order`, ...) as field names. With a
partition the query is scoped by `partition_key=` *and* by `c["<field>"] = @pk` in the WHERE
clause: the first routes it to one partition on real Cosmos, the second makes it correct on a
server that ignores the first (the local test server does). Ordering: Cosmos sorts on the one
`order_by` field (two ORDER BY fields need a composite index the container does not have);
rows with equal values come back sorted by id, as in the embedded store, except that with
`limit` which of several tied rows at the cut are returned is Cosmos's choice.

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
  request charges are always 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.cosmos import PartitionKey
from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy

from storage.documents import (
    CONTAINERS,
    AlreadyExists,
    Document,
    DocumentStore,
    NotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    WriteOp,
    bounds,
    with_keys,
)

# system properties Cosmos adds to every item; bodies we return keep only `_etag`, as the
# embedded store's do, and bodies we send never carry them
_SYSTEM_FIELDS = ("_rid", "_self", "_ts", "_attachments", "_etag", "_lsn")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]+")
_MAX_BATCH_OPS = 100  # Cosmos's limit for one transactional batch
_OWNER_RESOURCE_NOT_FOUND = 1003  # 404 sub-status: the database or container is missing
_HARD_CAP_GRACE = 1.0  # seconds past max_retry_seconds before a call is cancelled outright


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
    ) -> None:
        super().__init__()
        if max_retry_seconds <= 0:
            raise ValueError("max_retry_seconds must be positive")
        self.endpoint = endpoint
        self.database = database
        self.container_prefix = container_prefix
        self.max_retry_seconds = float(max_retry_seconds)
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
                "open", client.create_database_if_not_exists, self.database, count=False
            )
            containers = {}
            for name, field in CONTAINERS.items():
                containers[name] = await self._open_container(db, name, field)
        except BaseException:
            await client.close()
            await self._close_credential()
            raise
        self._client, self._db, self._containers = client, db, containers

    async def _open_container(self, db: DatabaseProxy, name: str, field: str) -> ContainerProxy:
        container_id = self.container_prefix + name
        container = await self._call(
            "open",
            db.create_container_if_not_exists,
            id=container_id,
            partition_key=PartitionKey(path=f"/{field}"),
            count=False,
        )
        properties = await self._call("open", container.read, count=False)
        paths = (properties.get("partitionKey") or {}).get("paths") or []
        if paths != [f"/{field}"]:
            raise StoreUnavailable(
                f"Cosmos container {container_id!r} in {self.database!r} is partitioned by "
                f"{paths}, expected ['/{field}']"
            )
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

    async def read(self, container: str, partition: str, id: str) -> Document | None:
        proxy = self._container(container)
        try:
            item = await self._call("read", proxy.read_item, id, partition_key=partition)
        except NotFound:
            return None
        return _document(partition, item)

    async def create(
        self, container: str, partition: str, id: str, body: dict[str, Any]
    ) -> Document:
        proxy = self._container(container)
        body = _outgoing(container, partition, id, body)
        item = await self._call("create", proxy.create_item, body)
        return _document(partition, item)

    async def replace(
        self, container: str, partition: str, id: str, body: dict[str, Any], if_match: str | None
    ) -> Document:
        proxy = self._container(container)
        item = await self._call(
            "replace",
            proxy.replace_item,
            id,
            _outgoing(container, partition, id, body),
            **_if_match(if_match),
        )
        return _document(partition, item)

    async def upsert(
        self, container: str, partition: str, id: str, body: dict[str, Any]
    ) -> Document:
        proxy = self._container(container)
        body = _outgoing(container, partition, id, body)
        item = await self._call("upsert", proxy.upsert_item, body)
        return _document(partition, item)

    async def delete(
        self, container: str, partition: str, id: str, if_match: str | None = None
    ) -> bool:
        proxy = self._container(container)
        try:
            await self._call(
                "delete", proxy.delete_item, id, partition_key=partition, **_if_match(if_match)
            )
        except NotFound:
            if if_match is not None:
                raise
            return False
        return True

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
        proxy = self._container(container)
        sql, parameters = _query_sql(
            container, partition, equals, order_by, descending, limit, bounds(at_most)
        )
        if limit is not None and int(limit) == 0:
            self.stats.record("query")
            return []
        options: dict[str, Any] = {"parameters": parameters}
        if partition is not None:
            options["partition_key"] = partition

        async def run(**kwargs: Any) -> list[dict[str, Any]]:
            return [item async for item in proxy.query_items(sql, **options, **kwargs)]

        items = await self._call("query", run)
        docs = [_document(item[CONTAINERS[container]], item) for item in items]
        if order_by:
            docs = _ties_by_id(docs, order_by)
        return docs

    async def batch(self, container: str, partition: str, ops: list[WriteOp]) -> list[Document]:
        proxy = self._container(container)
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
                        [_batch_op(container, partition, op) for op in pending],
                        partition_key=partition,
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
                out.append(_document(partition, result["resourceBody"]))
        return out

    # -- plumbing --------------------------------------------------------------------

    def _container(self, container: str) -> ContainerProxy:
        if container not in CONTAINERS:
            raise ValueError(f"unknown container {container!r}")
        proxy = self._containers.get(container)
        if proxy is None:
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


def _outgoing(container: str, partition: str, id: str, body: dict[str, Any]) -> dict[str, Any]:
    out = with_keys(container, partition, id, body)
    for name in _SYSTEM_FIELDS:
        out.pop(name, None)
    return out


def _document(partition: str, item: dict[str, Any]) -> Document:
    body = {k: v for k, v in item.items() if k == "_etag" or k not in _SYSTEM_FIELDS}
    return Document(item["id"], partition, body, item["_etag"])


def _batch_op(container: str, partition: str, op: WriteOp) -> tuple[Any, ...]:
    options = {"if_match_etag": op.if_match} if op.if_match is not None else {}
    if op.kind == "create":
        return ("create", (_outgoing(container, partition, op.id, op.body or {}),), options)
    if op.kind == "upsert":
        return ("upsert", (_outgoing(container, partition, op.id, op.body or {}),), options)
    if op.kind == "replace":
        body = _outgoing(container, partition, op.id, op.body or {})
        return ("replace", (op.id, body), options)
    if op.kind == "delete":
        return ("delete", (op.id,), options)
    raise ValueError(f"unknown batch operation {op.kind!r}")


def _field(name: str) -> str:
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"not a plain field name: {name!r}")
    return f'c["{name}"]'


def _query_sql(
    container: str,
    partition: str | None,
    equals: dict[str, Any],
    order_by: str | None,
    descending: bool,
    limit: int | None,
    at_most: dict[str, Any] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    where: list[str] = []
    parameters: list[dict[str, Any]] = []
    if partition is not None:
        where.append(f"{_field(CONTAINERS[container])} = @pk")
        parameters.append({"name": "@pk", "value": partition})
    for i, (name, value) in enumerate(equals.items()):
        ref = _field(name)
        if value is None:
            # as SQL's IS NULL in the embedded store: a null value or no such field
            where.append(f"(NOT IS_DEFINED({ref}) OR IS_NULL({ref}))")
        else:
            where.append(f"{ref} = @p{i}")
            parameters.append({"name": f"@p{i}", "value": value})
    for i, (name, value) in enumerate((at_most or {}).items(), start=len(equals)):
        # a field of another type (or missing) compares as undefined: not a match
        where.append(f"{_field(name)} <= @p{i}")
        parameters.append({"name": f"@p{i}", "value": value})
    top = ""
    if limit is not None and int(limit) > 0:
        top = f"TOP {int(limit)} "
    sql = f"SELECT {top}* FROM c"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order_by:
        sql += f" ORDER BY {_field(order_by)} {'DESC' if descending else 'ASC'}"
    return sql, parameters


def _ties_by_id(docs: list[Document], order_by: str) -> list[Document]:
    """Rows with the same `order_by` value sorted by id, as the embedded store returns them."""
    out: list[Document] = []
    run: list[Document] = []
    marker = object()
    last: Any = marker
    for doc in docs:
        value = _sort_identity(doc.body.get(order_by, marker))
        if run and value != last:
            out.extend(sorted(run, key=lambda d: d.id))
            run = []
        run.append(doc)
        last = value
    out.extend(sorted(run, key=lambda d: d.id))
    return out


def _sort_identity(value: Any) -> Any:
    # True == 1 in Python but not in Cosmos's ordering: keep the type in the comparison
    return (type(value).__name__, repr(value))
