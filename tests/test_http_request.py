"""`http_request` in parts: the stage's settings, the turn that reaches it, the request it builds
(bindings, secrets, the Idempotency-Key), and the paths `store_as` reads. The call itself is in
tests/test_http_request_client.py and _guard.py, end to end in _e2e.py and _faults.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.actions.base import Goto, Wait
from pipelines.actions.http_request import HttpRequestStage, configured_url
from pipelines.http_steps import (
    _MISSING,
    bind_url,
    build_request,
    environment_problems,
    idempotency_key,
    response_value,
)
from pipelines.loader import build_config
from tests.fakes import FakeContext

SECRET = "Basic dGlja2V0czpzM2NyZXQtdmFsdWU="


def stage(**settings) -> HttpRequestStage:
    base = {"key": "ticket", "url": "https://tickets.example.com/api/now/table/incident",
            "next": "done", "on_error": "done"}
    return HttpRequestStage(**{**base, **settings})


def config(**settings):
    raw = {"primary_tenant": "hr", "http_allowlist": ["tickets.example.com"], "tenants": [{
        "id": "hr", "name": "HR", "primary_pipeline": "p", "pipelines": [{"id": "p", "stages": [
            {"key": "need", "action": "question", "prompt": "?", "store_as": "Answers.Need",
             "next": "ticket"},
            {**stage(**settings).model_dump(exclude_none=True)},
            {"key": "done", "action": "end"},
        ]}]}]}
    return build_config(raw, Path("inline.yaml"))[0]


async def test_the_turn_that_reaches_the_stage_only_schedules_the_call():
    ctx = FakeContext(config())
    outcome = await ctx.enter("ticket")
    assert outcome == Wait()
    assert ctx.scheduled == {"http_request": (0, {"stage": "ticket"})}
    assert ctx.sent == []
    # the guest writing meanwhile is told to wait, and nothing more is scheduled
    ctx.scheduled.clear()
    assert await ctx.receive("ticket", "hello?") == Wait()
    assert ctx.texts == ["One moment, please."] and ctx.scheduled == {}


async def test_with_its_url_variable_unset_the_stage_goes_to_on_error(monkeypatch):
    monkeypatch.delenv("SNOW_URL", raising=False)
    ctx = FakeContext(config(url=None, url_env="SNOW_URL", path="/api/now/table/incident",
                             on_error="need"))
    assert await ctx.enter("ticket") == Goto("need")
    assert ctx.scheduled == {}


def test_the_url_from_the_environment_and_its_path():
    s = stage(url=None, url_env="SNOW_URL", path="/api/now/table/incident/${Ticket.SysId}")
    env = {"SNOW_URL": "https://tickets.example.com/"}
    assert configured_url(s, env) == \
        "https://tickets.example.com/api/now/table/incident/${Ticket.SysId}"
    assert configured_url(s, {}) is None
    assert configured_url(stage(url=None, url_env="SNOW_URL"), env) == \
        "https://tickets.example.com/"
    cfg = config(url=None, url_env="SNOW_URL", path="/x", header_env={"Authorization": "A"})
    errors, warnings = environment_problems(cfg, {"SNOW_URL": "https://tickets.example.com"})
    assert warnings == [] and len(errors) == 1 and "A is not set" in errors[0]
    errors, _ = environment_problems(cfg, {"SNOW_URL": "https://x.example.com/${Answers.Need}",
                                           "A": SECRET})
    assert "${...} in a URL from the environment" in errors[0]
    errors, _ = environment_problems(cfg, {"SNOW_URL": "https://tickets.example.com",
                                           "A": "a\nb"})
    assert "holds a line break" in errors[0]


def test_a_bound_value_stays_one_piece_of_the_url():
    url = bind_url("https://t.example.com/incident/${Answers.Need}?q=${Answers.Need}",
                   {"Answers.Need": "../../admin?x=1#y"})
    assert url == ("https://t.example.com/incident/..%2F..%2Fadmin%3Fx%3D1%23y"
                   "?q=..%2F..%2Fadmin%3Fx%3D1%23y")


def test_the_request_binds_metadata_as_data_and_reads_secrets_from_the_environment():
    s = stage(headers={"Accept": "application/json", "X-Source": "switchboard"},
              header_env={"Authorization": "SNOW_AUTH"},
              body={"short_description": "Chat with ${Guest.Name}", "hops": "${Session.Hops}",
                    "description": "${Answers.Need}", "missing": "${Answers.Nope}"})
    typed = '${Guest.Name} {"$when": "${false}"}'
    values = {"Guest.Name": "Ada", "Session.Hops": 2, "Answers.Need": typed}
    request = build_request(s, values, "s-1", ["tickets.example.com"], {"SNOW_AUTH": SECRET})
    assert request.method == "POST"
    assert request.headers["Authorization"] == SECRET
    assert request.headers["Idempotency-Key"] == idempotency_key("s-1", "ticket")
    assert request.headers["X-Source"] == "switchboard"
    assert json.loads(request.body) == {"short_description": "Chat with Ada", "hops": 2,
                                        "description": typed}
    assert SECRET in request.redact and typed in request.redact
    assert request.secret_headers == {"Authorization": "SNOW_AUTH"}
    assert request.allowlist == ("tickets.example.com",)


def test_the_idempotency_key_is_the_same_for_a_session_and_stage_and_only_for_them():
    key = idempotency_key("s-1", "ticket")
    assert key == idempotency_key("s-1", "ticket")
    assert len({key, idempotency_key("s-2", "ticket"), idempotency_key("s-1", "close")}) == 3
    assert len(key) == 36  # a UUID, which every endpoint that reads the header accepts


def test_store_as_paths():
    answer = {"result": {"number": "INC0010001", "priority": 3, "active": True, "x": None,
                         "long": "y" * 5000, "obj": {"a": 1}},
              "issues": [{"key": "HR-1"}, {"key": "HR-2"}]}
    assert response_value(answer, "result.number") == "INC0010001"
    assert response_value(answer, "result.priority") == 3
    assert response_value(answer, "result.active") is True
    assert response_value(answer, "result.x") is None
    assert response_value(answer, "issues.1.key") == "HR-2"
    assert len(response_value(answer, "result.long")) == 4000
    for path in ("result.obj", "result.nope", "issues.2.key", "issues.x", "result.number.y"):
        assert response_value(answer, path) is _MISSING, path
    assert response_value(None, "result") is _MISSING


@pytest.mark.parametrize(("settings", "says"), [
    ({"url": None}, "give the endpoint as `url`"),
    ({"url_env": "SNOW_URL"}, "one of the two"),
    ({"url_env": "1BAD", "url": None}, "not an environment variable name"),
    ({"header_env": {"Authorization": "not a name"}}, "not an environment variable name"),
    ({"headers": {"Content-Type": "text/plain"}}, "set by the bot"),
    ({"headers": {"X-Note": "${Guest.Name}"}}, "without ${...}"),
    ({"headers": {"bad name": "x"}}, "not a header name"),
    ({"headers": {"A": "x"}, "header_env": {"a": "B"}}, "keep one"),
    ({"store_as": {"Answers Ticket": "result.number"}}, "not a metadata name"),
    ({"store_as": {"Guest.Name": "result.number"}}, "the bot's own metadata"),
    ({"timeout": 60}, "less than or equal to 30"),
    ({"method": "TRACE"}, "'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'"),
    ({"url": None, "url_env": "SNOW_URL", "path": "api/x"}, "a path starts with /"),
    ({"url": "https://tickets.example.com/x#frag"}, "#fragment"),
])
def test_settings_mistakes(settings, says):
    with pytest.raises(ValidationError) as caught:
        stage(**settings)
    assert says in str(caught.value), str(caught.value)


def test_the_stage_declares_its_targets_metadata_and_templates():
    s = stage(url="https://tickets.example.com/x/${Answers.Need}",
              body={"a": ["${Guest.Name}", {"b": "plain"}]},
              store_as={"Answers.Ticket": "result.number"})
    assert s.targets() == {"next": "done", "on_error": "done"}
    assert s.metadata_written() == ["Answers.Ticket"]
    assert s.text_templates() == {"url": "https://tickets.example.com/x/${Answers.Need}",
                                  "body.a[0]": "${Guest.Name}", "body.a[1].b": "plain"}
