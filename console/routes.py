"""The console's HTTP routes, mounted by app.py under /console.

Pages and static files; sign-in, its callback and sign-out; the JSON API (live snapshot and
its server-sent-event stream, the figures for a date range, a chat's page, search, reports
and their CSV) and the four actions. Every API route answers only for the departments the
viewer may see (a chat of another department is a 404, like one that does not exist); every
action needs the CSRF token (console/auth.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from console.auth import FLOW_COOKIE, FLOW_SECONDS, SESSION_COOKIE, Auth, NoRole, Viewer
from console.live import Board, for_viewer
from console.reports import RangeError, Reports, parse_range, to_csv
from console.views import ChatNotFound, Views
from pipelines.routing.common import Refused
from pipelines.routing.supervise import Actor, Supervision
from storage.fold import Folder

log = logging.getLogger("switchboard.console")

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
ROOT = HERE.parent
# the chart library, installed by npm (package-lock.json) and copied beside the console's
# own files by scripts/setup; served from here, never from a CDN
CHART_JS = ("vendor/chart.umd.min.js",
            ROOT / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js")
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
# Teams shows the console as a personal tab: it may frame it
FRAMERS = ("https://teams.microsoft.com https://*.teams.microsoft.com https://*.cloud.microsoft "
           "https://*.office.com")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"frame-ancestors 'self' {FRAMERS}"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STREAM_SECONDS = 3600
RECHECK_SECONDS = 60


class Console:
    """Everything the console's routes use."""

    def __init__(self, auth: Auth, board: Board, views: Views, reports: Reports,
                 supervision: Supervision, folder: Folder) -> None:
        self.auth = auth
        self.board = board
        self.views = views
        self.reports = reports
        self.supervision = supervision
        self.folder = folder
        self.closing = asyncio.Event()
        self.changed = asyncio.Event()
        self._encoded_for: dict[str, Any] | None = None
        self._encoded: dict[str, bytes] = {}

    def encoded(self, snapshot: dict[str, Any], viewer: Viewer) -> bytes:
        """The snapshot as a server-sent event for this viewer's departments: encoded once
        per snapshot and set of departments, however many consoles show it."""
        scope = "*" if viewer.admin else ",".join(sorted(viewer.tenants))
        if self._encoded_for is not snapshot:
            self._encoded_for, self._encoded = snapshot, {}
        event = self._encoded.get(scope)
        if event is None:
            body = json.dumps(for_viewer(snapshot, viewer.may), default=str)
            event = self._encoded[scope] = f"data: {body}\n\n".encode()
        return event

    def acted(self) -> None:
        """A supervisor changed something: the next snapshot is fresh, streams push now."""
        self.board.invalidate()
        self.changed.set()
        self.changed = asyncio.Event()


CONSOLE = web.AppKey("console_app", Console)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=SECURITY_HEADERS,
                             dumps=lambda v: json.dumps(v, default=str))


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _viewer(request: web.Request) -> Viewer | web.Response:
    console = request.app[CONSOLE]
    try:
        viewer = await console.auth.viewer(request)
    except NoRole as exc:
        return _error(403, f"{exc.name}, you are not a supervisor or an admin of this help "
                           f"desk. Ask an admin to add you to the configuration.")
    except web.HTTPForbidden as exc:
        return _error(403, exc.text or "forbidden")
    if viewer is None:
        return _error(401, "Sign in first: /console/signin")
    return viewer


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="The body is not JSON.") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="The body is a JSON object.")
    return body


def _text(body: dict[str, Any], name: str, limit: int = 1000) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise web.HTTPBadRequest(text=f"`{name}` is text of 1 to {limit} characters.")
    return value.strip()


# -- pages ---------------------------------------------------------------------------------


async def to_index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


async def index(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    try:
        viewer = await console.auth.viewer(request)
    except NoRole as exc:
        return web.Response(text=_no_role_page(exc.name), content_type="text/html",
                            status=403, headers=SECURITY_HEADERS)
    except web.HTTPForbidden as exc:
        return web.Response(text=exc.text, status=403, headers=SECURITY_HEADERS)
    if viewer is None:
        raise web.HTTPFound("/console/signin")
    return web.FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == CHART_JS[0]:
        local = STATIC / CHART_JS[0]
        path = local if local.is_file() else CHART_JS[1]
        if not path.is_file():
            raise web.HTTPNotFound(text="chart.js is not installed: run scripts/setup")
        return web.FileResponse(path, headers={"Content-Type": "text/javascript",
                                               "X-Content-Type-Options": "nosniff"})
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"Content-Type": STATIC_FILES[name],
                                                    "X-Content-Type-Options": "nosniff"})


