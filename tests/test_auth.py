"""Authentication: with an app id, only valid Bot Framework tokens get in.

Real RS256 tokens, signed with a key of the test's own, checked by botbuilder against
OpenID metadata and keys served on 127.0.0.1 (`tests/auth_server.py`). The bot's own
outgoing token comes from a local login endpoint too, so a valid request is followed all
the way to the reply at the local connector, with the token the bot got. Every invalid
request is a 401 (botbuilder 4.17.1 raised a 500 for most of them: jwt's errors,
IndexError for an unknown key, KeyError for a token without `iss`, AttributeError for an
empty or one-word header, a plain Exception for a refused algorithm or endorsement).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from botframework.connector.auth.jwt_token_extractor import _OpenIdMetadata

from app import SESSIONS
from tests import teams
from tests.auth_server import ISSUER, LocalIdentity, new_key
from tests.connector import Connector
from tests.harness import BotServer, settings_for, texts

APP_ID = "5b3ec2f1-8d0e-4a57-9c1d-0f6a2b7e4c93"
PASSWORD = "test-only-secret"


@dataclass
class RecordingConnector(Connector):
    """The local connector, also keeping the Authorization header of every post."""

    authorizations: list[str | None] = field(default_factory=list)

    async def _record(self, request: web.Request, how: str) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return await super()._record(request, how)


@pytest.fixture
def loopback_only(monkeypatch):
    """Nothing in these tests may reach beyond this machine: name lookups fail."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1", b"localhost"):
            raise OSError(f"test tried to reach {host!r} off this machine")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    unendorsed = new_key()
    server = LocalIdentity(tmp_path_factory.mktemp("identity"))
    server.unendorsed_key = unendorsed
    server.extra_keys["webchat-only"] = (unendorsed.public_key(), ("webchat",))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def connector():
    connector = RecordingConnector()
    runner = web.AppRunner(connector.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    connector.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield connector
    await runner.cleanup()


@pytest.fixture
async def secured(tmp_path, identity, connector, monkeypatch, loopback_only):
    """The bot with an app id, trusting the local identity server."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.cert_path))
    settings = settings_for(
        tmp_path, app_id=APP_ID, app_password=PASSWORD,
        openid_metadata_url=identity.metadata_url, token_issuer=ISSUER,
        login_url=identity.login_url,
    )
    server = await BotServer(settings).start()
    yield server
    await server.stop()


def message(connector: Connector, text: str = "hi") -> tuple[teams.TeamsUser, dict[str, Any]]:
    user = teams.TeamsUser.make("Ada Lovelace")
    return user, teams.message(user, connector.url, text)


async def post(server: BotServer, activity: dict[str, Any], authorization: str | None):
    headers = {} if authorization is None else {"Authorization": authorization}
    return await server.post(activity, headers=headers)


async def test_a_valid_token_gets_in_and_the_reply_carries_the_bots_own_token(
    secured, identity, connector
):
    user, activity = message(connector)
    token = identity.sign(identity.claims(APP_ID, connector.url))
    logins = len(identity.token_requests)
    status, _ = await post(secured, activity, f"Bearer {token}")
    assert status == 201
    sent = connector.to(user.conversation_id)
    assert "welcome" in texts(sent)
    # the keys came from the loopback metadata, the bot's token from the loopback login
    assert "/v1/.well-known/openidconfiguration" in identity.hits
    assert "/v1/keys" in identity.hits
    [login] = identity.token_requests[logins:]
    assert login.form["client_id"] == APP_ID and login.form["client_secret"] == PASSWORD
    assert login.form["grant_type"] == "client_credentials"
    assert login.form["scope"] == "https://api.botframework.com/.default"
    # every reply went out with the token the login endpoint issued
    assert connector.authorizations and set(connector.authorizations) == {
        f"Bearer {identity.issued[-1]}"
    }
    live = await secured.app[SESSIONS].live(user.conversation_id)
    assert live is not None


async def test_clock_skew_of_a_few_minutes_is_tolerated(secured, identity, connector):
    _, activity = message(connector)
    now = int(time.time())
    token = identity.sign(identity.claims(APP_ID, connector.url, exp=now - 120, nbf=now + 120))
    status, _ = await post(secured, activity, f"Bearer {token}")
    assert status == 201


def _bad_tokens(identity: LocalIdentity, service_url: str) -> dict[str, str | None]:
    now = int(time.time())

    def signed(**claims: Any) -> str:
        return "Bearer " + identity.sign(identity.claims(APP_ID, service_url, **claims))

    good = identity.claims(APP_ID, service_url)
    unsigned = jwt.encode(good, None, algorithm="none", headers={"kid": identity.kid})
    hmac = jwt.encode(good, "k" * 32, algorithm="HS256", headers={"kid": identity.kid})
    header, payload, signature = identity.sign(good).split(".")
    list_payload = jwt.utils.base64url_encode(b"[1, 2, 3]").decode()
    return {
        "expired ten minutes ago": signed(exp=now - 600),
        "not valid for another ten minutes": signed(nbf=now + 600),
        "for another app": signed(aud="00000000-0000-0000-0000-000000000000"),
        "without an audience": signed(aud=None),
        "from another issuer": signed(iss="https://api.botframework.evil"),
        "without an issuer": signed(iss=None),
        "without an expiry": signed(exp=None),
        "signed by another key": "Bearer " + identity.sign(good, key=new_key()),
        "signed by a key nobody published": "Bearer " + identity.sign(good, kid="unknown"),
        "signed by a key not endorsed for msteams": "Bearer " + identity.sign(
            good, key=identity.unendorsed_key, kid="webchat-only"),
        "with a tampered payload": "Bearer " + ".".join([
            header, jwt.utils.base64url_encode(
                jwt.utils.base64url_decode(payload).replace(APP_ID.encode(), b"x" * 36)
            ).decode(), signature]),
        "with a payload that is not an object": f"Bearer {header}.{list_payload}.{signature}",
        "unsigned (alg none)": f"Bearer {unsigned}",
        "signed with HS256": f"Bearer {hmac}",
        "for another serviceUrl": signed(serviceurl="https://smba.trafficmanager.net/evil/"),
        "without a serviceurl claim": signed(serviceurl=None),
        "just the word Bearer": "Bearer",
        "Bearer and a space": "Bearer ",
        "not a JWT": "Bearer not.a.jwt",
        "not base64": "Bearer !!!.???.***",
        "three words": "Bearer a b",
        "lower-case scheme": "bearer " + identity.sign(good),
        "Basic": "Basic abc",
        "empty": "",
        "no header at all": None,
    }


BAD = [
    "expired ten minutes ago", "not valid for another ten minutes", "for another app",
    "without an audience", "from another issuer", "without an issuer", "without an expiry",
    "signed by another key", "signed by a key nobody published",
    "signed by a key not endorsed for msteams", "with a tampered payload",
    "with a payload that is not an object", "unsigned (alg none)", "signed with HS256",
    "for another serviceUrl", "without a serviceurl claim", "just the word Bearer",
    "Bearer and a space", "not a JWT", "not base64", "three words", "lower-case scheme",
    "Basic", "empty", "no header at all",
]


def test_every_bad_token_is_tested(identity):
    assert sorted(_bad_tokens(identity, "http://127.0.0.1:1")) == sorted(BAD)


@pytest.mark.parametrize("case", BAD)
async def test_an_invalid_token_gets_401_and_nothing_happens(
    secured, identity, connector, case, caplog
):
    user, activity = message(connector)
    authorization = _bad_tokens(identity, connector.url)[case]
    caplog.set_level("WARNING")
    logins = len(identity.token_requests)
    status, body = await post(secured, activity, authorization)
    assert status == 401, (case, body)
    assert body["error"] == "Unauthorized"
    assert connector.sent == [] and len(identity.token_requests) == logins
    assert await secured.app[SESSIONS].live(user.conversation_id) is None
    # the reason is logged for the operator, never a traceback of a 500
    assert any(r.getMessage() == "request refused: not authenticated" for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # and a valid request right after is served
    status, _ = await post(secured, activity | {"id": "again"},
                           "Bearer " + identity.sign(identity.claims(APP_ID, connector.url)))
    assert status == 201


async def test_keys_that_cannot_be_fetched_are_503_not_401_or_500(
    tmp_path, identity, connector, monkeypatch, loopback_only
):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = settings_for(
        tmp_path, app_id=APP_ID, app_password=PASSWORD, token_issuer=ISSUER,
        openid_metadata_url=f"http://127.0.0.1:{closed}/v1/.well-known/openidconfiguration",
        login_url=identity.login_url,
    )
    server = await BotServer(settings).start()
    try:
        _, activity = message(connector)
        token = identity.sign(identity.claims(APP_ID, connector.url))
        async with server.http.post(f"{server.url}/api/messages", json=activity,
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"]
        assert connector.sent == []
    finally:
        await server.stop()


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer not.a.jwt", "Basic abc", "Bearer a b",
])
async def test_public_cloud_settings_refuse_malformed_headers_offline(
    tmp_path, connector, monkeypatch, loopback_only, authorization
):
    """The production settings (Microsoft's metadata): refused before any key is fetched."""

    async def no_fetch(self):
        raise AssertionError("the keys must not be needed to refuse this header")

    monkeypatch.setattr(_OpenIdMetadata, "_refresh", no_fetch)
    server = await BotServer(settings_for(tmp_path, app_id=APP_ID, app_password=PASSWORD)).start()
    try:
        _, activity = message(connector)
        status, _ = await post(server, activity, authorization)
        assert status == 401
        assert connector.sent == []
    finally:
        await server.stop()


async def test_local_mode_needs_no_token(tmp_path, connector, loopback_only):
    server = await BotServer(settings_for(tmp_path)).start()
    try:
        user, activity = message(connector)
        status, _ = await post(server, activity, None)
        assert status == 201
        assert "welcome" in texts(connector.to(user.conversation_id))
        assert connector.authorizations and set(connector.authorizations) == {None}
    finally:
        await server.stop()


# -- local development mode (no app id) ----------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("MICROSOFT", "SWITCHBOARD", "TO_BOT", "TO_CHANNEL"))
           and k not in ("HOST", "PORT")}
    env.update(SWITCHBOARD_DB_PATH=str(tmp_path / "bot.sqlite3"), SWITCHBOARD_TIMER_INTERVAL="0",
               **values)
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_local_mode_refuses_to_listen_beyond_loopback(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], env=_env(tmp_path, SWITCHBOARD_HOST="0.0.0.0"),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to start" in done.stderr
    assert "SWITCHBOARD_HOST=0.0.0.0 is not a loopback address" in done.stderr
    assert "SWITCHBOARD_ALLOW_UNAUTHENTICATED=true" in done.stderr
    assert not (tmp_path / "bot.sqlite3").exists()  # it stopped before opening anything


def test_local_mode_on_loopback_starts_and_says_so_loudly(tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")],
        env=_env(tmp_path, SWITCHBOARD_HOST="127.0.0.1", SWITCHBOARD_PORT=str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the bot did not start"
            time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    banner = stderr.splitlines()
    assert "  SWITCHBOARD IS IN LOCAL DEVELOPMENT MODE: REQUESTS ARE NOT AUTHENTICATED" in banner
    assert "=" * 78 in banner
    assert f"  http://127.0.0.1:{port}/api/messages without a Bot Framework token: whoever " \
           "can reach it" in banner
    assert "  It listens on this machine only (loopback)." in banner


def _loopback_socket(served: dict[str, Any], settings: Any) -> socket.socket:
    """Records the address the bot asked for and hands it a loopback socket instead: tests
    never listen beyond this machine, and a port left bound cannot break the next test."""
    served["host"] = settings.host
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_local_mode_beyond_loopback_only_when_explicitly_allowed(tmp_path, monkeypatch, capsys):
    import app

    served: dict[str, Any] = {}
    monkeypatch.setattr(app.web, "run_app", lambda _app, **kw: served.update(kw))
    monkeypatch.setattr(app, "_listen", lambda settings: _loopback_socket(served, settings))
    monkeypatch.setattr(app, "configure_logging", lambda level: None)
    for name, value in _env(tmp_path, SWITCHBOARD_HOST="0.0.0.0",
                            SWITCHBOARD_ALLOW_UNAUTHENTICATED="true").items():
        monkeypatch.setenv(name, value)
    for name in [n for n in os.environ if n.upper().startswith("MICROSOFT")]:
        monkeypatch.delenv(name)
    app.main()
    assert served["host"] == "0.0.0.0"
    served["sock"].close()
    stderr = capsys.readouterr().err
    assert "LOCAL DEVELOPMENT MODE: REQUESTS ARE NOT AUTHENTICATED" in stderr
    assert "It listens on 0.0.0.0, beyond this machine, because " \
           "SWITCHBOARD_ALLOW_UNAUTHENTICATED=true." in stderr


def test_with_an_app_id_any_address_is_fine_and_there_is_no_banner(tmp_path, monkeypatch, capsys):
    import app

    served: dict[str, Any] = {}
    monkeypatch.setattr(app.web, "run_app", lambda _app, **kw: served.update(kw))
    monkeypatch.setattr(app, "_listen", lambda settings: _loopback_socket(served, settings))
    monkeypatch.setattr(app, "configure_logging", lambda level: None)
    for name, value in _env(tmp_path, SWITCHBOARD_HOST="0.0.0.0", MICROSOFT_APP_ID=APP_ID,
                            MICROSOFT_APP_PASSWORD=PASSWORD).items():
        monkeypatch.setenv(name, value)
    app.main()
    assert served["host"] == "0.0.0.0"
    served["sock"].close()
    assert "LOCAL DEVELOPMENT MODE" not in capsys.readouterr().err


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LocalHost", True), ("0.0.0.0", False), ("", False), ("::", False),
    ("10.0.0.4", False), ("128.0.0.1", False), ("example.com", False),
    ("localhost.example.com", False),
])
def test_what_counts_as_loopback(host, loopback):
    from app import is_loopback

    assert is_loopback(host) is loopback
