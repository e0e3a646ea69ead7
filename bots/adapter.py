"""Our CloudAdapter: the stock one with the invoke-response fix and clear 4xx answers.

botbuilder 4.17.1's `CloudAdapter.process` serializes an invoke response's body a second
time, which fails on the dict it already is and answers HTTP 500 to every
`adaptiveCard/action` (DESIGN.md). Here the body goes out as it is.

What each request gets:

- malformed: 400 saying what is wrong, logged. Not JSON; not an object; no `type`,
  `serviceUrl` (http or https) or `conversation.id`; a member added or removed without an
  `id`, or a null in a list (botbuilder's dispatch failed on both); a field whose JSON type
  is not the schema's (msrest would quietly turn `{"a": 1}` into the string "{'a': 1}"); a
  Teams activity without `channelData`; nested more than MAX_DEPTH levels; a lone surrogate
  in a string; a charset that is not a text encoding; a body that does not match its
  Content-Encoding (the connection is then closed). Over the app's `client_max_size`
  (256 KB): 413, by its Content-Length before it is read, or as soon as a streamed body
  passes it (bots/request_body.py);
- not authenticated, when an app id is set (no token, a bad one, expired, for another app
  or issuer, a `serviceurl` claim that is not the activity's): 401, the reason logged.
  botbuilder raises PermissionError for some of these, and jwt's errors, IndexError,
  KeyError, AttributeError or a plain Exception for others (4.17.1): all are 401 here;
- the channel's signing keys could not be fetched: 503 with Retry-After;
- a turn that fails is logged with its traceback by `on_turn_error` (the person is told,
  an invoke gets a 500 error body, not botbuilder's 501); anything else that escapes is our
  bug: logged with its traceback, 500.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import requests
from aiohttp import web
from botbuilder import schema
from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes
from botbuilder.schema import teams as teams_schema
from botbuilder.schema.teams import TeamsChannelData
from botframework.connector import Channels
from botframework.connector.auth import AuthenticationConstants, ClaimsIdentity
from msrest.serialization import Model

import telemetry
from bots.activity_reader import read_activity, read_model
from bots.json_logging import quiet_known_noise
from bots.lean_turns import LeanTurns
from bots.request_body import Refusal, read_text

log = logging.getLogger(__name__)


# Teams' activities, cards included, nest a few levels; a hostile one could nest thousands
MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def _bad_request(message: str) -> web.Response:
    return _refused(Refusal(400, message, close=False))


def _refused(refusal: Refusal) -> web.Response:
    kind = "too large" if refusal.status == 413 else "malformed"
    log.warning(f"request refused: {kind}", extra={"reason": refusal.message})
    error = "PayloadTooLarge" if refusal.status == 413 else "BadRequest"
    response = web.json_response({"error": error, "message": refusal.message},
                                 status=refusal.status)
    if refusal.close:
        response.force_close()  # sends Connection: close
    return response


def _content_problem(value: Any) -> str | None:
    """Nested deeper than MAX_DEPTH, or a string that is not Unicode text (a lone surrogate,
    which JSON's \\u escapes can carry and nothing downstream can encode). Without
    recursion: the point is to refuse what would exhaust it later, when a turn copies,
    stores or sends the activity."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return "the Activity has a string that is not valid Unicode (a lone surrogate)"
            continue
        if isinstance(node, dict):
            children = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            return f"the Activity is nested more than {MAX_DEPTH} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def _shape_problem(body: dict[str, Any]) -> str | None:
    """What makes `body` unusable as an Activity from a channel, before msrest reads it."""
    problem = _content_problem(body)
    if problem:
        return problem
    if not isinstance(body.get("type"), str) or not body["type"]:
        return "the Activity's `type` must be a non-empty string"
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://")):
        return "the Activity's `serviceUrl` must be an http(s) URL"
    conversation = body.get("conversation")
    if not isinstance(conversation, dict) or not _is_id(conversation.get("id")):
        return "the Activity's `conversation.id` must be a non-empty string"
    for key in ("membersAdded", "membersRemoved"):
        # botbuilder's handlers read each member's id (Teams asks the connector for it)
        members = body.get(key)
        for index, member in enumerate(members if isinstance(members, list) else []):
            if isinstance(member, dict) and not _is_id(member.get("id")):  # null: below
                return f"`{key}[{index}].id` must be a non-empty string"
    return None


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _require_expiry(identity: ClaimsIdentity) -> None:
    """jwt checks `exp` only when a token has one; every Bot Framework token has one."""
    if identity.authentication_type == AuthenticationConstants.ANONYMOUS_AUTH_TYPE:
        return  # local development mode: no token at all
    expiry = identity.claims.get("exp")
    if not isinstance(expiry, int | float) or isinstance(expiry, bool):
        raise PermissionError("the token has no expiry")


def _type_problem(data: dict[str, Any], model: type[Model], path: str = "") -> str | None:
    """The first field whose JSON type is not the one the Bot Framework schema gives it.

    msrest is lenient: a number or an object where a string belongs becomes its Python
    repr (an `id` of `{"a": 1}` turns into "{'a': 1}" and ends up in a URL). Unknown fields
    are left alone, as msrest leaves them.
    """
    for spec in model._attribute_map.values():
        key, kind = spec["key"], spec["type"]
        value = data.get(key)
        if value is None:
            continue
        where = f"{path}{key}"
        if kind.startswith(("[", "{")):
            if kind.startswith("[") and not isinstance(value, list):
                return f"`{where}` must be a list"
            if kind.startswith("{") and not isinstance(value, dict):
                return f"`{where}` must be an object"
            items = value.values() if isinstance(value, dict) else value
            for index, item in enumerate(items):
                if item is None and kind.startswith("["):
                    # msrest keeps it, and whatever iterates the list fails on it
                    return f"`{where}[{index}]` must not be null"
                problem = _value_problem(item, kind[1:-1], f"{where}[{index}]")
                if problem:
                    return problem
        else:
            problem = _value_problem(value, kind, where)
            if problem:
                return problem
    return None


def _value_problem(value: Any, kind: str, where: str) -> str | None:
    if value is None or kind == "object":
        return None
    if kind in ("str", "iso-8601"):
        return None if isinstance(value, str) else f"`{where}` must be a string"
    if kind == "bool":
        return None if isinstance(value, bool) else f"`{where}` must be true or false"
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"`{where}` must be an integer"
    model = getattr(teams_schema, kind, None) or getattr(schema, kind, None)
    if isinstance(model, type) and issubclass(model, Model):
        if not isinstance(value, dict):
            return f"`{where}` must be an object"
        return _type_problem(value, model, f"{where}.")
    return None


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _plain(body: Any) -> Any:
    """An invoke response's body as JSON data (botbuilder's own handlers return models)."""
    return body.serialize() if isinstance(body, Model) else body


class StockAdapter(CloudAdapter):
    """botbuilder's turn as shipped (clients per turn, `requests`), with our `process`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        quiet_known_noise()  # what aiohttp and msrest log about a caller's request

    async def process(self, request: web.Request, bot, ws_response=None) -> web.Response:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        if "application/json" not in request.headers.get("Content-Type", ""):
            raise web.HTTPUnsupportedMediaType(text="send application/json")
        text = await read_text(request, request.client_max_size)
        if isinstance(text, Refusal):
            return _refused(text)
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            return _bad_request("the body is not valid JSON")
        if not isinstance(body, dict):
            return _bad_request("the body must be a JSON object (an Activity)")
        problem = _shape_problem(body) or _type_problem(body, Activity)
        if not problem and body.get("channelId") == Channels.ms_teams:
            # Teams always sends it, and botbuilder's Teams handler reads it unguarded
            if not isinstance(body.get("channelData"), dict):
                problem = "a Teams Activity's `channelData` must be an object"
            else:
                problem = _type_problem(body["channelData"], TeamsChannelData, "channelData.")
        if problem:
            return _bad_request(problem)
        try:
            activity = read_activity(body)
            if activity.channel_id == Channels.ms_teams and activity.channel_data is not None:
                # botbuilder reads it lazily, deep in a turn: a bad one would fail there
                read_model(TeamsChannelData, activity.channel_data)
        except Exception:  # msrest raises many kinds on wrong types
            return _bad_request("the body is not a valid Activity")
        # botbuilder's parameterized authentication takes only None as "no header"
        auth_header = request.headers.get("Authorization") or None
        try:
            authenticated = await self.bot_framework_authentication.authenticate_request(
                activity, auth_header
            )
            _require_expiry(authenticated.claims_identity)
        except requests.RequestException as exc:
            # the channel's signing keys could not be fetched: not the caller's fault
            log.error("could not fetch the keys that sign Bot Framework tokens",
                      extra={"reason": _reason(exc)})
            return web.json_response(
                {"error": "ServiceUnavailable", "message": "try again shortly"},
                status=503, headers={"Retry-After": "5"},
            )
        except Exception as exc:  # PermissionError, jwt's errors, botbuilder's plain ones
            log.warning("request refused: not authenticated",
                        extra={"reason": _reason(exc), "activity_type": activity.type})
            return web.json_response(
                {"error": "Unauthorized", "message": "a valid Bot Framework token is required"},
                status=401, headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            invoke_response = await telemetry.in_turn(
                self.process_activity(authenticated, activity, bot.on_turn), activity)
        except Exception:  # the turn's own errors go to on_turn_error: this is our bug
            log.exception("request failed", extra={
                "activity_type": activity.type,
                "conversation": getattr(activity.conversation, "id", None),
            })
            return web.json_response(
                {"error": "InternalError", "message": "the bot failed; this was logged"},
                status=500,
            )
        if invoke_response:
            return web.json_response(
                _plain(invoke_response.body), status=int(invoke_response.status)
            )
        return web.Response(status=201)


class SwitchboardAdapter(LeanTurns, StockAdapter):
    """The same, without the framework's per-turn overheads (bots/lean_turns.py)."""


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    """Log with a traceback, tell the person something went wrong, keep serving."""
    telemetry.turn_failed()
    log.exception("turn failed", exc_info=error,
                  extra={"conversation": getattr(context.activity.conversation, "id", None)})
    if context.activity.type == "invoke":
        # without this, botbuilder answers 501 "not implemented", which hides the failure
        body = {"statusCode": 500, "type": "application/vnd.microsoft.error",
                "value": {"code": "InternalError", "message": "Something went wrong."}}
        await context.send_activity(Activity(
            type=ActivityTypes.invoke_response, value=InvokeResponse(status=500, body=body)
        ))
        return
    if context.activity.type == "message":
        try:
            await context.send_activity(
                "Sorry, something went wrong on our side. If you get no answer in a "
                "minute, please send that again."
            )
        except Exception:  # the connector may be what failed
            log.warning("could not tell the user about the failure")
