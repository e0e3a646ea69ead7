"""Read what Teams sent: the guest's identity, their text, their card submits."""

from __future__ import annotations

from typing import Any

from botbuilder.core import TurnContext
from botbuilder.core.teams.teams_activity_extensions import teams_get_channel_data
from botbuilder.schema import Activity

from pipelines.actions.base import GuestInput
from storage.models import MetadataValue

MAX_TEXT = 10_000


def strip_mentions(text: str) -> str:
    """`text` without its `<at>...</at>` mentions (Teams wraps the bot's name in them).

    The same result as `re.sub(r"<at>.*?</at>", "", text, flags=re.DOTALL)`, in one pass:
    that regex scans to the end of the text from every `<at>` that has no `</at>` after it,
    which is quadratic (16,000 of them took 8 s). Once an `<at>` has no `</at>` after it,
    no later one has either.
    """
    kept: list[str] = []
    start = 0
    while (opening := text.find("<at>", start)) >= 0:
        closing = text.find("</at>", opening + 4)
        if closing < 0:
            break
        kept.append(text[start:opening])
        start = closing + 5
    kept.append(text[start:])
    return "".join(kept)


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


# Every verb a Switchboard card button carries (`{"switchboard": {"verb": ...}}`). A card
# action with any other verb, or with data that is not short strings, did not come from a
# card of ours as we sent it: it is refused before it reaches a session. A new action that
# adds a verb adds it here (tests/test_authorization.py checks the sources for verbs).
GUEST_VERBS = frozenset({"answer", "choose", "cancel", "solved", "more", "rate", "skip"})
AGENT_VERBS = frozenset({"accept", "consult"})
MAX_ID = 200
_ID_KEYS = ("verb", "session", "stage", "choice", "tenant")


def card_action_problem(activity: Activity) -> str | None:
    """Why a card action's Switchboard data was tampered with, or None when it is sound.

    Plain text and a card submit without Switchboard data (an admin's own card) are
    not card actions of ours: None.
    """
    value = activity.value
    verbs: list[Any] = []
    if activity.type == "invoke":
        action = value.get("action") if isinstance(value, dict) else None
        if not isinstance(action, dict):
            return None  # parse_execute refuses it
        if action.get("verb") is not None:
            verbs.append(action["verb"])
        value = action.get("data")
    if not isinstance(value, dict) or "switchboard" not in value:
        return _verb_problem(verbs)
    data = value["switchboard"]
    if not isinstance(data, dict):
        return "its data is not an object"
    for key in _ID_KEYS:
        if key in data and (
            not isinstance(data[key], str) or not data[key] or len(data[key]) > MAX_ID
        ):
            return f"its `{key}` is not a short string"
    return _verb_problem([*verbs, data.get("verb")])


def _verb_problem(verbs: list[Any]) -> str | None:
    for verb in verbs:
        if not isinstance(verb, str) or verb not in GUEST_VERBS | AGENT_VERBS:
            return "it has an unknown verb"
    return None


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
        text = strip_mentions(text).strip()[:MAX_TEXT]
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
