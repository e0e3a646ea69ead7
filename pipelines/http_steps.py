"""The call of an `http_request` stage, run as a step of its own on the session.

The turn that reaches the stage writes, with the session, a timer due at once
(`pipelines/actions/http_request.py`). The timer (claimed with a lease, storage/timers.py) runs
`HttpSteps.on_timer`: through `Engine.act`, keyed by the timer, it reads the session, makes the
call, and writes the outcome (the `store_as` metadata, a record of the call, the next stage)
in one write, with the timer marked as handled. So:

- a redelivered activity finds its turn done: it does not schedule a second call;
- a timer fired again after that write finds itself handled: no second call;
- a session that passes the stage again after a success does not call again: the record
  `http:<stage>` says it was done (at most once per session and stage);
- a crash between the call and the write leaves the timer, which fires again (at once for
  the same instance restarted, after its lease for another) and makes the call again with the
  same `Idempotency-Key` (derived from the session and the stage): an endpoint that honours
  the key answers with what it did the first time. One that ignores it (ServiceNow's Table
  API, Jira's REST API) may act twice in that window, which lasts one store write.

An error, a refusal or a timeout goes to `on_error`: a call whose outcome is unknown is not
made again by the bot. Nothing secret and nothing a guest typed is logged.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from cards.binding import bind, split
from cards.expressions import Expression, format_value
from pipelines.actions.base import Goto, Outcome
from pipelines.actions.http_request import TIMER_KIND, HttpRequestStage, configured_url
from pipelines.http_calls import CallResult, HttpClient, OutgoingRequest
from pipelines.http_calls import Outcome as Result
from pipelines.url_guard import Refused, check_url
from storage.layout import TENANT_DATA
from storage.models import MetadataValue, SessionState
from storage.timers import NotYet, Timer

if TYPE_CHECKING:
    from pipelines.config import SwitchboardConfig
    from pipelines.engine import Engine, Turn

log = logging.getLogger("switchboard.http_request")

RECORD_TYPE = "http_call"
# a timer whose session does not want it yet may be the first half of a write in flight
NOT_YET_WINDOW = 15.0
MAX_STORED_CHARS = 4000
_KEYS = uuid.UUID("5b7c9f7e-31a4-4c1e-9d53-2c6f0b8a4e10")


TimerHandler = Callable[[Timer], Awaitable[None]]


class Caller(Protocol):
    async def call(self, request: OutgoingRequest) -> CallResult: ...


class NotWanted(Exception):
    """The timer is not (or no longer) the session's: nothing is written."""


def idempotency_key(session_id: str, stage_key: str) -> str:
    """The same for every attempt of one session's stage, different for any other."""
    return str(uuid.uuid5(_KEYS, f"{session_id}\x1f{stage_key}"))


def record_name(stage_key: str) -> str:
    return f"http:{stage_key}"


def bind_url(template: str, values: Mapping[str, Any]) -> str:
    """Each `${...}` filled percent-encoded: a bound value stays one piece of the path or query
    (a `/`, `?` or `#` in it cannot change where the request goes)."""
    if "${" not in template:
        return template
    return "".join(quote(format_value(p.evaluate(values)), safe="")
                   if isinstance(p, Expression) else p for p in split(template))


