"""Our CloudAdapter: the stock one with the invoke-response fix and clear 4xx answers.

botbuilder 4.17.1's `CloudAdapter.process` serializes an invoke response's body a second
time, which fails on the dict it already is and answers HTTP 500 to every
`adaptiveCard/action` (DESIGN.md). Here the body goes out as it is. Malformed requests
get a 400 that says what is wrong, never a 500.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity

from bots.lean_turns import LeanTurns

log = logging.getLogger(__name__)


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": "BadRequest", "message": message}, status=400)


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
        if not isinstance(body.get("type"), str) or not body["type"]:
            return _bad_request("the Activity's `type` must be a non-empty string")
        try:
            activity: Activity = Activity().deserialize(body)
        except Exception:  # msrest raises many kinds on wrong types
            return _bad_request("the body is not a valid Activity")
        auth_header = request.headers.get("Authorization", "")
        try:
            invoke_response = await self.process_activity(auth_header, activity, bot.on_turn)
        except PermissionError:
            raise web.HTTPUnauthorized() from None
        if invoke_response:
            return web.json_response(invoke_response.body, status=invoke_response.status)
        return web.Response(status=201)


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    """Log with a traceback, tell the person something went wrong, keep serving."""
    log.exception(
        "turn failed",
        exc_info=error,
        extra={"conversation": getattr(context.activity.conversation, "id", None)},
    )
    if context.activity.type == "message":
        try:
            await context.send_activity(
                "Sorry, something went wrong on our side. Your message was kept; "
                "please try again in a moment."
            )
        except Exception:  # the connector may be what failed
            log.warning("could not tell the user about the failure")
