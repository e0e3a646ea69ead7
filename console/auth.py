"""Who is looking at the console, and what they may see and do.

Roles come from the tenants' config: a department's `supervisors` see and act on it; the
config's `admins` on every department. Anyone else who signs in is told they have no role.

Sign-in (an app id configured): Microsoft Entra ID, the authorization-code flow with PKCE
through MSAL (`initiate_auth_code_flow` / `acquire_token_by_auth_code_flow`). The pending
flow is kept in the store (any instance may get the callback) and bound to the browser by
a signed cookie. A sign-in is a document in the store (so sign-out ends it on every
instance); the browser holds its id in a signed, HttpOnly, Secure, SameSite=Lax cookie.
Every action also needs the sign-in's CSRF token in a header, and a request whose Origin
is another site is refused.

Local development (no app id): whoever connects from this machine is a local admin; a
request from anywhere else is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from pipelines.config import SwitchboardConfig
from settings import Settings
from storage.documents import DocumentStore
from storage.layout import CONSOLE

log = logging.getLogger("switchboard.console.auth")

SESSION_COOKIE = "__Host-switchboard-console"
FLOW_COOKIE = "__Host-switchboard-signin"
SIGNIN_SCOPE = "signin"
FLOW_SECONDS = 600
CSRF_HEADER = "X-CSRF-Token"
DEV_ID = "local-developer"
LOGIN = "https://login.microsoftonline.com"


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in person and the departments they may see and act on."""

    id: str
    name: str
    admin: bool
    tenants: frozenset[str]
    csrf: str
    sign_in: str | None = None

    def may(self, tenant_id: str) -> bool:
        return self.admin or tenant_id in self.tenants


def role(config: SwitchboardConfig, oid: str, name: str, csrf: str,
         sign_in: str | None) -> Viewer | None:
    """The viewer this person is, by their Entra object id (None: no role in the config)."""
    wanted = oid.casefold()
    admin = any(a.aad_object_id.casefold() == wanted for a in config.admins)
    tenants = frozenset(t.id for t in config.tenants
                        if any(s.aad_object_id.casefold() == wanted for s in t.supervisors))
    if not admin and not tenants:
        return None
    return Viewer(wanted, name, admin, tenants, csrf, sign_in)


