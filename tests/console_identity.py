"""A local Entra ID stand-in for the console's sign-in tests, on https://127.0.0.1.

It plays the authorization-code flow with PKCE as Microsoft's identity platform does:

- `/{tenant}/v2.0/.well-known/openid-configuration`: issuer, authorize and token endpoints;
- `/{tenant}/oauth2/v2.0/authorize`: records what the browser was sent with and, as if the
  person `signs_in` had signed in and consented, redirects to the `redirect_uri` with a
  one-time code bound to the request's `code_challenge`, `nonce`, `client_id` and
  `redirect_uri`;
- `/{tenant}/oauth2/v2.0/token`: redeems a code once, only with the client secret and a
  `code_verifier` whose S256 hash is the challenge (RFC 7636), and answers an ID token
  signed with the server's own RSA key, carrying the person's `oid`, `tid`, `name` and the
  flow's `nonce`.

MSAL accepts only https authorities: the server speaks TLS with a throwaway certificate that
a test trusts through REQUESTS_CA_BUNDLE. It runs in its own thread (MSAL's calls block).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.certs import self_signed

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "c0de0000-1111-2222-3333-444444444444"
CLIENT_SECRET = "console-test-secret"


@dataclass
class Person:
    oid: str
    name: str
    tid: str = TENANT


@dataclass
class Grant:
    person: Person
    challenge: str
    method: str
    nonce: str | None
    client_id: str
    redirect_uri: str


@dataclass
class ConsoleIdentity:
    directory: Path
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    # who "signs in" at the next authorize request
    signs_in: Person | None = None
    url: str = ""
    cert_path: Path | None = None
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _grants: dict[str, Grant] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def authority(self) -> str:
        return f"{self.url}/{TENANT}"

    def issuer(self) -> str:
        return f"{self.authority}/v2.0"

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer(), "aud": grant.client_id, "oid": grant.person.oid,
                  "tid": grant.person.tid, "name": grant.person.name, "iat": now,
                  "nbf": now, "exp": now + 3600, "sub": grant.person.oid, "ver": "2.0"}
        if grant.nonce:
            claims["nonce"] = grant.nonce
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "console"})

    def start(self) -> ConsoleIdentity:
        self.cert_path, key_path = self_signed(self.directory, "console-identity-")
        identity = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path.endswith("/.well-known/openid-configuration"):
                    base = identity.authority
                    self._json(200, {
                        "issuer": identity.issuer(),
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "jwks_uri": f"{base}/discovery/v2.0/keys",
                        "response_types_supported": ["code"],
                    })
                elif parts.path.endswith("/oauth2/v2.0/authorize"):
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    identity.authorize_requests.append(query)
                    person = identity.signs_in
                    if person is None or query.get("response_type") != "code":
                        self._json(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(24)
                    identity._grants[code] = Grant(
                        person, query.get("code_challenge", ""),
                        query.get("code_challenge_method", ""), query.get("nonce"),
                        query.get("client_id", ""), query.get("redirect_uri", ""))
                    target = query["redirect_uri"] + "?" + urlencode(
                        {"code": code, "state": query.get("state", ""),
                         "session_state": "s"})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not self.path.split("?")[0].endswith("/oauth2/v2.0/token"):
                    self._json(404, {"error": "not_found"})
                    return
                identity.token_requests.append(form)
                grant = identity._grants.pop(form.get("code", ""), None)
                problem = None
                if grant is None:
                    problem = "unknown or used code"
                elif form.get("client_secret") != CLIENT_SECRET or (
                        form.get("client_id") != grant.client_id):
                    problem = "wrong client credentials"
                elif form.get("redirect_uri") != grant.redirect_uri:
                    problem = "redirect_uri differs"
                elif grant.method != "S256" or _s256(form.get("code_verifier", "")) != (
                        grant.challenge):
                    problem = "PKCE verifier does not match the challenge"
                if problem is not None or grant is None:
                    identity.refused.append(problem or "?")
                    self._json(400, {"error": "invalid_grant", "error_description": problem})
                    return
                self._json(200, {"token_type": "Bearer", "expires_in": 3600,
                                 "scope": "openid profile", "access_token": "at-" +
                                 secrets.token_urlsafe(8), "id_token": identity.id_token(grant),
                                 "client_info": base64.urlsafe_b64encode(json.dumps(
                                     {"uid": grant.person.oid,
                                      "utid": grant.person.tid}).encode()).decode()})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
