"""The templates and texts a configuration uses: resolved, checked, and reported once each.

Why its own step: one template file is often used by several stages (a summary card at the end
of every pipeline). Its problems are its own, so they are reported once, naming the file and
listing the stages that use it, rather than once per stage. Inline templates and texts
(prompts) belong to their stage and are reported with it.

What is checked: what is outside the templating subset, names no stage provides (with a "did
you mean"), a value of the wrong type for its property (an Input.Number bound to text), and the
card the template makes, bound with sample values of each name's type, against the Adaptive
Card 1.5 schema.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cards.binding import bind
from cards.schema import validate_card
from cards.template_checks import check_template
from cards.templates import TemplateError, builtin_template, load_template
from pipelines.config import SwitchboardConfig, template_key, tenant_transfer_key

if TYPE_CHECKING:
    from pipelines.loader import _Problems

# metadata every session has, whatever its pipeline
GUEST_KEYS = ("Guest.Id", "Guest.Name", "Guest.AadObjectId", "Guest.AadTenantId", "Guest.Locale")
SESSION_KEYS = (
    "Session.Id",
    "Session.TenantId",
    "Session.TenantName",
    "Session.StartedAt",
    "Session.Hops",
    *(
        f"Session.Transferred{side}.{what}"
        for side in ("From", "To")
        for what in ("SessionId", "TenantId", "TenantName")
    ),
)
TENANT_KEYS = ("Tenant.Id", "Tenant.Name")
# set by `business_hours`: when the desk opens next (human, and ISO 8601), today's holiday
HOURS_KEYS = ("Tenant.NextOpen", "Tenant.NextOpenIso", "Tenant.Holiday")
# set while a live agent has the chat (connect_to_agent)
AGENT_KEYS = ("Agent.Id", "Agent.Name")
BUILTIN_KEYS = frozenset(GUEST_KEYS + SESSION_KEYS + TENANT_KEYS + HOURS_KEYS + AGENT_KEYS)
# the bot's metadata that is not text
BUILTIN_TYPES = {"Session.Hops": "number"}
MAX_USES_SHOWN = 5


def known_metadata(config: SwitchboardConfig) -> frozenset[str]:
    """Every metadata key a template may bind: built-ins plus what any stage writes."""
    written = {
        key
        for tenant in config.tenants
        for pipeline in tenant.pipelines
        for stage in pipeline.stages
        for key in stage.metadata_written()
    }
    return BUILTIN_KEYS | written


def metadata_types(config: SwitchboardConfig) -> dict[str, str]:
    """"string", "number", "boolean" or "any" for every known key.

    Answers, choices and the bot's own keys are text; `Session.Hops` and a feedback rating
    are numbers; `set_metadata` gives its literals' types (a key two stages set to different
    types, or to one `${...}`, may be anything).
    """
    types = {key: "string" for key in known_metadata(config)}
    types.update(BUILTIN_TYPES)
    stated: dict[str, set[str]] = {}
    for tenant in config.tenants:
        for pipeline in tenant.pipelines:
            for stage in pipeline.stages:
                rating = getattr(stage, "rating_key", None)
                if isinstance(rating, str):
                    stated.setdefault(rating, set()).add("number")
                if stage.action == "set_metadata":
                    for key, value in getattr(stage, "values", {}).items():
                        stated.setdefault(key, set()).add(_literal_type(value))
    for key, kinds in stated.items():
        types[key] = kinds.pop() if len(kinds) == 1 else "any"
    return types


def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "any" if value.strip().startswith("${") else "string"
    return "any"


def sample_values(config: SwitchboardConfig) -> dict[str, Any]:
    """A value of its type for every known key, to check that bound templates are valid cards."""
    samples = {"number": 1, "boolean": True}
    return {key: samples.get(kind, f"sample {key}")
            for key, kind in metadata_types(config).items()}


@dataclass(frozen=True)
class _Use:
    """A setting that uses a template: a stage's (tenant, pipeline, stage) or a tenant's."""

    where: tuple[str, ...]
    setting: str

    def describe(self) -> str:
        names = ("tenant", "pipeline", "stage")
        return " > ".join(f"{n} {w!r}" for n, w in zip(names, self.where, strict=False)) \
            + f" `{self.setting}`"


class TemplateChecker:
    """Resolves and checks every template of one configuration."""

    def __init__(self, config: SwitchboardConfig, path: Path, problems: _Problems) -> None:
        self.config, self.path, self.problems = config, path, problems
        self.known = known_metadata(config)
        self.types = metadata_types(config)
        self.samples = sample_values(config)
        self.resolved: dict[str, dict[str, Any]] = {}
        # template files: each loaded and checked once, its users collected
        self.files: dict[Path, dict[str, Any] | TemplateError] = {}
        self.users: dict[Path, list[_Use]] = {}

    def run(self) -> dict[str, dict[str, Any]]:
        for tenant in self.config.tenants:
            self._template(tenant.transfer_template, _Use((tenant.id,), "transfer_template"),
                           tenant_transfer_key(tenant.id))
            for pipeline in tenant.pipelines:
                for stage in pipeline.stages:
                    where = (tenant.id, pipeline.id, stage.key)
                    self._texts(stage, where)
                    for setting, ref in stage.template_refs().items():
                        self._template(ref, _Use(where, setting), template_key(*where, setting))
        self._report_files()
        return self.resolved

    def _texts(self, stage: Any, where: tuple[str, str, str]) -> None:
        texts = {"prompt": getattr(stage, "prompt", None), **stage.text_templates()}
        for text_field, text in texts.items():
            if isinstance(text, str):
                for message in check_template(text, self.known.__contains__, self.types):
                    message = hint(message.removeprefix("$: "), self.known)
                    self.problems.add(f"`{text_field}`: {message}", *where)
        for setting, names in stage.metadata_read().items():
            for name in names:
                if name not in self.known:
                    message = hint(f"unknown metadata name {name!r}", self.known)
                    self.problems.add(f"`{setting}`: {message}", *where)

    def _template(self, ref: str | dict[str, Any], use: _Use, key: str) -> None:
        if isinstance(ref, str) and not ref.startswith("builtin:"):
            file = (self.path.parent / ref).resolve()
            self.users.setdefault(file, []).append(use)
            if file not in self.files:
                try:
                    self.files[file] = load_template(file)
                except TemplateError as exc:
                    self.files[file] = exc
            template = self.files[file]
            if isinstance(template, dict):
                self.resolved[key] = template
            return
        try:
            template = builtin_template(ref.removeprefix("builtin:")) if isinstance(ref, str) \
                else ref
        except (TemplateError, KeyError) as exc:
            self.problems.add(f"`{use.setting}`: {exc}", *use.where)
            return
        for message in self.template_problems(template):
            self.problems.add(f"`{use.setting}`: {message}", *use.where)
        self.resolved[key] = template

    def template_problems(self, template: dict[str, Any]) -> list[str]:
        found = [hint(m, self.known)
                 for m in check_template(template, self.known.__contains__, self.types)]
        if found:
            return found
        card = bind(template, self.samples)
        return [f"not a valid Adaptive Card 1.5 once bound: {m}"
                for m in (validate_card(card) if card is not None else [])]

    def _report_files(self) -> None:
        for file, template in self.files.items():
            uses = self.users[file]
            shown = _shown(file, self.path)
            used_by = "; ".join(u.describe() for u in uses[:MAX_USES_SHOWN])
            if len(uses) > MAX_USES_SHOWN:
                used_by += f"; and {len(uses) - MAX_USES_SHOWN} more"
            messages = [template.message] if isinstance(template, TemplateError) \
                else self.template_problems(template)
            for message in messages:
                self.problems.add_template(shown, message, used_by)


def _shown(file: Path, config_path: Path) -> str:
    """The template file as the admin wrote it: relative to the config file when it is near."""
    try:
        return str(file.relative_to(config_path.parent.resolve()))
    except ValueError:
        return str(file)


_UNKNOWN_NAME = re.compile(r"unknown metadata name '([^']+)'")


def hint(message: str, known: frozenset[str]) -> str:
    """Suggest the known name an unknown one was probably meant to be."""
    match = _UNKNOWN_NAME.search(message)
    if match is None:
        return message
    close = difflib.get_close_matches(match.group(1), sorted(known), n=1)
    if close:
        return f"{message}: did you mean '{close[0]}'?"
    return f"{message}: bind Guest.*, Session.*, Tenant.* or a name a stage stores (store_as)"

