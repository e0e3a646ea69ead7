"""Our CloudAdapter: the stock one with the invoke-response fix and clear 4xx answers.

botbuilder 4.17.1's `CloudAdapter.process` serializes an invoke response's body a second
time, which fails on the dict it already is and answers HTTP 500 to every
`adaptiveCard/action` (DESIGN.md). Here the body goes out as it is.

What each request gets:

- malformed (not JSON, not an Activity, no `type`, `serviceUrl` or `conversation.id`): 400
  saying what is wrong;
- not authenticated, when an app id is set (no token, a bad one, expired, for another app
  or issuer, a `serviceurl` claim that is not the activity's): 401, the reason logged.
  botbuilder raises PermissionError for some of these, and jwt's errors, IndexError,
  KeyError, AttributeError or a plain Exception for others (4.17.1): all are 401 here;
- the channel's signing keys could not be fetched: 503 with Retry-After;
- a turn that fails is logged with its traceback by `on_turn_error` (the person is told,
  an invoke gets a 500 error body); anything else that escapes is our bug: logged, 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import requests
from aiohttp import web
from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity, ActivityTypes
from msrest.serialization import Model

from bots.lean_turns import LeanTurns

log = logging.getLogger(__name__)


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": "BadRequest", "message": message}, status=400)


def _shape_problem(body: dict[str, Any]) -> str | None:
    """What makes `body` unusable as an Activity from a channel, before msrest reads it."""
    if not isinstance(body.get("type"), str) or not body["type"]:
        return "the Activity's `type` must be a non-empty string"
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://")):
        return "the Activity's `serviceUrl` must be an http(s) URL"
    conversation = body.get("conversation")
    if not isinstance(conversation, dict) or not isinstance(conversation.get("id"), str) or (
        not conversation["id"]
    ):
        return "the Activity's `conversation.id` must be a non-empty string"
    return None


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _plain(body: Any) -> Any:
    """An invoke response's body as JSON data (botbuilder's own handlers return models)."""
    return body.serialize() if isinstance(body, Model) else body


class SwitchboardAdapter(LeanTurns, CloudAdapter):
    async def process(self, request: web.Request, bot, ws_response=None) -> web.Response:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        if "application/json" not in request.headers.get("Content-Type", ""):
            raise web.HTTPUnsupportedMediaType(text="send application/json")
        try:
            body = await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError):
            return _bad_request("the body is not valid JSON")
        if not isinstance(body, dict):
            return _bad_request("the body must be a JSON object (an Activity)")
        problem = _shape_problem(body)
        if problem:
            return _bad_request(problem)
        try:
            activity: Activity = Activity().deserialize(body)
        except Exception:  # msrest raises many kinds on wrong types
            return _bad_request("the body is not a valid Activity")
        # botbuilder's parameterized authentication takes only None as "no header"
        auth_header = request.headers.get("Authorization") or None
        try:
            authenticated = await self.bot_framework_authentication.authenticate_request(
                activity, auth_header
            )
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
            invoke_response = await self.process_activity(authenticated, activity, bot.on_turn)
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


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    """Log with a traceback, tell the person something went wrong, keep serving."""
    log.exception(
        "turn failed",
        exc_info=error,
        extra={"conversation": getattr(context.activity.conversation, "id", None)},
    )
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
                "Sorry, something went wrong on our side. Your message was kept; "
                "please try again in a moment."
            )
        except Exception:  # the connector may be what failed
            log.warning("could not tell the user about the failure")
