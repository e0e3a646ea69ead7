"""A local HTTP server on loopback that plays ServiceNow's Table API and Jira's REST API, for
the `http_request` tests: it records every request it gets, creates tickets, and answers with
planned faults.

- `POST /api/now/table/incident` -> 201 `{"result": {"number": "INC0010001", "sys_id": ...}}`
- `PATCH /api/now/table/incident/{sys_id}` -> 200 with the updated record
- `POST /rest/api/3/issue` -> 201 `{"id": "10001", "key": "HR-1", "self": ...}`

Requests need `Authorization` equal to `auth` (else 401). With `honour_keys`, a request whose
`Idempotency-Key` was seen gets what the first one got, without a new ticket (as an endpoint
that honours the key does); ServiceNow and Jira themselves do not.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Fault:
    """How the desk answers one request instead of the usual.

    `status`: answer this status (0: the usual answer). `retry_after`: its Retry-After.
    `delay`: wait this long before answering (a timeout for the bot; the ticket is created).
    `drop`: close the connection without an answer. `acts`: with `status` or `drop`, the
    ticket is created all the same (the endpoint did its work and the answer was lost)."""

    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False
    acts: bool = False
    body: dict[str, Any] | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class TicketDesk:
    auth: str = "Basic dGlja2V0czpzM2NyZXQtdmFsdWU="
    honour_keys: bool = False
    requests: list[Seen] = field(default_factory=list)
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    url: str = ""
    _answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(10001))
    _runner: web.AppRunner | None = None

    async def start(self) -> TicketDesk:
        app = web.Application()
        app.router.add_post("/api/now/table/incident", self._create_incident)
        app.router.add_patch("/api/now/table/incident/{sys_id}", self._update_incident)
        app.router.add_post("/rest/api/3/issue", self._create_issue)
        app.router.add_route("*", "/redirect/{code}", self._redirect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def created(self) -> list[dict[str, Any]]:
        return list(self.tickets.values())

    def posts(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST"]

    # -- the endpoints ---------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Seen:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers),
                    body)
        self.requests.append(seen)
        return seen

    async def _answer(self, request: web.Request, make) -> web.StreamResponse:
        seen = await self._record(request)
        if seen.headers.get("Authorization") != self.auth:
            return web.json_response({"error": {"message": "User Not Authenticated",
                                                "detail": "Required to provide Auth "
                                                          "information"},
                                      "status": "failure"}, status=401)
        fault = self.faults.pop(0) if self.faults else Fault()
        key = seen.headers.get("Idempotency-Key")
        if self.honour_keys and key in self._answers:
            status, body = self._answers[key]
        elif (fault.status or fault.drop) and not fault.acts:
            status, body = 0, {}
        else:
            status, body = make(seen)
            if key:
                self._answers[key] = (status, body)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if fault.status:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.json_response(fault.body or {"error": {"message": "unavailable"}},
                                     status=fault.status, headers=headers)
        return web.json_response(body, status=status)

    async def _create_incident(self, request: web.Request) -> web.StreamResponse:
        def make(seen: Seen) -> tuple[int, dict[str, Any]]:
            number = f"INC{next(self._numbers):07d}"
            sys_id = f"{len(self.tickets) + 1:032x}"
            record = {**(seen.body or {}), "number": number, "sys_id": sys_id, "state": "1"}
            self.tickets[sys_id] = record
            fields = seen.query.get("sysparm_fields")
            shown = {k: v for k, v in record.items()
                     if not fields or k in fields.split(",")}
            return 201, {"result": shown}

        return await self._answer(request, make)

    async def _update_incident(self, request: web.Request) -> web.StreamResponse:
        sys_id = request.match_info["sys_id"]

        def make(seen: Seen) -> tuple[int, dict[str, Any]]:
            if sys_id not in self.tickets:
                return 404, {"error": {"message": "No Record found"}, "status": "failure"}
            self.tickets[sys_id].update(seen.body or {})
            return 200, {"result": self.tickets[sys_id]}

        return await self._answer(request, make)

    async def _create_issue(self, request: web.Request) -> web.StreamResponse:
        def make(seen: Seen) -> tuple[int, dict[str, Any]]:
            issue_id = str(next(self._numbers))
            project = ((seen.body or {}).get("fields") or {}).get("project", {}).get("key", "X")
            key = f"{project}-{len(self.tickets) + 1}"
            self.tickets[issue_id] = {**(seen.body or {}), "key": key}
            return 201, {"id": issue_id, "key": key,
                         "self": f"{self.url}/rest/api/3/issue/{issue_id}"}

        return await self._answer(request, make)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        """`/redirect/307?to=URL`: answers that redirect."""
        await self._record(request)
        code = int(request.match_info["code"])
        return web.Response(status=code, headers={"Location": request.query["to"]})
