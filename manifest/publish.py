"""Publish the app package to the organization's Teams app catalog through Microsoft Graph.

- New app: `POST /appCatalogs/teamsApps` with the zip (`application/zip`).
- Already in the catalog (found by `externalId` = the manifest's `id`): a new definition,
  `POST /appCatalogs/teamsApps/{id}/appDefinitions`.

The token comes from MSAL: the device code flow for an admin at a terminal (the way Graph
allows: publishing takes a *delegated* permission, AppCatalog.ReadWrite.All or, to submit for
review, AppCatalog.Submit), or client credentials for a tenant where an application may.
Throttling (429, and 503/504 with Retry-After) is retried a bounded number of times.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msal
import requests

from manifest.package import check_package
from manifest.settings import DEFAULT_AUTHORITY_HOST, ManifestSettings

# statuses worth retrying after the wait Graph asks for
RETRY_STATUSES = frozenset({429, 503, 504})
MAX_ATTEMPTS = 5
# the longest single wait, and the longest a whole publish waits for throttling (seconds)
MAX_WAIT = 60.0
MAX_TOTAL_WAIT = 180.0
DEFAULT_WAIT = 5.0
TIMEOUT = 60.0

__all__ = ["GraphClient", "PublishError", "PublishResult", "acquire_token", "publish_package"]


class PublishError(Exception):
    """Why publishing failed, in words an admin can act on."""


@dataclass(frozen=True)
class PublishResult:
    action: Literal["created", "updated"]
    # the app's id in the catalog (not the manifest id)
    catalog_id: str
    external_id: str
    display_name: str | None
    version: str | None
    publishing_state: str | None = None
    attempts: int = 1
    raw: dict[str, Any] = field(default_factory=dict)


# -- the token -------------------------------------------------------------------------


class _Http:
    """The HTTP client MSAL uses: `requests` with `verify` given on every request.

    A `requests.Session`'s own `verify` loses to the REQUESTS_CA_BUNDLE variable, so a
    certificate bundle given as an argument would be ignored wherever that variable is set.
    """

    def __init__(self, verify: bool | str) -> None:
        self.session = requests.Session()
        self.verify = verify

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url, **self._options(kwargs))

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.post(url, **self._options(kwargs))

    def close(self) -> None:
        self.session.close()

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("verify", self.verify)
        return kwargs


def _authority_options(settings: ManifestSettings) -> dict[str, Any]:
    # MSAL checks an authority host it does not know against Microsoft's instance discovery;
    # a sovereign cloud or a test server on loopback is the admin's own choice
    if settings.authority_host.rstrip("/") == DEFAULT_AUTHORITY_HOST:
        return {}
    return {"validate_authority": False, "instance_discovery": False}


_AADSTS_HINTS = {
    "AADSTS7000215": "the client secret is wrong or expired: create a new one",
    "AADSTS700016": "no app registration with that client id in this tenant: check "
                    "SWITCHBOARD_PUBLISH_CLIENT_ID and the tenant id",
    "AADSTS7000218": "the app registration does not allow public client flows: in Entra ID, "
                     "Authentication > 'Allow public client flows' = Yes (or use a secret)",
    "AADSTS90002": "no such Entra tenant: check SWITCHBOARD_PUBLISH_TENANT_ID",
    "AADSTS65001": "nobody consented to the permission yet: grant admin consent for "
                   "AppCatalog.ReadWrite.All on the app registration",
}


def _token_error(result: dict[str, Any]) -> PublishError:
    error = result.get("error") or "error"
    description = (result.get("error_description") or "").strip().splitlines()
    first = description[0] if description else ""
    hint = next((h for code, h in _AADSTS_HINTS.items() if code in first), "")
    if error == "authorization_declined":
        hint = hint or "the sign-in was declined"
    elif error == "expired_token":
        hint = hint or "the code expired before anyone signed in: run publish again"
    message = f"sign-in failed ({error}): {first}" if first else f"sign-in failed ({error})"
    return PublishError(f"{message}{': ' + hint if hint else ''}")


def acquire_token(
    settings: ManifestSettings,
    *,
    device_code: bool | None = None,
    verify: bool | str = True,
    prompt: Callable[[str], None] = print,
) -> str:
    """A Graph access token. Client credentials when a secret is set (unless `device_code`),
    otherwise the device code flow: `prompt` shows the admin where to sign in."""
    client_id = settings.publish_client_id.strip()
    if not client_id:
        raise PublishError(
            "no app registration to sign in with: set SWITCHBOARD_PUBLISH_CLIENT_ID (or "
            "--client-id) to the client id of an Entra app registration with the delegated "
            "Graph permission AppCatalog.ReadWrite.All (see docs/install.md)"
        )
    secret = settings.publish_client_secret
    use_device = device_code if device_code is not None else not secret
    options = {**_authority_options(settings), "http_client": _Http(verify)}
    authority = settings.authority
    try:
        if not use_device:
            if not settings.aad_tenant_id:
                raise PublishError(
                    "client credentials need your Entra tenant id: set "
                    "SWITCHBOARD_PUBLISH_TENANT_ID (or --tenant-id)"
                )
            app = msal.ConfidentialClientApplication(
                client_id, client_credential=secret, authority=authority, **options
            )
            result = app.acquire_token_for_client(scopes=[f"{settings.graph_origin}/.default"])
        else:
            app = msal.PublicClientApplication(client_id, authority=authority, **options)
            flow = app.initiate_device_flow(
                scopes=[f"{settings.graph_origin}/AppCatalog.ReadWrite.All"]
            )
            if "user_code" not in flow:
                raise _token_error(flow)
            prompt(flow.get("message") or
                   f"To sign in, open {flow.get('verification_uri')} and enter the code "
                   f"{flow['user_code']}")
            result = app.acquire_token_by_device_flow(flow)
    except PublishError:
        raise
    except requests.RequestException as exc:
        raise PublishError(f"cannot reach the sign-in service at {authority}: {exc}") from None
    except ValueError as exc:
        # MSAL's words for an authority it cannot use (unknown tenant, no OpenID metadata)
        raise PublishError(f"cannot use the sign-in authority {authority}: {exc}") from None
    if not isinstance(result, dict) or "access_token" not in result:
        raise _token_error(result if isinstance(result, dict) else {})
    return result["access_token"]


# -- Graph -----------------------------------------------------------------------------


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return DEFAULT_WAIT
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_WAIT
    return max(0.0, when.timestamp() - time.time())


def _graph_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    message = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code, text = error.get("code"), error.get("message")
        message = f"{code}: {text}" if code and text else str(text or code or "")
    if not message:
        message = (response.text or response.reason or "").strip()[:300]
    request_id = response.headers.get("request-id")
    if request_id:
        message += f" (Graph request-id {request_id})"
    return message


class GraphClient:
    """Just enough of Microsoft Graph: JSON requests with a bearer token, throttling retried."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        verify: bool | str = True,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
        device_code: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.verify = verify
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep
        self.device_code = device_code
        self.attempts = 0

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}/{path.lstrip('/')}"
        waited = 0.0
        for attempt in range(1, self.max_attempts + 1):
            self.attempts += 1
            try:
                response = self.session.request(
                    method, url, timeout=TIMEOUT, verify=self.verify, **kwargs
                )
            except requests.RequestException as exc:
                raise PublishError(
                    f"cannot reach Microsoft Graph at {self.base_url}: {exc}") from None
            if response.status_code not in RETRY_STATUSES:
                return response
            wait = min(_retry_after(response), MAX_WAIT)
            if attempt == self.max_attempts or waited + wait > MAX_TOTAL_WAIT:
                break
            self.sleep(wait)
            waited += wait
        raise PublishError(
            f"Microsoft Graph is throttling the requests ({response.status_code}) and still was "
            f"after {attempt} attempts: wait a few minutes and run publish again "
            f"({_graph_message(response)})"
        )

    def fail(self, response: requests.Response, doing: str) -> PublishError:
        status = response.status_code
        message = _graph_message(response)
        if status == 401:
            return PublishError(
                f"Microsoft Graph did not accept the sign-in while {doing} (401 Unauthorized): "
                f"{message}. Sign in again, in the Entra tenant whose app catalog you publish to"
            )
        if status == 403:
            how = (
                "Graph lets only a signed-in person publish (an application's own permissions "
                "are not enough): leave out the client secret to sign in with a device code"
                if not self.device_code else
                "sign in as a Teams Administrator (or Global Administrator), or use "
                "--requires-review to submit the app for an admin to approve"
            )
            return PublishError(
                f"not allowed to publish to the app catalog while {doing} (403 Forbidden): "
                f"{message}. Publishing needs the delegated Graph permission "
                f"AppCatalog.ReadWrite.All (AppCatalog.Submit for --requires-review), with "
                f"admin consent; {how}"
            )
        if status == 400:
            return PublishError(
                f"Microsoft Graph rejected the package while {doing} (400): {message}. "
                f"If it says the version exists, raise --version / SWITCHBOARD_APP_VERSION"
            )
        return PublishError(f"Microsoft Graph answered {status} while {doing}: {message}")