def build_request(stage: HttpRequestStage, values: Mapping[str, Any], session_id: str,
                  allowlist: list[str], environ: Mapping[str, str] = os.environ
                  ) -> OutgoingRequest:
    template = configured_url(stage, environ)
    if template is None:
        raise Refused(f"{stage.url_env} is not set")
    headers = {"Accept": "application/json", **stage.headers}
    secrets = []
    for header, variable in stage.header_env.items():
        value = environ.get(variable, "")
        if value:
            headers[header] = value
            secrets.append(value)
    headers["Idempotency-Key"] = idempotency_key(session_id, stage.key)
    data = None
    if stage.body is not None:
        data = json.dumps(bind(stage.body, values), ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    typed = [v for v in values.values() if isinstance(v, str)]
    return OutgoingRequest(stage.method, bind_url(template, values), headers, data,
                           stage.timeout, tuple(allowlist), tuple(secrets + typed),
                           dict(stage.header_env))


_MISSING = object()


def response_value(data: Any, path: str) -> Any:
    """The value at `path` (`result.number`, `issues.0.key`) of a JSON answer, if it is text,
    a number, true/false or null; `_MISSING` otherwise."""
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    if isinstance(node, str):
        return node[:MAX_STORED_CHARS]
    if node is None or isinstance(node, bool | int | float):
        return node
    return _MISSING


class HttpSteps:
    """Runs the calls of `http_request` stages when their timers fire."""

    def __init__(self, engine: Engine, caller: Caller | None = None, *,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.engine = engine
        self.caller: Caller = caller or HttpClient()
        self.environ = environ

    async def close(self) -> None:
        close = getattr(self.caller, "close", None)
        if close is not None:
            await close()

    def timers_or(self, other: TimerHandler) -> TimerHandler:
        """One handler for the timer runner: a call's timers here, every other kind to
        `other` (live-agent routing)."""

        async def on_timer(timer: Timer) -> None:
            await (self.on_timer if timer.kind == TIMER_KIND else other)(timer)

        return on_timer

    async def on_timer(self, timer: Timer) -> None:
        step = _Step(self, timer)
        try:
            await self.engine.act(timer.tenant_id, timer.session_id, step.run,
                                  key=f"timer:{timer.key}")
        except NotWanted:
            return
        except LookupError:
            # the session's first write may still be on its way (timers are written first)
            if step.young():
                raise NotYet(f"{timer.describe()}: its session is not written yet") from None


class _Step:
    """One firing of a call's timer. `Engine.act` may run it again on a newer session (another
    write came first): the call is made once, and its result applied to the newer state."""

    def __init__(self, steps: HttpSteps, timer: Timer) -> None:
        self.steps = steps
        self.timer = timer
        self.result: CallResult | None = None
        self.done_before = False

    def young(self) -> bool:
        return self.steps.engine.clock() - self.timer.scheduled_at < NOT_YET_WINDOW

    async def run(self, turn: Turn) -> Outcome | None:
        session = turn.session
        if session.timers.get(TIMER_KIND) != self.timer.key:
            if self.young() and TIMER_KIND not in session.timers and (
                    session.state == SessionState.OPEN):
                raise NotYet(f"{self.timer.describe()}: the write that wants it has not landed")
            raise NotWanted
        del session.timers[TIMER_KIND]
        stage = turn.stage
        if (not isinstance(stage, HttpRequestStage) or stage.key != self.timer.payload.get("stage")
                or not session.state.live):
            return None
        if self.result is None and not self.done_before:
            self.done_before = await _done(turn, stage)
            if not self.done_before:
                self.result = await self._call(turn, stage)
        if self.done_before:
            log.info("http_request already done in this session: not called again",
                     extra=_where(turn, stage, self.steps.environ))
            return Goto(stage.next)
        assert self.result is not None
        return _apply(turn, stage, self.result, self.steps.environ)

    async def _call(self, turn: Turn, stage: HttpRequestStage) -> CallResult:
        try:
            request = build_request(stage, turn.values(), turn.session.id,
                                    turn.config.http_allowlist, self.steps.environ)
        except Refused as exc:
            return CallResult(Result.REFUSED, reason=str(exc))
        return await self.steps.caller.call(request)


async def _done(turn: Turn, stage: HttpRequestStage) -> bool:
    """Whether this session's stage called successfully before (its record says so)."""
    session = turn.session
    name = record_name(stage.key)
    # SessionStore keeps a session's records as `<session id>:<name>` beside it
    doc = await turn.engine.store.docs.read(TENANT_DATA, (session.tenant_id, session.id),
                                            f"{session.id}:{name}")
    return doc is not None and doc.body.get("outcome") == Result.DONE


def _apply(turn: Turn, stage: HttpRequestStage, result: CallResult,
           environ: Mapping[str, str]) -> Outcome:
    where = _where(turn, stage, environ)
    fields = {**where, "outcome": result.outcome.value, "status": result.status,
              "attempts": result.attempts, "seconds": result.seconds}
    if result.outcome == Result.NOT_SENT:
        return Goto(stage.next)
    stored: list[str] = []
    missing: list[str] = []
    if result.outcome == Result.DONE:
        for name, path in stage.store_as.items():
            value = response_value(result.json, path)
            if value is _MISSING:
                missing.append(name)
                continue
            turn.set_metadata(name, _metadata(value))
            stored.append(name)
    turn.keep(record_name(stage.key), {
        "type": RECORD_TYPE, "at": turn.now().isoformat(timespec="milliseconds"),
        "stage": stage.key, "method": stage.method, "host": fields["host"],
        "outcome": result.outcome.value, "status": result.status, "attempts": result.attempts,
        "seconds": result.seconds, "idempotencyKey": fields["idempotency_key"],
        "stored": stored, "missing": missing, "reason": result.reason,
    })
    if result.outcome == Result.DONE:
        if missing:
            log.warning("http_request answered without %s: left unset", ", ".join(missing),
                        extra={**fields, "stored": stored, "missing": missing})
        else:
            log.info("http_request done", extra={**fields, "stored": stored})
        return Goto(stage.next)
    log.warning("http_request %s: %s; going to on_error", result.outcome.value, result.reason,
                extra={**fields, "retried": result.retried})
    return Goto(stage.on_error)


def _metadata(value: Any) -> MetadataValue:
    return value if value is None or isinstance(value, str | bool | int | float) else str(value)


def _where(turn: Turn, stage: HttpRequestStage, environ: Mapping[str, str]) -> dict[str, Any]:
    session = turn.session
    template = configured_url(stage, environ) or f"${stage.url_env}"
    host = template.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    return {"tenant": session.tenant_id, "session": session.id, "stage": stage.key,
            "method": stage.method, "host": host,
            "idempotency_key": idempotency_key(session.id, stage.key)}


# -- what the environment must hold ------------------------------------------------------


def http_stages(config: SwitchboardConfig):
    for tenant in config.tenants:
        for pipeline in tenant.pipelines:
            for stage in pipeline.stages:
                if isinstance(stage, HttpRequestStage):
                    yield tenant, pipeline, stage


def environment_problems(config: SwitchboardConfig, environ: Mapping[str, str] = os.environ,
                         file: str = "") -> tuple[list[str], list[str]]:
    """(errors, warnings) about the variables `http_request` stages read: a URL that the guard
    refuses or a secret that is missing stop the bot; a URL variable that is not set turns its
    stage off (it goes to `on_error` without calling), which is a warning."""
    errors: list[str] = []
    warnings: list[str] = []
    for tenant, pipeline, stage in http_stages(config):
        where = (f"{file or config.source} > tenant {tenant.id!r} > pipeline {pipeline.id!r} > "
                 f"stage {stage.key!r}")
        url = configured_url(stage, environ)
        if url is None:
            warnings.append(f"{where}: {stage.url_env} is not set: the stage calls nothing and "
                            f"goes to `on_error` ({stage.on_error}); set it to the endpoint's "
                            f"https:// URL")
            continue
        if stage.url_env is not None:
            base = environ.get(stage.url_env, "").strip()
            try:
                if "${" in base:
                    raise Refused("${...} in a URL from the environment: bind in `path`")
                check_url(url.replace("${", "x").replace("}", "x"), config.http_allowlist)
            except Refused as exc:
                errors.append(f"{where}: {stage.url_env}={base.split('?', 1)[0]!r}: {exc}")
        for header, variable in stage.header_env.items():
            value = environ.get(variable)
            if not value:
                errors.append(f"{where}: {variable} is not set: it holds the {header} header "
                              f"of the call: set it in the bot's environment")
            elif any(c in value for c in "\r\n\0"):
                errors.append(f"{where}: {variable} holds a line break: a header value is one "
                              f"line")
    return errors, warnings