class NoRole(Exception):
    """Signed in, but neither a supervisor nor an admin in the config."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def is_loopback_peer(request: web.Request) -> bool:
    from app import is_loopback

    return bool(request.remote) and is_loopback(str(request.remote))


class Auth:
    def __init__(self, settings: Settings, docs: DocumentStore,
                 config: SwitchboardConfig) -> None:
        self.settings = settings
        self.docs = docs
        self.config = config
        self.sign_in = settings.console_sign_in
        # an app id but none of the console's settings: the console is off (never open)
        self.off = self.sign_in and not settings.console_asked
        self.client_id = settings.console_client_id or settings.app_id
        self.client_secret = settings.console_client_secret or settings.app_password
        tenant = settings.aad_tenant_id or "organizations"
        self.authority = (settings.console_authority or f"{LOGIN}/{tenant}").rstrip("/")
        self.base_url = settings.console_url.rstrip("/")
        # dev mode signs with a key of this process: its cookies die with it
        key = settings.console_secret or secrets.token_urlsafe(48)
        self.key = key.encode()
        self.session_seconds = settings.console_session_hours * 3600
        self._msal: Any = None
        self._msal_lock = asyncio.Lock()

    # -- signing ---------------------------------------------------------------------

    def sign(self, value: str) -> str:
        mac = hmac.new(self.key, value.encode(), hashlib.sha256).digest()
        return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def unsign(self, signed: str | None) -> str | None:
        if not signed or "." not in signed:
            return None
        value, _, _ = signed.rpartition(".")
        return value if hmac.compare_digest(self.sign(value), signed) else None

    def cookie(self, response: web.StreamResponse, name: str, value: str,
               max_age: float) -> None:
        response.set_cookie(name, self.sign(value), max_age=int(max_age), path="/",
                            secure=True, httponly=True, samesite="Lax")

    # -- who is asking ---------------------------------------------------------------

    async def viewer(self, request: web.Request) -> Viewer | None:
        """The signed-in viewer, None when not signed in. Raises NoRole, or HTTPForbidden
        for a request from beyond this machine in local development mode."""
        if self.off:
            raise web.HTTPServiceUnavailable(text=(
                "The supervisor console is off: the bot has an app id, so supervisors sign "
                "in with Entra ID; set SWITCHBOARD_CONSOLE_URL and SWITCHBOARD_CONSOLE_SECRET "
                "(see docs/console.md)."))
        if not self.sign_in:
            if not is_loopback_peer(request):
                raise web.HTTPForbidden(text=(
                    "The console is in local development mode (no MICROSOFT_APP_ID or "
                    "SWITCHBOARD_CONSOLE_CLIENT_ID): it answers this machine only."))
            csrf = self.sign("dev-csrf").rpartition(".")[2]
            return Viewer(DEV_ID, "Local developer", True, frozenset(), csrf)
        sid = self.unsign(request.cookies.get(SESSION_COOKIE))
        if sid is None:
            return None
        doc = await self.docs.read(CONSOLE, SIGNIN_SCOPE, f"session:{sid}")
        if doc is None or float(doc.body.get("expires", 0)) < time.time():
            return None
        body = doc.body
        viewer = role(self.config, str(body["oid"]), str(body["name"]), str(body["csrf"]),
                      sid)
        if viewer is None:
            raise NoRole(str(body["name"]))
        return viewer

    def check_csrf(self, request: web.Request, viewer: Viewer) -> None:
        """An action must carry the viewer's CSRF token and come from the console's site."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != self.origin(request):
            raise web.HTTPForbidden(text="This request came from another site.")
        token = request.headers.get(CSRF_HEADER, "")
        if not token or not hmac.compare_digest(token, viewer.csrf):
            raise web.HTTPForbidden(text="Missing or wrong CSRF token: reload the console.")

    def origin(self, request: web.Request) -> str:
        if self.base_url:
            parts = urlsplit(self.base_url)
            return f"{parts.scheme}://{parts.netloc}"
        return f"{request.scheme}://{request.host}"

    # -- the authorization-code flow ---------------------------------------------------

    async def client(self) -> Any:
        """MSAL's confidential client (made once, off the event loop: it reads the
        authority's OpenID configuration)."""
        async with self._msal_lock:
            if self._msal is None:
                from bots.tokens import confidential_client

                self._msal = await asyncio.to_thread(
                    confidential_client, self.client_id, self.client_secret, self.authority)
            return self._msal

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/console/auth/callback"

    async def begin(self) -> tuple[str, str]:
        """A new flow: the URL to send the browser to, and the flow's state."""
        client = await self.client()
        flow = await asyncio.to_thread(client.initiate_auth_code_flow, [],
                                       redirect_uri=self.redirect_uri)
        state = str(flow["state"])
        await self.docs.upsert(CONSOLE, SIGNIN_SCOPE, f"flow:{state}",
                               {"type": "flow", "flow": flow, "ttl": FLOW_SECONDS,
                                "expires": time.time() + FLOW_SECONDS})
        return str(flow["auth_uri"]), state

    async def finish(self, request: web.Request) -> tuple[str, Viewer | None]:
        """The callback: the sign-in's id and who signed in (None: no role). Raises
        HTTPBadRequest for a callback that is not the answer to this browser's flow."""
        params = dict(request.query)
        state = params.get("state", "")
        bound = self.unsign(request.cookies.get(FLOW_COOKIE))
        if not state or bound != state:
            raise web.HTTPBadRequest(text="This sign-in was not started in this browser (or "
                                          "it took too long): start again.")
        doc = await self.docs.read(CONSOLE, SIGNIN_SCOPE, f"flow:{state}")
        if doc is None or float(doc.body.get("expires", 0)) < time.time():
            raise web.HTTPBadRequest(text="This sign-in expired: start again.")
        await self.docs.delete(CONSOLE, SIGNIN_SCOPE, f"flow:{state}")  # used once
        client = await self.client()
        result = await asyncio.to_thread(client.acquire_token_by_auth_code_flow,
                                         doc.body["flow"], params)
        if "error" in result:
            log.warning("console sign-in refused", extra={
                "error": result.get("error"),
                "description": str(result.get("error_description", ""))[:300]})
            raise web.HTTPBadRequest(text=f"Sign-in failed: {result.get('error')}.")
        claims = result.get("id_token_claims") or {}
        oid, tid = str(claims.get("oid") or ""), str(claims.get("tid") or "")
        if not oid:
            raise web.HTTPBadRequest(text="Sign-in failed: the ID token has no object id.")
        wanted = self.settings.aad_tenant_id
        if wanted and tid.casefold() != wanted.casefold():
            raise web.HTTPForbidden(text="Your account belongs to another organization.")
        name = str(claims.get("name") or claims.get("preferred_username") or oid)
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        await self.docs.create(CONSOLE, SIGNIN_SCOPE, f"session:{sid}", {
            "type": "signin", "oid": oid, "tid": tid, "name": name, "csrf": csrf,
            "expires": time.time() + self.session_seconds,
            "ttl": int(self.session_seconds) + 60,
        })
        log.info("console sign-in", extra={"by": oid})
        return sid, role(self.config, oid, name, csrf, sid)

    async def sign_out(self, viewer: Viewer) -> None:
        if viewer.sign_in is not None:
            await self.docs.delete(CONSOLE, SIGNIN_SCOPE, f"session:{viewer.sign_in}")
