"""bots/activity_reader.py reads an Activity exactly as msrest does: the same model, or an
error where msrest raises one, on Teams' own shapes and on generated hostile JSON."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from botbuilder.schema import Activity
from botbuilder.schema.teams import TeamsChannelData
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msrest.serialization import Model

from bots import activity_reader
from bots.activity_reader import read_model
from tests import teams

URL = "http://127.0.0.1:9"


def _plain(value: Any) -> Any:
    """A model tree as plain data, every attribute and its type, for comparison."""
    if isinstance(value, Model):
        return (type(value).__name__, {k: _plain(v) for k, v in vars(value).items()})
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return ("nan",)
    return (type(value).__name__, value)


def _outcome(read, cls: type[Model], data: Any) -> Any:
    try:
        return _plain(read(cls, copy.deepcopy(data)))
    except Exception as exc:
        return ("error", type(exc).__name__)


def _msrest(cls: type[Model], data: Any) -> Model:
    return cls.deserialize(data)


def _same(cls: type[Model], data: Any) -> None:
    assert _outcome(read_model, cls, data) == _outcome(_msrest, cls, data), data


def _shapes() -> list[dict[str, Any]]:
    user = teams.TeamsUser.make("Ada Lovelace")
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [],
            "actions": [{"type": "Action.Submit", "title": "Go", "data": {"stage": "s"}}]}
    mention = teams.message(user, URL, "<at>Switchboard</at> help")
    mention["entities"] = [{"type": "mention", "text": "<at>Switchboard</at>",
                            "mentioned": {"id": "28:bot", "name": "Switchboard"}},
                           {"type": "clientInfo", "locale": "en-US", "country": "US"}]
    mention["replyToId"] = "1:abc"
    mention["relatesTo"] = {"activityId": "x", "conversation": {"id": "c"},
                            "bot": {"id": "b"}, "serviceUrl": URL}
    mention["attachments"] = [{"contentType": "text/html", "content": "<p>hi</p>"}]
    mention["localTimestamp"] = "2026-12-01T10:11:12.1234567+01:00"
    return [
        teams.message(user, URL, "hi"),
        teams.submit(user, URL, card, {"answer": "x"}, "Go"),
        teams.execute(user, URL, {**card, "actions": [{**card["actions"][0],
                                                        "type": "Action.Execute",
                                                        "verb": "go"}]}, {"answer": "x"}, "Go"),
        teams.install(user, URL),
        teams.installation_update(user, URL),
        mention,
    ]


@pytest.mark.parametrize("shape", range(len(_shapes())))
def test_teams_shapes_read_the_same(shape: int) -> None:
    data = _shapes()[shape]
    _same(Activity, data)
    activity = read_model(Activity, data)
    assert activity.channel_data is not None
    _same(TeamsChannelData, activity.channel_data)


def test_unknown_keys_become_additional_properties_and_timestamps_are_parsed() -> None:
    data = _shapes()[-1]
    activity = read_model(Activity, data)
    mention = activity.entities[0]
    assert mention.additional_properties["mentioned"]["name"] == "Switchboard"
    assert isinstance(activity.timestamp, datetime.datetime)
    assert activity.local_timestamp.utcoffset() == datetime.timedelta(hours=1)
    assert activity.relates_to.conversation.id == "c"


def test_the_plan_is_used_not_msrest(monkeypatch) -> None:
    """A reader that quietly fell back to msrest every time would pass the tests above."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("msrest was called")

    monkeypatch.setattr(Activity, "deserialize", classmethod(refuse))
    for data in _shapes():
        assert read_model(Activity, data).type == data["type"]


json_scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.sampled_from(["", "0", "1", "true", "False", "2026-12-01T10:00:00Z",
                                   "2026-13-45T99:00:00Z", "not a date", "message"])
                | st.text(max_size=8))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "name", "type", "text", "key", "value", "conversation",
                         "tenant", "team", "x"]), inner, max_size=3),
    max_leaves=8,
)

KEYS = ["type", "id", "timestamp", "localTimestamp", "serviceUrl", "channelId", "from",
        "conversation", "recipient", "text", "attachments", "entities", "channelData",
        "replyToId", "value", "membersAdded", "membersRemoved", "reactionsAdded",
        "relatesTo", "suggestedActions", "textHighlights", "semanticAction", "importance",
        "expiration", "listenFor", "callerId", "unknownKey"]


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(base=st.integers(0, 5), changes=st.dictionaries(st.sampled_from(KEYS), json_values,
                                                        max_size=4))
def test_hostile_activities_read_the_same(base: int, changes: dict[str, Any]) -> None:
    data = {**_shapes()[base], **changes}
    _same(Activity, data)


TEAMS_KEYS = ["tenant", "team", "channel", "eventType", "notification", "meeting",
              "settings", "onBehalfOf", "unknownKey"]


@settings(max_examples=500, deadline=None, derandomize=True)
@given(changes=st.dictionaries(st.sampled_from(TEAMS_KEYS), json_values, max_size=4))
def test_hostile_channel_data_reads_the_same(changes: dict[str, Any]) -> None:
    data = {**_shapes()[0]["channelData"], **changes}
    _same(TeamsChannelData, data)


def test_plans_are_built_once() -> None:
    read_model(Activity, _shapes()[0])
    plans = activity_reader._PLANS._plans
    assert Activity in plans
    before = plans[Activity]
    read_model(Activity, _shapes()[1])
    assert plans[Activity] is before