def _find(graph: GraphClient, external_id: str) -> dict[str, Any] | None:
    quoted = external_id.replace("'", "''")
    response = graph.request(
        "GET", "appCatalogs/teamsApps", params={"$filter": f"externalId eq '{quoted}'"}
    )
    if response.status_code != 200:
        raise graph.fail(response, "looking for the app in the catalog")
    apps = response.json().get("value") or []
    own = [a for a in apps if a.get("distributionMethod", "organization") == "organization"]
    return own[0] if own else None


def _review(requires_review: bool) -> dict[str, str]:
    return {"requiresReview": "true"} if requires_review else {}


def publish_package(
    package: Path,
    settings: ManifestSettings,
    *,
    token: str | None = None,
    device_code: bool | None = None,
    requires_review: bool = False,
    verify: bool | str = True,
    sleep: Callable[[float], None] = time.sleep,
    prompt: Callable[[str], None] = print,
    max_attempts: int = MAX_ATTEMPTS,
) -> PublishResult:
    """Check the package, sign in, then create the app in the catalog or update it."""
    manifest = check_package(Path(package))  # never upload what Teams would reject
    data = Path(package).read_bytes()
    external_id = manifest["id"]
    uses_device = device_code if device_code is not None else not settings.publish_client_secret
    if token is None:
        token = acquire_token(settings, device_code=device_code, verify=verify, prompt=prompt)
    graph = GraphClient(settings.graph_url, token, verify=verify, sleep=sleep,
                        max_attempts=max_attempts, device_code=uses_device)
    headers = {"Content-Type": "application/zip"}
    existing = _find(graph, external_id)
    if existing is None:
        response = graph.request("POST", "appCatalogs/teamsApps", data=data, headers=headers,
                                 params=_review(requires_review))
        if response.status_code in (200, 201):
            app = response.json()
            definition = (app.get("appDefinitions") or [{}])[0]
            return PublishResult(
                "created", app.get("id", ""), app.get("externalId") or external_id,
                app.get("displayName"), definition.get("version") or manifest.get("version"),
                definition.get("publishingState"), graph.attempts, app,
            )
        if response.status_code != 409:
            raise graph.fail(response, "adding the app to the catalog")
        # someone added it since we looked: update it instead
        existing = _find(graph, external_id)
        if existing is None:
            raise graph.fail(response, "adding the app to the catalog")
    catalog_id = existing["id"]
    response = graph.request("POST", f"appCatalogs/teamsApps/{catalog_id}/appDefinitions",
                             data=data, headers=headers, params=_review(requires_review))
    if response.status_code not in (200, 201):
        raise graph.fail(response, f"updating the app {catalog_id} in the catalog")
    definition = response.json() if response.content else {}
    return PublishResult(
        "updated", catalog_id, existing.get("externalId") or external_id,
        definition.get("displayName") or existing.get("displayName"),
        definition.get("version") or manifest.get("version"),
        definition.get("publishingState"), graph.attempts, definition,
    )
