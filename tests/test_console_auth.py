"""The console's sign-in, sign-out, roles and CSRF, through the real aiohttp app.

Sign-in is MSAL's authorization-code flow with PKCE against a local Entra stand-in on
loopback (tests/console_identity.py), which checks the code verifier against the challenge
and the client secret, and signs a real ID token.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from aiohttp.test_utils import make_mocked_request

from console.auth import FLOW_COOKIE, SESSION_COOKIE, Auth
from pipelines.loader import ConfigError, load_config
from tests.connector import start_connector
from tests.console_identity import CLIENT_ID, ConsoleIdentity, Person
from tests.console_support import (
    ADMIN,
    HR_SUPERVISOR,
    IT_SUPERVISOR,
    NOBODY,
    Browser,
    console_config,
    sign_in_settings,
)
from tests.harness import BotServer, FakeClock, settings_for


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    server = ConsoleIdentity(tmp_path_factory.mktemp("console-identity")).start()
    yield server
    server.stop()


@pytest.fixture
async def bot(tmp_path, identity, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.cert_path))
    settings = settings_for(tmp_path, config_path=str(console_config(tmp_path)),
                            **sign_in_settings(identity))
    server = await BotServer(settings, clock=FakeClock()).start()
    yield server
    await server.stop()


def _local(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _cookie(browser: Browser, name: str) -> str:
    return next(c for c in browser.set_cookies if c.startswith(name + "="))


async def test_sign_in_is_the_code_flow_with_pkce_and_sets_a_safe_cookie(bot, identity):
    browser = Browser(bot)
    status, _, response = await browser.get("/console/")
    assert status == 302 and response.headers["Location"] == "/console/signin"
    await browser.sign_in(identity, HR_SUPERVISOR)
    sent = identity.authorize_requests[-1]
    assert sent["client_id"] == CLIENT_ID and sent["response_type"] == "code"
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] and sent["state"]
    assert sent["redirect_uri"] == "http://127.0.0.1/console/auth/callback"
    redeemed = identity.token_requests[-1]
    digest = hashlib.sha256(redeemed["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).decode().rstrip("=") == sent["code_challenge"]
    cookie = _cookie(browser, SESSION_COOKIE).lower()
    for attribute in ("httponly", "secure", "samesite=lax", "path=/"):
        assert attribute in cookie, cookie
    assert "secure" in _cookie(browser, FLOW_COOKIE).lower()
    status, me, _ = await browser.get("/console/api/me")
    assert status == 200 and me["name"] == "Hana Supervisor" and not me["admin"]
    assert [d["id"] for d in me["departments"]] == ["hr"] and me["csrf"]
    status, page, _ = await browser.get("/console/")
    assert status == 200 and "Switchboard console" in page


async def test_a_callback_not_started_in_this_browser_or_replayed_is_refused(bot, identity):
    victim = Browser(bot)
    identity.signs_in = HR_SUPERVISOR
    _, _, response = await Browser(bot).get("/console/signin")  # someone else's flow
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(
            response.headers["Location"], allow_redirects=False, ssl=False) as answer:
        callback = _local(answer.headers["Location"])
    status, body, _ = await victim.get(callback)  # no flow cookie: a login CSRF
    assert status == 400 and "not started in this browser" in body
    assert SESSION_COOKIE not in victim.cookies

    honest = Browser(bot)
    await honest.sign_in(identity, HR_SUPERVISOR)
    status, body, _ = await honest.get(callback)  # the same code and state again
    assert status == 400


async def test_a_tampered_cookie_is_not_signed_in(bot, identity):
    browser = Browser(bot)
    await browser.sign_in(identity, ADMIN)
    value = browser.cookies[SESSION_COOKIE]
    browser.cookies[SESSION_COOKIE] = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    status, _, _ = await browser.get("/console/api/me")
    assert status == 401


async def test_sign_out_ends_the_sign_in_everywhere(bot, identity):
    browser = Browser(bot)
    await browser.sign_in(identity, ADMIN)
    stolen = dict(browser.cookies)
    status, _ = await browser.post("/console/signout", csrf=False)
    assert status == 403  # sign-out is an action: it needs the CSRF token too
    status, _ = await browser.post("/console/signout")
    assert status == 200 and SESSION_COOKIE not in browser.cookies
    replay = Browser(bot, cookies=stolen)
    status, _, _ = await replay.get("/console/api/me")
    assert status == 401
    status, _, response = await replay.get("/console/")
    assert status == 302 and response.headers["Location"] == "/console/signin"


async def test_someone_with_no_role_is_told_so_and_sees_nothing(bot, identity):
    browser = Browser(bot)
    await browser.sign_in(identity, NOBODY)
    status, body, _ = await browser.get("/console/api/me")
    assert status == 403 and "not a supervisor or an admin" in body["error"]
    status, body, _ = await browser.get("/console/api/live")
    assert status == 403
    status, page, _ = await browser.get("/console/")
    assert status == 403 and "Nora Nobody" in page


async def test_roles_come_from_the_config(bot, identity):
    for person, admin, departments in ((ADMIN, True, ["it", "hr"]),
                                       (IT_SUPERVISOR, False, ["it"])):
        browser = Browser(bot)
        await browser.sign_in(identity, person)
        _, me, _ = await browser.get("/console/api/me")
        assert me["admin"] is admin and [d["id"] for d in me["departments"]] == departments


async def test_an_account_of_another_organization_is_refused(tmp_path, identity, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.cert_path))
    settings = settings_for(tmp_path, config_path=str(console_config(tmp_path)),
                            aad_tenant_id="99999999-9999-9999-9999-999999999999",
                            **sign_in_settings(identity))
    server = await BotServer(settings, clock=FakeClock()).start()
    try:
        browser = Browser(server)
        identity.signs_in = ADMIN
        _, _, response = await browser.get("/console/signin")
        import aiohttp

        async with aiohttp.ClientSession() as http, http.get(
                response.headers["Location"], allow_redirects=False, ssl=False) as answer:
            callback = _local(answer.headers["Location"])
        status, body, _ = await browser.get(callback)
        assert status == 403 and "another organization" in body
    finally:
        await server.stop()


async def test_every_action_needs_the_csrf_token_and_the_console_s_own_origin(bot, identity):
    _, runner = await start_connector()
    try:
        browser = Browser(bot)
        await browser.sign_in(identity, ADMIN)
        actions = [
            ("/console/api/chats/it/nope/assign", {"agent": "x"}),
            ("/console/api/chats/it/nope/transfer", {"target": "hr"}),
            ("/console/api/chats/it/nope/close", {"reason": "spam"}),
            ("/console/api/agents/aaaaaaaa-0000-0000-0000-000000000001/presence",
             {"presence": "away"}),
        ]
        for path, body in actions:
            status, _ = await browser.post(path, body, csrf=False)
            assert status == 403, path
            status, _ = await browser.post(path, body, headers={"X-CSRF-Token": "guess"})
            assert status == 403, path
            status, _ = await browser.post(path, body,
                                           headers={"Origin": "https://evil.example"})
            assert status == 403, path
        # with the token, from the console's own page, the request reaches the action
        status, body = await browser.post(actions[-1][0], actions[-1][1],
                                          headers={"Origin": "http://127.0.0.1"})
        assert status == 200, body
    finally:
        await runner.cleanup()


async def test_local_development_mode_answers_this_machine_only(tmp_path):
    settings = settings_for(tmp_path, config_path=str(console_config(tmp_path)))
    config, _ = load_config(settings.config_path)
    from storage.embedded import EmbeddedStore

    auth = Auth(settings, EmbeddedStore(tmp_path / "x.sqlite3"), config)
    assert not auth.sign_in
    from unittest import mock

    for peer, allowed in (("127.0.0.1", True), ("::1", True), ("10.1.2.3", False),
                          ("203.0.113.9", False)):
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None, peer=peer: (
            (peer, 1234) if name == "peername" else default)
        request = make_mocked_request("GET", "/console/api/me", transport=transport)
        if allowed:
            viewer = await auth.viewer(request)
            assert viewer is not None and viewer.admin
        else:
            from aiohttp import web

            with pytest.raises(web.HTTPForbidden):
                await auth.viewer(request)


async def test_local_development_mode_through_the_app(tmp_path):
    server = await BotServer(settings_for(tmp_path, config_path=str(console_config(tmp_path))),
                             clock=FakeClock()).start()
    try:
        browser = Browser(server)
        status, me, _ = await browser.get("/console/api/me")
        assert status == 200 and me["dev_mode"] and me["admin"]
        status, _, response = await browser.get("/console/signin")
        assert status == 302 and response.headers["Location"] == "/console/"
        status, _ = await browser.post("/console/api/agents/x/presence",
                                       {"presence": "away"})
        assert status == 403  # no CSRF token, even here
    finally:
        await server.stop()


def test_the_banner_says_the_console_is_open_to_this_machine_only(tmp_path):
    from app import _local_mode_banner

    banner = _local_mode_banner(settings_for(tmp_path))
    assert "/console/" in banner and "this machine only" in banner


def test_sign_in_settings_are_checked_at_start(tmp_path):
    from settings import check

    settings = settings_for(tmp_path, console_client_id=CLIENT_ID)
    problems = "\n".join(check(settings))
    for variable in ("SWITCHBOARD_CONSOLE_CLIENT_SECRET", "SWITCHBOARD_CONSOLE_URL",
                     "SWITCHBOARD_CONSOLE_SECRET"):
        assert variable in problems, problems
    # a bot with an app id and none of the console's settings starts, its console off
    bot_only = settings_for(tmp_path, app_id="app", app_password="pw")
    assert not [p for p in check(bot_only) if "CONSOLE" in p]


async def test_with_an_app_id_and_no_console_settings_the_console_is_off(tmp_path):
    settings = settings_for(tmp_path, config_path=str(console_config(tmp_path)),
                            app_id="5b3ec2f1-8d0e-4a57-9c1d-0f6a2b7e4c93", app_password="pw")
    server = await BotServer(settings, clock=FakeClock()).start()
    try:
        browser = Browser(server)
        for path in ("/console/api/me", "/console/api/live", "/console/", "/console/signin"):
            status, body, _ = await browser.get(path)
            assert status == 503 and "docs/console.md" in body, (path, status, body)
    finally:
        await server.stop()


def test_roles_in_the_config_are_checked_when_it_loads(tmp_path):
    path = console_config(tmp_path)
    text = path.read_text().replace("dddddddd-0000-0000-0000-000000000001", "not-a-guid", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(str(bad))
    assert "supervisors" in str(error.value) and "hr" in str(error.value)


def test_person_ids_are_compared_without_case():
    from console.auth import role

    config, _ = load_config(str(console_config_path()))
    viewer = role(config, HR_SUPERVISOR.oid.upper(), "x", "c", None)
    assert viewer is not None and viewer.tenants == {"hr"}
    assert role(config, Person("eeeeeeee-0000-0000-0000-000000000000", "n").oid, "n", "c",
                None) is None


def console_config_path():
    import tempfile
    from pathlib import Path

    return console_config(Path(tempfile.mkdtemp()))
