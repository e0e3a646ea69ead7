"""Killing the bot at a chosen point, for the fault-injection harness (tests/test_faults.py).

A `Plan` counts every store call and every send of one bot process. At its `at`-th step it
"kills" the process: that call raises `Killed`, and every store call or send after it does
too, so the dead process changes nothing more and sends nothing more, as after `kill -9`.
A step is counted when the call returns: the kill at step k leaves the effects of the first
k calls (the k-th write landed, the k-th message reached the connector) and nothing after.
Step 0 kills before anything happened.

`Killed` is a BaseException: nothing in the bot catches it, as nothing catches a SIGKILL.
"""

from __future__ import annotations

from typing import Any

from storage.documents import Document, DocumentStore, Partition, WriteOp


class Killed(BaseException):
    pass


class Plan:
    def __init__(self, at: int | None = None) -> None:
        self.at = at
        self.steps: list[str] = []
        self.dead = False

    def check(self) -> None:
        if self.dead:
            raise Killed("the process is dead")

    def done(self, what: str) -> None:
        """A call returned: count it; kill here if this is the step."""
        self.check()
        self.steps.append(what)
        if self.at is not None and len(self.steps) >= self.at:
            self.dead = True
            raise Killed(f"killed after step {len(self.steps)}: {what}")

    def start(self) -> None:
        if self.at == 0:
            self.dead = True
        self.check()


class FaultyStore(DocumentStore):
    """The store as the process sees it: dies with the process."""

    def __init__(self, inner: DocumentStore, plan: Plan) -> None:
        super().__init__(inner.layout)
        self.inner = inner
        self.plan = plan
        self.stats = inner.stats

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            self.plan.check()
        except Killed:
            coro.close()
            raise
        result = await coro
        self.plan.done(what)
        return result

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()  # the file or connection outlives the process

    async def open_container(self, container: str) -> None:
        await self.inner.open_container(container)

    async def ping(self) -> None:
        self.plan.check()
        await self.inner.ping()

    async def purge_expired(self, limit: int = 500) -> int:
        return await self._call("purge", self.inner.purge_expired(limit))

    async def read(self, container: str, partition: Partition, id: str) -> Document | None:
        return await self._call(f"read {container}", self.inner.read(container, partition, id))

    async def create(self, container: str, partition: Partition, id: str,
                     body: dict[str, Any]) -> Document:
        return await self._call(f"create {container}",
                                self.inner.create(container, partition, id, body))

    async def replace(self, container: str, partition: Partition, id: str,
                      body: dict[str, Any], if_match: str | None) -> Document:
        return await self._call(f"replace {container}",
                                self.inner.replace(container, partition, id, body, if_match))

    async def upsert(self, container: str, partition: Partition, id: str,
                     body: dict[str, Any]) -> Document:
        return await self._call(f"upsert {container}",
                                self.inner.upsert(container, partition, id, body))

    async def delete(self, container: str, partition: Partition, id: str,
                     if_match: str | None = None) -> bool:
        return await self._call(f"delete {container}",
                                self.inner.delete(container, partition, id, if_match))

    async def query(self, container: str, partition: Partition | None,
                    equals: dict[str, Any], **kwargs: Any) -> list[Document]:
        return await self._call(f"query {container}",
                                self.inner.query(container, partition, equals, **kwargs))

    async def batch(self, container: str, partition: Partition,
                    ops: list[WriteOp]) -> list[Document]:
        return await self._call(f"batch {container}",
                                self.inner.batch(container, partition, ops))


def kill_sends(outbound: Any, plan: Plan) -> None:
    """Every request to the connector (posts, updates) dies with the process; one counts
    once the connector has answered it."""
    request = outbound.request

    async def faulty(*args: Any, **kwargs: Any) -> Any:
        plan.check()
        result = await request(*args, **kwargs)
        plan.done(f"{args[0]} connector")
        return result

    outbound.request = faulty


def kill_calls(steps: Any, plan: Plan) -> None:
    """Every call of an `http_request` stage (app's HTTP_STEPS) dies with the process; one
    counts once the endpoint has answered it, so a kill right after it falls between the call
    and the session's write."""
    caller = steps.caller
    call = caller.call

    async def faulty(request: Any) -> Any:
        plan.check()
        result = await call(request)
        plan.done(f"call {request.method} endpoint")
        return result

    caller.call = faulty
