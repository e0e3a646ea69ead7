"""Teams-shaped activities, as Teams posts them to a bot in a personal chat."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

AAD_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT = {"id": "28:switchboard-bot", "name": "Switchboard"}
_ids = itertools.count(1)


@dataclass(frozen=True)
class TeamsUser:
    name: str
    aad_object_id: str
    conversation_id: str

    @classmethod
    def make(cls, name: str) -> TeamsUser:
        aad = str(uuid.uuid4())
        return cls(name, aad, f"a:1{uuid.uuid4().hex}")

    @property
    def id(self) -> str:
        return f"29:{self.aad_object_id}"


def _base(user: TeamsUser, service_url: str, type_: str) -> dict[str, Any]:
    return {
        "type": type_,
        "id": f"activity-{next(_ids)}",
        "timestamp": datetime.now(UTC).isoformat(),
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad_object_id},
        "recipient": dict(BOT),
        "conversation": {
            "id": user.conversation_id,
            "conversationType": "personal",
            "tenantId": AAD_TENANT,
        },
        "channelData": {"tenant": {"id": AAD_TENANT}},
        "locale": "en-US",
    }


def message(user: TeamsUser, service_url: str, text: str | None = None,
            value: dict[str, Any] | None = None) -> dict[str, Any]:
    activity = _base(user, service_url, "message")
    if text is not None:
        activity["text"] = text
        activity["textFormat"] = "plain"
    if value is not None:
        activity["value"] = value
    return activity


def submit(user: TeamsUser, service_url: str, card: dict[str, Any], inputs: dict[str, Any],
           button: str | None = None) -> dict[str, Any]:
    """Press an Action.Submit button of `card` (the first, or the one titled `button`)."""
    action = find_action(card, button)
    assert action["type"] == "Action.Submit", action
    return message(user, service_url, value={**(action.get("data") or {}), **inputs})


def execute(user: TeamsUser, service_url: str, card: dict[str, Any], inputs: dict[str, Any],
            button: str | None = None) -> dict[str, Any]:
    """Press an Action.Execute button: Teams sends an `adaptiveCard/action` invoke."""
    action = find_action(card, button)
    assert action["type"] == "Action.Execute", action
    activity = _base(user, service_url, "invoke")
    activity["name"] = "adaptiveCard/action"
    activity["value"] = {
        "action": {
            "type": "Action.Execute",
            "verb": action.get("verb"),
            "data": {**(action.get("data") or {}), **inputs},
        },
        "trigger": "manual",
    }
    return activity


def find_action(card: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    actions = list(_actions(card))
    assert actions, f"the card has no buttons: {card}"
    if title is None:
        return actions[0]
    for action in actions:
        if action.get("title") == title:
            return action
    raise AssertionError(f"no button {title!r} in {[a.get('title') for a in actions]}")


def _actions(node: Any):
    if isinstance(node, dict):
        if str(node.get("type", "")).startswith("Action."):
            yield node
        for value in node.values():
            yield from _actions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _actions(item)


def install(user: TeamsUser, service_url: str) -> dict[str, Any]:
    """Teams sends conversationUpdate (bot added) when a user installs a personal app."""
    activity = _base(user, service_url, "conversationUpdate")
    activity["membersAdded"] = [{"id": BOT["id"]}]
    activity["channelData"]["eventType"] = "teamMemberAdded"
    return activity


def installation_update(user: TeamsUser, service_url: str) -> dict[str, Any]:
    """Teams also sends installationUpdate (action add) when a user installs a personal app:
    a bot gets both events for one install."""
    activity = _base(user, service_url, "installationUpdate")
    activity["action"] = "add"
    return activity
