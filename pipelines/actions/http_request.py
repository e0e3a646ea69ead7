"""`http_request`: call an HTTP endpoint (open a ticket in ServiceNow or Jira, say), keep parts
of its answer as metadata, go on.

    - key: ticket
      action: http_request
      method: POST
      url: https://acme.service-now.com/api/now/table/incident
      # or, the instance per deployment: url_env: SNOW_URL, path: /api/now/table/incident
      headers: {Accept: application/json}
      header_env: {Authorization: SNOW_AUTH}    # the secret's value is in the environment
      body:
        short_description: "HR: ${Answers.HrTopic}"
        description: "${Answers.Need}"
      timeout: 10
      store_as: {Answers.Ticket: result.number}
      next: talk
      on_error: talk

The call is not made inside the turn that reaches the stage: that turn records a timer due at
once (written with the session), and the timer runs the call as a step of its own on the
session (`pipelines.http_steps`, through `Engine.act`), so a crash anywhere leaves a timer that
runs it again, and a redelivered activity finds its turn done. See docs/http_request.md.

Checked when the config loads: the URL (https except loopback, its host on `http_allowlist`,
no link-local or metadata address, bindings only in its path and query), no secret written in
`headers` or in the URL, environment variable names, `store_as` names and paths, and every
`${...}` of the URL and the body like any template text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from yarl import URL

from pipelines.actions.base import Action, Goto, GuestInput, LoadCheck, Outcome, StageContext, Wait
from pipelines.config import METADATA_KEY_PATTERN, StageConfig
from pipelines.url_guard import Refused, check_url

# the timer that runs the call (storage/timers.py), one per session at a time
TIMER_KIND = "http_request"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
# `result.number`, `issues.0.key`: names and list positions, dot-separated
RESPONSE_PATH = re.compile(r"^[^.\s]{1,64}(\.[^.\s]{1,64}){0,15}$")
WITH_BODY = ("POST", "PUT", "PATCH")
# headers that carry credentials: never in the config, always from `header_env`
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key",
                            "api-key", "apikey", "x-auth-token", "x-access-token"})
SECRET_WORDS = re.compile(r"token|secret|passw|api-?key|auth|credential|cookie",
                          re.IGNORECASE)
SECRET_VALUE = re.compile(r"^\s*(bearer|basic|token|digest|negotiate|sharedkey)\s+\S|"
                          r"^eyJ[\w-]{8,}\.[\w-]{8,}\.", re.IGNORECASE)
SECRET_QUERY = re.compile(r"^(.*[-_])?(key|apikey|token|secret|password|passwd|pwd|sig|"
                          r"signature|code|auth)$", re.IGNORECASE)
# set by the bot on every call
OWN_HEADERS = frozenset({"idempotency-key", "content-type", "content-length", "host",
                         "transfer-encoding", "connection"})
RESERVED_NAMESPACES = ("Session.", "Tenant.", "Agent.", "Guest.")
WAITING_TEXT = "One moment, please."


def _strings(node: Any, where: str) -> dict[str, str]:
    """Every string of a JSON template, by its path (`body.fields.summary`)."""
    if isinstance(node, str):
        return {where: node}
    out: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            out.update(_strings(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.update(_strings(value, f"{where}[{i}]"))
    return out


class HttpRequestStage(StageConfig):
    action: Literal["http_request"] = "http_request"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    # exactly one: the URL, or the environment variable that holds the endpoint's base
    # (https://acme.service-now.com, per deployment), with `path` after it
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    url_env: str | None = None
    path: str | None = Field(default=None, min_length=1, max_length=2000)
    # plain headers; a header that carries a credential goes in header_env
    headers: dict[str, str] = Field(default_factory=dict, max_length=30)
    # header name -> the environment variable that holds its whole value
    header_env: dict[str, str] = Field(default_factory=dict, max_length=10)
    # a JSON template, bound from metadata like a card (what a guest typed stays text)
    body: dict[str, Any] | list[Any] | None = None
    # seconds for the whole call, its retries included
    timeout: float = Field(default=10, ge=1, le=30)
    # metadata name -> path in the JSON answer (`Answers.Ticket: result.number`)
    store_as: dict[str, str] = Field(default_factory=dict, max_length=20)
    next: str
    on_error: str

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name: use letters, "
                             "digits and _, like SNOW_URL")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        problem = url_text_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith("/") or "://" in value or "#" in value:
            raise ValueError("a path starts with / and has no scheme, host or #fragment, "
                             "like /api/now/table/incident")
        problem = url_text_problem("https://host.example" + value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("headers")
    @classmethod
    def _no_inline_secrets(cls, headers: dict[str, str]) -> dict[str, str]:
        problems = []
        for name, value in headers.items():
            lowered = name.casefold()
            if _header_name_problem(name):
                problems.append(_header_name_problem(name))
            elif lowered in SECRET_HEADERS or SECRET_WORDS.search(name):
                problems.append(
                    f"header {name!r} carries a secret and is written in the config: put the "
                    f"value in an environment variable and name it in `header_env` "
                    f"({name}: SOME_VARIABLE)")
            elif SECRET_VALUE.search(value):
                problems.append(
                    f"header {name!r} holds what looks like a credential: put it in an "
                    f"environment variable and name it in `header_env`")
            elif "${" in value or any(c in value for c in "\r\n\0"):
                problems.append(f"header {name!r}: a header value is plain text on one line, "
                                "without ${...}")
        if problems:
            raise ValueError("; ".join(problems))
        return headers

    @field_validator("header_env")
    @classmethod
    def _header_env(cls, names: dict[str, str]) -> dict[str, str]:
        problems = []
        for header, env in names.items():
            if _header_name_problem(header):
                problems.append(_header_name_problem(header))
            elif not ENV_NAME.match(env):
                problems.append(f"{header}: {env!r} is not an environment variable name: use "
                                "letters, digits and _, like SNOW_AUTH")
        if problems:
            raise ValueError("; ".join(problems))
        return names

    @field_validator("store_as")
    @classmethod
    def _store_as(cls, mapping: dict[str, str]) -> dict[str, str]:
        problems = []
        for name, path in mapping.items():
            if not re.match(METADATA_KEY_PATTERN, name):
                problems.append(f"{name!r} is not a metadata name: use dotted names like "
                                "Answers.Ticket")
            elif name.startswith(RESERVED_NAMESPACES):
                problems.append(f"{name!r} is the bot's own metadata: use another name, like "
                                "Answers.Ticket or Ticket.Number")
            elif not isinstance(path, str) or not RESPONSE_PATH.match(path):
                problems.append(f"{name}: {path!r} is not a path in the answer: use names and "
                                "list positions joined by dots, like result.number")
        if problems:
            raise ValueError("; ".join(problems))
        return mapping

    @model_validator(mode="after")
    def _whole(self) -> HttpRequestStage:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give the endpoint as `url`, or as `url_env` (the environment "
                             "variable that holds its base URL) with `path`: one of the two")
        if self.path is not None and self.url is not None:
            raise ValueError("`path` goes with `url_env`: with `url`, write the whole URL")
        twice = {h.casefold() for h in self.headers} & {h.casefold() for h in self.header_env}
        if twice:
            raise ValueError(f"header {sorted(twice)[0]!r} is in `headers` and `header_env`: "
                             "keep one")
        if self.body is not None and self.method not in WITH_BODY:
            raise ValueError(f"a {self.method} request has no `body`: use POST, PUT or PATCH")
        return self

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_error": self.on_error}

    def metadata_written(self) -> list[str]:
        return list(self.store_as)

    def text_templates(self) -> dict[str, str]:
        found = {key: text for key, text in (("url", self.url), ("path", self.path))
                 if text and "${" in text}
        return {**found, **(_strings(self.body, "body") if self.body is not None else {})}


def _header_name_problem(name: str) -> str | None:
    if not HEADER_NAME.match(name):
        return f"{name!r} is not a header name"
    if name.casefold() in OWN_HEADERS:
        return f"header {name!r} is set by the bot: remove it"
    return None


def url_text_problem(url: str) -> str | None:
    """What is wrong with a configured URL before the allowlist is consulted: where its
    bindings are, secrets in it, its scheme and host (None: fine)."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    authority = head.split("://", 1)[1].split("/", 1)[0] if "://" in head else head
    if "${" in authority or "${" in head.split("://", 1)[0]:
        return "${...} in the scheme, host or port: the host must be written out, so the " \
               "allowlist can be checked when the config loads (bind in the path or query)"
    try:
        parsed = URL(url.replace("${", "x").replace("}", "x"))
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parsed.fragment:
        return "a URL with a #fragment: remove it"
    for key in parsed.query:
        if SECRET_QUERY.match(key):
            return (f"the query parameter {key!r} looks like a secret written in the config: "
                    "send it in a header named in `header_env`")
    try:
        check_url(parsed, [parsed.raw_host or ""])
    except Refused as exc:
        return str(exc)
    return None


