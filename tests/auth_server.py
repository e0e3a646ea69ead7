"""A local stand-in for Microsoft's identity services, on 127.0.0.1, for authentication tests.

It plays both sides of Bot Framework authentication:

- **incoming**: the OpenID metadata the adapter reads (`/.well-known/openidconfiguration`,
  with `issuer` and `jwks_uri`) and the JWKS with our own RSA public key, `endorsements`
  listing the channels the key may sign for (`msteams`). `sign()` makes real RS256 tokens
  with the matching private key, so the adapter checks them exactly as it checks the ones
  Microsoft's channel sends (issuer, audience = app id, expiry with 5 minutes of clock
  skew, the `serviceurl` claim, the key's endorsements, the algorithm);
- **outgoing**: an OAuth authority the bot logs in to for its own token (client
  credentials): its OpenID configuration and a token endpoint that records each request.

MSAL accepts only https authorities, so the server speaks TLS with a throwaway
self-signed certificate for 127.0.0.1; a test points `REQUESTS_CA_BUNDLE` at it (the
metadata is fetched with `requests`, the token with MSAL, which uses `requests` too). It
runs in its own thread: botbuilder fetches the metadata with a blocking call on the event
loop, so a server on that loop would never answer.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.certs import self_signed

ISSUER = "https://api.botframework.test"
TENANT = "botframework.test"
METADATA_PATH = "/v1/.well-known/openidconfiguration"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class TokenRequest:
    path: str
    form: dict[str, str]


@dataclass
class LocalIdentity:
    """The metadata, keys and login endpoint, on https://127.0.0.1:<port>."""

    directory: Path
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    kid: str = "switchboard-test-key"
    endorsements: tuple[str, ...] = ("msteams", "webchat")
    # other keys published in the JWKS: kid -> (public key, endorsements)
    extra_keys: dict[str, tuple[Any, tuple[str, ...]]] = field(default_factory=dict)
    url: str = ""
    cert_path: Path | None = None
    hits: list[str] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # -- what a test points the bot at ------------------------------------------------

    @property
    def metadata_url(self) -> str:
        return self.url + METADATA_PATH

    @property
    def login_url(self) -> str:
        """The authority the bot logs in to for its outgoing token."""
        return f"{self.url}/{TENANT}"

    def jwks(self) -> dict[str, Any]:
        keys = [(self.kid, self.key.public_key(), self.endorsements)]
        keys += [(kid, pub, ends) for kid, (pub, ends) in self.extra_keys.items()]
        out = []
        for kid, public, endorsements in keys:
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
            jwk.update({"kid": kid, "use": "sig", "endorsements": list(endorsements)})
            out.append(jwk)
        return {"keys": out}

    # -- tokens ------------------------------------------------------------------------

    def claims(self, app_id: str, service_url: str, **overrides: Any) -> dict[str, Any]:
        """What the Bot Framework channel puts in a token for a bot; `None` drops a claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": app_id,
            "serviceurl": service_url,
            "nbf": now - 60,
            "exp": now + 3600,
            "iat": now - 60,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        algorithm: str = "RS256",
    ) -> str:
        headers = {"kid": kid or self.kid}
        return jwt.encode(claims, key or self.key, algorithm=algorithm, headers=headers)

    # -- the server --------------------------------------------------------------------

    def start(self) -> LocalIdentity:
        self.cert_path, key_path = self_signed(self.directory, "identity-")
        identity = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                identity.hits.append(path)
                if path == METADATA_PATH:
                    self._json(200, {
                        "issuer": ISSUER,
                        "authorization_endpoint": identity.url + "/authorize",
                        "jwks_uri": identity.url + "/v1/keys",
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                    })
                elif path == "/v1/keys":
                    self._json(200, identity.jwks())
                elif path.endswith("/.well-known/openid-configuration"):
                    tenant = path.split("/")[1]
                    base = f"{identity.url}/{tenant}"
                    self._json(200, {
                        "issuer": f"{base}/v2.0",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                    })
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                identity.hits.append(path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not path.endswith("/oauth2/v2.0/token"):
                    self._json(404, {"error": "not_found"})
                    return
                identity.token_requests.append(TokenRequest(path, form))
                token = f"outgoing-{next(identity._ids)}-{uuid.uuid4().hex[:8]}"
                identity.issued.append(token)
                self._json(200, {"token_type": "Bearer", "expires_in": 3600,
                                 "ext_expires_in": 3600, "access_token": token})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
