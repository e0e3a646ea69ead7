"""Read what Teams sent: the guest's identity, their text, their card submits."""

from __future__ import annotations

import re
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.core.teams.teams_activity_extensions import teams_get_channel_data
from botbuilder.schema import Activity

from pipelines.actions.base import GuestInput
from storage.models import MetadataValue

MAX_TEXT = 10_000
_MENTION = re.compile(r"<at>.*?</at>", re.DOTALL)


def guest_metadata(activity: Activity) -> dict[str, MetadataValue]:
    """Guest.* from the activity. The Entra tenant is in channelData.tenant.id in Teams."""
    sender = activity.from_property
    aad_tenant_id = None
    try:
        channel_data = teams_get_channel_data(activity)
        if channel_data is not None and channel_data.tenant is not None:
            aad_tenant_id = channel_data.tenant.id
    except Exception:  # malformed channelData: the guest still gets help
        aad_tenant_id = None
    if aad_tenant_id is None and activity.conversation is not None:
        aad_tenant_id = activity.conversation.tenant_id
    return {
        "Guest.Id": getattr(sender, "id", None),
        "Guest.Name": getattr(sender, "name", None) or None,
        "Guest.AadObjectId": getattr(sender, "aad_object_id", None),
        "Guest.AadTenantId": aad_tenant_id,
        "Guest.Locale": activity.locale,
    }


def _switchboard_data(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and isinstance(value.get("switchboard"), dict):
        return value["switchboard"]
    return {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 200 else None


def parse_message(context: TurnContext) -> GuestInput:
    """A message: typed text, or an Action.Submit whose inputs come in `value`."""
    activity = context.activity
    text = activity.text if isinstance(activity.text, str) else None
    if text is not None:
        text = _MENTION.sub("", text).strip()[:MAX_TEXT]
    value = activity.value if isinstance(activity.value, dict) else None
    data = _switchboard_data(value)
    return GuestInput(
        text=text or None,
        value=value,
        verb=_str(data.get("verb")),
        session_id=_str(data.get("session")),
        stage_key=_str(data.get("stage")),
        choice=_str(data.get("choice")),
        activity_id=_str(activity.id),
    )


def parse_execute(activity: Activity) -> GuestInput | None:
    """An Action.Execute (`adaptiveCard/action` invoke): the data is in value.action.data."""
    value = activity.value if isinstance(activity.value, dict) else None
    action = value.get("action") if value else None
    if not isinstance(action, dict) or action.get("type") != "Action.Execute":
        return None
    data = action.get("data") if isinstance(action.get("data"), dict) else {}
    sb = _switchboard_data(data)
    return GuestInput(
        text=None,
        value=data,
        verb=_str(sb.get("verb")) or _str(action.get("verb")),
        session_id=_str(sb.get("session")),
        stage_key=_str(sb.get("stage")),
        choice=_str(sb.get("choice")),
        invoke=True,
        activity_id=_str(activity.id),
    )