def configured_url(stage: HttpRequestStage,
                   environ: Mapping[str, str] = os.environ) -> str | None:
    """The URL template: the stage's `url`, or its `url_env` variable's value followed by
    `path` (None when the variable is not set)."""
    if stage.url is not None:
        return stage.url
    base = (environ.get(stage.url_env or "") or "").strip()
    if not base:
        return None
    return base.rstrip("/") + (stage.path or "") if stage.path else base


class HttpRequestAction(Action[HttpRequestStage]):
    name = "http_request"
    settings = HttpRequestStage

    async def enter(self, ctx: StageContext, stage: HttpRequestStage) -> Outcome:
        if configured_url(stage) is None:
            # the URL's variable is not set in this deployment: the call is off (said at start)
            return Goto(stage.on_error)
        ctx.schedule(TIMER_KIND, 0, {"stage": stage.key})
        return Wait()

    async def receive(self, ctx: StageContext, stage: HttpRequestStage,
                      guest: GuestInput) -> Outcome:
        # the call is under way (its timer runs it): the guest's words are kept, not acted on
        await ctx.send_text(WAITING_TEXT)
        return Wait()

    def check(self, stage: HttpRequestStage, load: LoadCheck) -> list[str]:
        if stage.url is None:
            return []
        try:
            check_url(stage.url.replace("${", "x").replace("}", "x"), load.config.http_allowlist)
        except Refused as exc:
            return [f"`url`: {exc}"]
        return []


ACTION = HttpRequestAction()
