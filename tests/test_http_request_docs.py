"""The README's ServiceNow and Jira stages, as written there, against the local stand-in for
both APIs (tests/ticket_desk.py): what the endpoint receives, and what the stages keep. Only
the host changes (to the stand-in's loopback address)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipelines.actions.http_request import HttpRequestStage
from pipelines.http_calls import HttpClient, Outcome
from pipelines.http_steps import build_request, idempotency_key, response_value
from tests.ticket_desk import TicketDesk

README = Path(__file__).resolve().parents[1] / "README.md"
VALUES = {"Guest.Name": "Jordan Rivera", "Answers.HrTopic": "Something else",
          "Answers.Need": "A question about my contract hours",
          "Session.Id": "7fc522c310c7461699f763dfbad18c08"}


def readme_stages() -> dict[str, dict]:
    """The `http_request` stages of the README's YAML blocks, by key."""
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL):
        parsed = yaml.safe_load(block)
        if isinstance(parsed, list):
            for stage in parsed:
                if isinstance(stage, dict) and stage.get("action") == "http_request":
                    found[stage["key"]] = stage
    return found


@pytest.fixture
async def desk():
    desk = await TicketDesk().start()
    yield desk
    await desk.stop()


async def run(stage: dict, desk: TicketDesk, values: dict, host: str):
    settings = {**stage, "url": stage["url"].replace(f"https://{host}", desk.url)}
    request = build_request(HttpRequestStage(**settings), values, values["Session.Id"],
                            ["127.0.0.1"], {"SNOW_AUTH": desk.auth, "JIRA_AUTH": desk.auth})
    client = HttpClient()
    try:
        result = await client.call(request)
    finally:
        await client.close()
    assert result.outcome == Outcome.DONE, result
    return request, {name: response_value(result.json, path)
                     for name, path in stage.get("store_as", {}).items()}


async def test_the_servicenow_stages_open_and_resolve_an_incident(desk):
    stages = readme_stages()
    request, kept = await run(stages["ticket"], desk, VALUES, "acme.service-now.com")
    [incident] = desk.created()
    assert kept == {"Answers.Ticket": incident["number"], "Ticket.SysId": incident["sys_id"]}
    [post] = desk.posts()
    assert (post.path, post.query) == ("/api/now/table/incident",
                                       {"sysparm_fields": "number,sys_id"})
    # the request the README shows is the one sent
    text = README.read_text()
    assert json.dumps(post.body, ensure_ascii=False) in text
    assert f"Idempotency-Key: {idempotency_key(VALUES['Session.Id'], 'ticket')}" in text
    assert request.headers["Idempotency-Key"] == post.headers["Idempotency-Key"]

    await run(stages["resolve"], desk, {**VALUES, **kept}, "acme.service-now.com")
    [patch] = [r for r in desk.requests if r.method == "PATCH"]
    assert patch.path == f"/api/now/table/incident/{incident['sys_id']}"
    assert desk.tickets[incident["sys_id"]]["state"] == "6"
    assert patch.body["close_notes"] == f"Resolved in chat {VALUES['Session.Id']}"


async def test_the_jira_stage_creates_an_issue(desk):
    _, kept = await run(readme_stages()["issue"], desk, VALUES, "acme.atlassian.net")
    [post] = desk.posts()
    assert post.path == "/rest/api/3/issue"
    fields = post.body["fields"]
    assert fields["project"] == {"key": "HR"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "HR chat with Jordan Rivera: Something else"
    assert fields["description"]["content"][0]["content"][0] == {
        "type": "text", "text": "A question about my contract hours"}
    assert kept == {"Answers.Ticket": "HR-1", "Ticket.JiraId": "10001"}
