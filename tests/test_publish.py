"""`manifest publish` against a local sign-in service and a local Microsoft Graph.

Both are aiohttp servers on 127.0.0.1. MSAL accepts only an https authority (it raises for
http, even with validate_authority=False), so the sign-in service speaks TLS with a throwaway
certificate that the client is told to trust (`verify=`, or REQUESTS_CA_BUNDLE for the CLI).
With `instance_discovery=False` the only metadata MSAL asks for is
`GET /{tenant}/v2.0/.well-known/openid-configuration`; the tests check exactly that.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from manifest.package import build_package
from manifest.publish import PublishError, publish_package
from manifest.settings import ManifestSettings
from tests.certs import self_signed

ROOT = Path(__file__).resolve().parents[1]
AAD_TENANT = "7a6b5c4d-0000-4000-8000-00000000aaaa"
CLIENT_ID = "c1c1c1c1-0000-4000-8000-000000000001"
SECRET = "s3cret"
APP_ID = "6f0e3a52-9d1b-4c7e-8a2f-3b4c5d6e7f80"
BOT_ID = "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d"


# -- the local sign-in service ---------------------------------------------------------


@dataclass
class SignIn:
    url: str = ""
    token: str = field(default_factory=lambda: f"token-{uuid.uuid4().hex}")
    requests: list[tuple[str, str]] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    # device flow: how many polls answer authorization_pending first
    pending_polls: int = 0
    # an error the token endpoint answers instead (status, body)
    token_error: tuple[int, dict[str, Any]] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.metadata)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.token_endpoint)
        app.router.add_post("/{tenant}/oauth2/v2.0/devicecode", self.device_code)

        @web.middleware
        async def record(request: web.Request, handler):
            self.requests.append((request.method, request.path))
            return await handler(request)

        app.middlewares.append(record)
        return app

    async def metadata(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        base = f"{self.url}/{tenant}"
        return web.json_response({
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        })

    async def device_code(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_forms.append(form)
        return web.json_response({
            "device_code": "device-123",
            "user_code": "ABCD-EFGH",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": 1,
            "message": "To sign in, open https://microsoft.com/devicelogin and enter ABCD-EFGH.",
        })

    async def token_endpoint(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_forms.append(form)
        if self.token_error is not None:
            status, body = self.token_error
            return web.json_response(body, status=status)
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code" and (
            self.pending_polls > 0
        ):
            self.pending_polls -= 1
            return web.json_response({"error": "authorization_pending",
                                      "error_description": "AADSTS70016: pending"}, status=400)
        return web.json_response({"access_token": self.token, "token_type": "Bearer",
                                  "expires_in": 3600, "ext_expires_in": 3600})


# -- the local Microsoft Graph ---------------------------------------------------------


@dataclass
class Graph:
    token: str
    url: str = ""
    # catalog id -> teamsApp
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    # answers to give before the real one: (status, headers, body)
    queued: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    # answer every request with this instead (status, body)
    always: tuple[int, dict[str, str], dict[str, Any]] | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=30 * 1024 * 1024)
        app.router.add_get("/v1.0/appCatalogs/teamsApps", self.list_apps)
        app.router.add_post("/v1.0/appCatalogs/teamsApps", self.create)
        app.router.add_post("/v1.0/appCatalogs/teamsApps/{id}/appDefinitions", self.update)

        @web.middleware
        async def gate(request: web.Request, handler):
            body = await request.read()
            self.calls.append({"method": request.method, "path": request.path,
                               "query": dict(request.query), "headers": dict(request.headers),
                               "body": body})
            if self.always is not None:
                status, headers, payload = self.always
                return web.json_response(payload, status=status, headers=headers)
            if self.queued:
                status, headers, payload = self.queued.pop(0)
                return web.json_response(payload, status=status, headers=headers)
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response(
                    {"error": {"code": "InvalidAuthenticationToken",
                               "message": "Access token is empty."}}, status=401)
            return await handler(request)

        app.middlewares.append(gate)
        return app

    async def list_apps(self, request: web.Request) -> web.Response:
        wanted = request.query.get("$filter", "")
        value = [a for a in self.apps.values() if wanted == f"externalId eq '{a['externalId']}'"]
        return web.json_response({"value": value})

    def _manifest(self, body: bytes) -> dict[str, Any]:
        import io
        import zipfile

        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            return json.loads(zf.read("manifest.json"))

    async def create(self, request: web.Request) -> web.Response:
        if request.content_type != "application/zip":
            return web.json_response({"error": {"code": "BadRequest"}}, status=415)
        manifest = self._manifest(await request.read())
        app = {"id": f"catalog-{uuid.uuid4().hex[:8]}", "externalId": manifest["id"],
               "displayName": manifest["name"]["short"], "distributionMethod": "organization"}
        self.apps[app["id"]] = app
        return web.json_response(app, status=201)

    async def update(self, request: web.Request) -> web.Response:
        app = self.apps.get(request.match_info["id"])
        if app is None:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        manifest = self._manifest(await request.read())
        return web.json_response({
            "id": f"def-{uuid.uuid4().hex[:8]}", "teamsAppId": app["id"],
            "displayName": manifest["name"]["short"], "version": manifest["version"],
            "publishingState": "published"}, status=201)


@dataclass
class Endpoints:
    signin: SignIn
    graph: Graph
    cert: Path

    def settings(self, **changes: Any) -> ManifestSettings:
        values = {**ManifestSettings().model_dump(),
                  "graph_url": f"{self.graph.url}/v1.0", "authority_host": self.signin.url,
                  "aad_tenant_id": AAD_TENANT, "publish_client_id": CLIENT_ID,
                  "publish_client_secret": SECRET, **changes}
        return ManifestSettings.model_construct(**values)


async def _serve(app: web.Application, ssl_context: ssl.SSLContext | None = None):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    return runner, f"{scheme}://127.0.0.1:{port}"


@pytest.fixture
async def endpoints(tmp_path):
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    signin = SignIn()
    graph = Graph(token=signin.token)
    runners = []
    runner, signin.url = await _serve(signin.app(), context)
    runners.append(runner)
    runner, graph.url = await _serve(graph.app())
    runners.append(runner)
    yield Endpoints(signin, graph, cert)
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def package(tmp_path) -> Path:
    values = {**ManifestSettings().model_dump(), "bot_id": BOT_ID, "app_id": APP_ID,
              "version": "1.2.0", "developer_name": "Contoso IT",
              "website_url": "https://help.contoso.com",
              "privacy_url": "https://help.contoso.com/privacy",
              "terms_url": "https://help.contoso.com/terms", "domain": "bot.contoso.com"}
    return build_package(ManifestSettings.model_construct(**values),
                         tmp_path / "appPackage.zip").path


async def publish(endpoints: Endpoints, package: Path, **kwargs: Any):
    sleeps: list[float] = []
    settings = kwargs.pop("settings", None) or endpoints.settings()
    result = await asyncio.to_thread(
        publish_package, package, settings, verify=str(endpoints.cert), sleep=sleeps.append,
        **kwargs,
    )
    return result, sleeps


async def publish_error(endpoints: Endpoints, package: Path, **kwargs: Any) -> str:
    with pytest.raises(PublishError) as caught:
        await publish(endpoints, package, **kwargs)
    return str(caught.value)


# -- the tests -------------------------------------------------------------------------


async def test_publish_a_new_app(endpoints, package):
    result, sleeps = await publish(endpoints, package)
    assert result.action == "created"
    assert result.external_id == APP_ID
    assert result.display_name == "Switchboard"
    assert result.catalog_id in endpoints.graph.apps
    # MSAL asked for the tenant's OpenID metadata, then a client-credentials token
    assert endpoints.signin.requests == [
        ("GET", f"/{AAD_TENANT}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{AAD_TENANT}/oauth2/v2.0/token"),
    ]
    (form,) = endpoints.signin.token_forms
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == CLIENT_ID
    assert form["client_secret"] == SECRET
    assert form["scope"] == f"{endpoints.graph.url}/.default"
    lookup, create = endpoints.graph.calls
    assert (lookup["method"], lookup["path"]) == ("GET", "/v1.0/appCatalogs/teamsApps")
    assert lookup["query"] == {"$filter": f"externalId eq '{APP_ID}'"}
    assert (create["method"], create["path"]) == ("POST", "/v1.0/appCatalogs/teamsApps")
    assert create["headers"]["Content-Type"] == "application/zip"
    assert create["headers"]["Authorization"] == f"Bearer {endpoints.signin.token}"
    assert create["body"] == package.read_bytes()
    assert sleeps == []


async def test_publish_updates_an_existing_app(endpoints, package):
    endpoints.graph.apps["catalog-1"] = {
        "id": "catalog-1", "externalId": APP_ID, "displayName": "Switchboard",
        "distributionMethod": "organization"}
    result, _ = await publish(endpoints, package)
    assert result.action == "updated"
    assert result.catalog_id == "catalog-1"
    assert result.version == "1.2.0"
    assert result.publishing_state == "published"
    paths = [(c["method"], c["path"]) for c in endpoints.graph.calls]
    assert paths == [("GET", "/v1.0/appCatalogs/teamsApps"),
                     ("POST", "/v1.0/appCatalogs/teamsApps/catalog-1/appDefinitions")]
    update = endpoints.graph.calls[1]
    assert update["headers"]["Content-Type"] == "application/zip"
    assert update["body"] == package.read_bytes()
    assert len(endpoints.graph.apps) == 1


async def test_requires_review(endpoints, package):
    await publish(endpoints, package, requires_review=True)
    assert endpoints.graph.calls[1]["query"] == {"requiresReview": "true"}


async def test_unauthorized_is_explained(endpoints, package):
    endpoints.graph.always = (401, {"request-id": "req-401"}, {"error": {
        "code": "InvalidAuthenticationToken", "message": "Lifetime validation failed."}})
    message = await publish_error(endpoints, package)
    assert "Microsoft Graph did not accept the sign-in while looking for the app" in message
    assert "(401 Unauthorized)" in message
    assert "InvalidAuthenticationToken: Lifetime validation failed." in message
    assert "req-401" in message
    assert "Sign in again" in message


async def test_forbidden_is_explained(endpoints, package):
    endpoints.graph.apps["catalog-1"] = {"id": "catalog-1", "externalId": APP_ID,
                                         "distributionMethod": "organization"}
    endpoints.graph.queued = [(200, {}, {"value": [endpoints.graph.apps["catalog-1"]]}),
                              (403, {}, {"error": {"code": "Forbidden",
                                                   "message": "Insufficient privileges."}})]
    message = await publish_error(endpoints, package)
    assert "not allowed to publish to the app catalog while updating the app catalog-1" in message
    assert "(403 Forbidden): Forbidden: Insufficient privileges." in message
    assert "AppCatalog.ReadWrite.All" in message
    # signed in as an application: Graph wants a person
    assert "leave out the client secret to sign in with a device code" in message


async def test_throttling_is_retried_after_the_wait_graph_asks(endpoints, package):
    throttled = (429, {"Retry-After": "2"}, {"error": {"code": "TooManyRequests",
                                                       "message": "Slow down."}})
    endpoints.graph.queued = [throttled, throttled]
    result, sleeps = await publish(endpoints, package)
    assert result.action == "created"
    assert sleeps == [2.0, 2.0]
    assert result.attempts == 4  # 3 lookups (2 throttled), 1 create
    assert [c["method"] for c in endpoints.graph.calls] == ["GET", "GET", "GET", "POST"]


async def test_throttling_retries_are_bounded(endpoints, package):
    endpoints.graph.always = (429, {"Retry-After": "1"}, {"error": {
        "code": "TooManyRequests", "message": "Slow down."}})
    message = await publish_error(endpoints, package, max_attempts=4)
    assert "throttling the requests (429) and still was after 4 attempts" in message
    assert "TooManyRequests: Slow down." in message
    assert len(endpoints.graph.calls) == 4


async def test_device_code_sign_in(endpoints, package):
    endpoints.signin.pending_polls = 1
    shown: list[str] = []
    settings = endpoints.settings(publish_client_secret="")
    result, _ = await publish(endpoints, package, settings=settings, prompt=shown.append)
    assert result.action == "created"
    assert shown == ["To sign in, open https://microsoft.com/devicelogin and enter ABCD-EFGH."]
    device, pending, granted = endpoints.signin.token_forms
    assert device["client_id"] == CLIENT_ID
    assert f"{endpoints.graph.url}/AppCatalog.ReadWrite.All" in device["scope"].split()
    assert pending["grant_type"] == granted["grant_type"] == (
        "urn:ietf:params:oauth:grant-type:device_code")
    assert granted["device_code"] == "device-123"
    assert ("POST", f"/{AAD_TENANT}/oauth2/v2.0/devicecode") in endpoints.signin.requests


async def test_wrong_secret_is_explained(endpoints, package):
    endpoints.signin.token_error = (401, {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"})
    message = await publish_error(endpoints, package)
    assert message == ("sign-in failed (invalid_client): AADSTS7000215: Invalid client secret "
                       "provided.: the client secret is wrong or expired: create a new one")
    assert endpoints.graph.calls == []


async def test_missing_client_id_is_explained(endpoints, package):
    message = await publish_error(endpoints, package,
                                  settings=endpoints.settings(publish_client_id=""))
    assert "SWITCHBOARD_PUBLISH_CLIENT_ID" in message


async def test_an_invalid_package_is_never_uploaded(endpoints, tmp_path):
    from manifest.package import PackageError

    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(PackageError):
        await publish(endpoints, bad)
    assert endpoints.graph.calls == [] and endpoints.signin.requests == []


async def test_publish_from_the_command_line(endpoints, package):
    """`switchboard-admin manifest publish` as an admin runs it, settings in the environment."""
    endpoints.graph.apps["catalog-9"] = {"id": "catalog-9", "externalId": APP_ID,
                                         "displayName": "Switchboard",
                                         "distributionMethod": "organization"}
    env = {**os.environ,
           "SWITCHBOARD_GRAPH_URL": f"{endpoints.graph.url}/v1.0",
           "SWITCHBOARD_AUTHORITY_HOST": endpoints.signin.url,
           "SWITCHBOARD_PUBLISH_TENANT_ID": AAD_TENANT,
           "SWITCHBOARD_PUBLISH_CLIENT_ID": CLIENT_ID,
           "SWITCHBOARD_PUBLISH_CLIENT_SECRET": SECRET,
           # how an admin behind a TLS-inspecting proxy trusts its certificate, too
           "REQUESTS_CA_BUNDLE": str(endpoints.cert)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "admin", "manifest", "publish", str(package), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("updated Switchboard 1.2.0 in the app catalog "
                                      "(catalog id catalog-9")
    endpoints.graph.always = (403, {}, {"error": {"code": "Forbidden", "message": "No."}})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "admin", "manifest", "publish", str(package), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1
    assert "error: not allowed to publish to the app catalog" in stderr.decode()
    assert "Traceback" not in stderr.decode()