def _no_role_page(name: str) -> str:
    from html import escape

    return (f"<!doctype html><meta charset=utf-8><title>Switchboard console</title>"
            f"<p>{escape(name)}, you are not a supervisor or an admin of this help desk. Ask "
            f"an admin to add you to the configuration.</p>"
            f"<form method=post action=/console/signout><button>Sign out</button></form>")


# -- sign-in ---------------------------------------------------------------------------------


async def signin(request: web.Request) -> web.StreamResponse:
    auth = request.app[CONSOLE].auth
    if not auth.sign_in:
        raise web.HTTPFound("/console/")
    if auth.off:
        raise web.HTTPServiceUnavailable(text="The supervisor console is off: see "
                                              "docs/console.md to turn it on.")
    url, state = await auth.begin()
    response = web.HTTPFound(url)
    auth.cookie(response, FLOW_COOKIE, state, FLOW_SECONDS)
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    auth = request.app[CONSOLE].auth
    if not auth.sign_in or auth.off:
        raise web.HTTPFound("/console/")
    sid, _ = await auth.finish(request)
    response = web.HTTPFound("/console/")
    auth.cookie(response, SESSION_COOKIE, sid, auth.session_seconds)
    response.del_cookie(FLOW_COOKIE, path="/")
    raise response


async def signout(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    auth = console.auth
    try:
        viewer = await auth.viewer(request)
    except NoRole:
        viewer = None
    if viewer is not None:
        auth.check_csrf(request, viewer)
        await auth.sign_out(viewer)
    elif request.headers.get("Origin") not in (None, auth.origin(request)):
        raise web.HTTPForbidden(text="This request came from another site.")
    response = _json({"signed_out": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- the API ---------------------------------------------------------------------------------


async def me(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    config = request.app[CONSOLE].views.config
    return _json({
        "name": viewer.name, "admin": viewer.admin, "csrf": viewer.csrf,
        "dev_mode": not request.app[CONSOLE].auth.sign_in,
        "departments": [{"id": t.id, "name": t.name, "enabled": t.enabled,
                         "agents": [{"id": a.aad_object_id, "name": a.name} for a in t.agents]}
                        for t in config.tenants if viewer.may(t.id)],
        "all_departments": [{"id": t.id, "name": t.name} for t in config.tenants
                            if t.enabled],
    })


async def live(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    console = request.app[CONSOLE]
    event = console.encoded(await console.board.snapshot(), viewer)
    return web.Response(body=event[len(b"data: "):-2], content_type="application/json",
                        headers=SECURITY_HEADERS)


async def stream(request: web.Request) -> web.StreamResponse:
    """The live snapshot as server-sent events: one event per refresh, and at once after a
    supervisor's action. The browser's EventSource reconnects by itself."""
    console = request.app[CONSOLE]
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    response = web.StreamResponse(headers={**SECURITY_HEADERS,
                                           "Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    ends, recheck = loop.time() + STREAM_SECONDS, loop.time() + RECHECK_SECONDS
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while loop.time() < ends and not console.closing.is_set():
            event = console.encoded(await console.board.snapshot(), viewer)
            await response.write(event)
            changed, closing = console.changed, console.closing
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(changed.wait(), closing.wait()),
                                       console.board.refresh_seconds)
            if loop.time() >= recheck:
                recheck = loop.time() + RECHECK_SECONDS
                try:
                    again = await console.auth.viewer(request)
                except NoRole:
                    again = None
                if again is None:
                    await response.write(b"event: signedout\ndata: {}\n\n")
                    break
    return response


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def chat(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    try:
        page = await request.app[CONSOLE].views.chat(
            viewer, request.match_info["tenant"], request.match_info["session"])
    except ChatNotFound:
        return _error(404, "There is no such chat, or it is not one of your departments'.")
    return _json(page)


def _date(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(text="Dates are written YYYY-MM-DD.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(value) == 10:
        from datetime import timedelta

        moment += timedelta(days=1)
    return moment


async def search(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    q = request.query
    tenant = q.get("tenant") or None
    if tenant is not None and not viewer.may(tenant):
        return _error(404, "There is no such department, or it is not one of yours.")
    results = await request.app[CONSOLE].views.search(
        viewer, name=q.get("name", "")[:200], text=q.get("text", "")[:500], tenant=tenant,
        state=q.get("state") or None, since=_date(q.get("from")),
        until=_date(q.get("to"), end=True))
    return _json({"results": results})


def _range(request: web.Request, viewer: Viewer) -> tuple[date, date, str | None]:
    """`from`, `to` and `tenant` of a report or of the figures for a range."""
    q = request.query
    tenant = q.get("tenant") or None
    if tenant is not None and not viewer.may(tenant):
        raise web.HTTPNotFound(text="There is no such department, or it is not one of yours.")
    try:
        first, last = parse_range(q.get("from"), q.get("to"), datetime.now(UTC).date())
    except RangeError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return first, last, tenant


async def _report(request: web.Request, viewer: Viewer) -> dict[str, Any]:
    return await request.app[CONSOLE].reports.days(viewer, *_range(request, viewer))


async def figures(request: web.Request) -> web.Response:
    """The live view's figures over a date range, per department (console/reports.py)."""
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    return _json(await request.app[CONSOLE].reports.figures(viewer, *_range(request, viewer)))


async def reports(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    return _json(await _report(request, viewer))


async def reports_csv(request: web.Request) -> web.Response:
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    report = await _report(request, viewer)
    table = "transfers" if request.query.get("table") == "transfers" else "days"
    name = f"switchboard-{table}-{report['from']}-to-{report['to']}.csv"
    return web.Response(text=to_csv(report, table), content_type="text/csv",
                        headers={**SECURITY_HEADERS,
                                 "Content-Disposition": f'attachment; filename="{name}"'})


# -- actions ---------------------------------------------------------------------------------


async def _act(request: web.Request, tenant: str | None, run) -> web.Response:
    console = request.app[CONSOLE]
    viewer = await _viewer(request)
    if isinstance(viewer, web.Response):
        return viewer
    console.auth.check_csrf(request, viewer)
    if tenant is not None and not viewer.may(tenant):
        return _error(404, "There is no such chat, or it is not one of your departments'.")
    body = await _body(request)
    actor = Actor(viewer.id, viewer.name)
    try:
        said = await run(actor, body, viewer)
    except Refused as exc:
        return _error(409, str(exc))
    except LookupError:
        return _error(404, "There is no such chat, or it is not one of your departments'.")
    finally:
        console.acted()
    return _json({"ok": True, "message": said})


async def assign(request: web.Request) -> web.Response:
    tenant, session = request.match_info["tenant"], request.match_info["session"]

    async def run(actor: Actor, body: dict[str, Any], viewer: Viewer) -> str:
        return await request.app[CONSOLE].supervision.assign(actor, tenant, session,
                                                             _text(body, "agent", 64))

    return await _act(request, tenant, run)


async def transfer(request: web.Request) -> web.Response:
    tenant, session = request.match_info["tenant"], request.match_info["session"]

    async def run(actor: Actor, body: dict[str, Any], viewer: Viewer) -> str:
        return await request.app[CONSOLE].supervision.transfer(actor, tenant, session,
                                                               _text(body, "target", 120))

    return await _act(request, tenant, run)


async def force_close(request: web.Request) -> web.Response:
    tenant, session = request.match_info["tenant"], request.match_info["session"]

    async def run(actor: Actor, body: dict[str, Any], viewer: Viewer) -> str:
        return await request.app[CONSOLE].supervision.close(actor, tenant, session,
                                                            _text(body, "reason", 500))

    return await _act(request, tenant, run)


async def presence(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent"]
    config = request.app[CONSOLE].views.config

    async def run(actor: Actor, body: dict[str, Any], viewer: Viewer) -> str:
        if not any(viewer.may(t.id) for t in config.tenants_of_agent(agent_id)):
            raise LookupError(agent_id)
        return await request.app[CONSOLE].supervision.set_presence(
            actor, agent_id, _text(body, "presence", 20))

    return await _act(request, None, run)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", to_index)
    r.add_get("/console/", index)
    r.add_get("/console/static/{name:.+}", static)
    r.add_get("/console/signin", signin)
    r.add_get("/console/auth/callback", callback)
    r.add_post("/console/signout", signout)
    r.add_get("/console/api/me", me)
    r.add_get("/console/api/live", live)
    r.add_get("/console/api/stream", stream)
    r.add_get("/console/api/chats/{tenant}/{session}", chat)
    r.add_get("/console/api/search", search)
    r.add_get("/console/api/figures", figures)
    r.add_get("/console/api/reports", reports)
    r.add_get("/console/api/reports.csv", reports_csv)
    r.add_post("/console/api/chats/{tenant}/{session}/assign", assign)
    r.add_post("/console/api/chats/{tenant}/{session}/transfer", transfer)
    r.add_post("/console/api/chats/{tenant}/{session}/close", force_close)
    r.add_post("/console/api/agents/{agent}/presence", presence)
