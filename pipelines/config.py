"""Config models: tenants, their pipelines and stages.

The stage's own settings are validated by the model its action declares
(`pipelines.actions`), so the config language grows one file at a time. Everything here is
checked by `pipelines.loader` when the config loads, never when a guest hits it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from pipelines.hours import Holiday, OpeningHours, Schedule, check_timezone
from pipelines.knowledge import KnowledgeBase

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
METADATA_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"

# A card template: a file name (relative to the config file) or an inline card.
TemplateRef = str | dict[str, Any]

# A skill's name: lower case, like `language:fr`, `vpn` or `payroll.uk`
SKILL_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,63}$"
SKILL_LEVELS = range(1, 6)


def _skills(value: Any) -> Any:
    """Skills as written: a mapping name -> level (1-5), or a list of names (level 1).
    Names are case-insensitive (kept in lower case)."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("list skill names (`[language:fr, vpn]`), or map each to a level "
                             "1-5 (`{language:fr: 3}`)")
        value = dict.fromkeys(value, 1)
    if not isinstance(value, dict):
        raise ValueError("map each skill to a level 1-5, like {language:fr: 3, vpn: 1}")
    out: dict[str, int] = {}
    for name, level in value.items():
        key = str(name).strip().casefold()
        if not re.match(SKILL_PATTERN, key):
            raise ValueError(f"{name!r} is not a skill name: use letters, digits and . _ : - "
                             "(like language:fr)")
        if isinstance(level, bool) or not isinstance(level, int) or level not in SKILL_LEVELS:
            raise ValueError(f"the level of skill {key!r} must be a whole number 1 to 5")
        out[key] = level
    return out


# skill name -> level (an agent's), or lowest level accepted (a chat's requirement)
Skills = Annotated[dict[str, int], BeforeValidator(_skills)]


class StageConfig(BaseModel):
    """What every stage has. Actions subclass this with their own settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=KEY_PATTERN)
    action: str
    next: str | None = None

    def targets(self) -> dict[str, str]:
        """Where this stage can go: a label (for errors and drawings) -> stage key."""
        return {"next": self.next} if self.next else {}

    def template_refs(self) -> dict[str, TemplateRef]:
        """Card templates this stage sends: setting name -> reference."""
        return {}

    def metadata_written(self) -> list[str]:
        """Metadata keys this stage sets, so templates of later stages may bind them."""
        return []

    def metadata_read(self) -> dict[str, list[str]]:
        """Metadata names this stage reads outside templates: setting -> names (checked at load
        like a template's names: each must be built in or written by some stage)."""
        return {}

    def text_templates(self) -> dict[str, str]:
        """Texts with `${...}` bindings besides `prompt`: setting -> text (checked at load)."""
        return {}


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=KEY_PATTERN)
    name: str | None = None
    # parsed by the loader into the action's own model
    stages: list[StageConfig]

    def stage(self, key: str) -> StageConfig:
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise KeyError(key)

    @property
    def first(self) -> StageConfig:
        return self.stages[0]


AAD_OBJECT_ID_PATTERN = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"


class AgentConfig(BaseModel):
    """A person of the tenant who takes chats in Teams, known by their AAD object id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aad_object_id: str = Field(pattern=AAD_OBJECT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    # the most chats they take at once (None: the tenant's default)
    capacity: int | None = Field(default=None, ge=1, le=20)
    # what they are good at, each with a level 1-5 (pipelines/routing/skills.py)
    skills: Skills = Field(default_factory=dict)


class PersonConfig(BaseModel):
    """Someone who may open the supervisor console (console/), known by their Entra object id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aad_object_id: str = Field(pattern=AAD_OBJECT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=120)


def _once(people: list[PersonConfig], role: str) -> list[PersonConfig]:
    ids = [p.aad_object_id.casefold() for p in people]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"{role} {twice[0]} is listed twice: keep one entry")
    return people


class TenantConfig(BaseModel):
    """A department of the help desk. Not the Microsoft Entra tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    enabled: bool = True
    primary_pipeline: str
    pipelines: list[PipelineConfig] = Field(min_length=1)
    agents: list[AgentConfig] = Field(default_factory=list)
    agent_capacity: int = Field(default=2, ge=1, le=20)
    # who sees and steers this department's chats in the supervisor console
    supervisors: list[PersonConfig] = Field(default_factory=list)
    # the card a guest gets when an agent transfers the chat here
    transfer_template: TemplateRef = "builtin:transfer"
    # FAQ articles for `faq` stages: a YAML/JSON file, or several, relative to the config file
    knowledge_base: str | list[str] | None = None
    # opening hours for `business_hours` stages: an IANA time zone, per weekday zero or more
    # intervals ("09:00-17:30"), and days closed all day
    timezone: str | None = None
    opening_hours: OpeningHours | None = None
    holidays: list[Holiday] = Field(default_factory=list)
    # named lists of its agents (AAD object ids or names), for escalation tiers
    groups: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, members in value.items():
            if not re.match(KEY_PATTERN, name):
                raise ValueError(f"group name {name!r}: use letters, digits and . _ -")
            if not members:
                raise ValueError(f"group {name!r} is empty: list its agents (ids or names)")
        return value

    @field_validator("supervisors")
    @classmethod
    def _supervisors(cls, value: list[PersonConfig]) -> list[PersonConfig]:
        return _once(value, "supervisor")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value is not None else None

    @field_validator("knowledge_base")
    @classmethod
    def _files(cls, value: str | list[str] | None) -> str | list[str] | None:
        files = [value] if isinstance(value, str) else (value or [])
        if value is not None and (not files or any(not f.strip() for f in files)):
            raise ValueError("give a file name like kb/it.yaml, or a list of them")
        return value

    @model_validator(mode="after")
    def _hours(self) -> TenantConfig:
        if self.opening_hours is not None and self.timezone is None:
            raise ValueError("`opening_hours` needs `timezone`: add one like Europe/London")
        if self.holidays and self.opening_hours is None:
            raise ValueError("`holidays` without `opening_hours`: add the weekly hours")
        if self.opening_hours is not None and self.opening_hours.never_open:
            raise ValueError("`opening_hours` has no open interval on any day: add one, "
                             "like monday: [\"09:00-17:30\"]")
        for name, members in self.groups.items():
            for member in members:
                if self.find_agent(member) is None:
                    names = ", ".join(a.name for a in self.agents) or "none"
                    raise ValueError(f"group {name!r} lists {member!r}, who is not one of its "
                                     f"`agents` ({names}): use an agent's name or object id")
        days = [h.date for h in self.holidays]
        twice = sorted({d for d in days if days.count(d) > 1})
        if twice:
            raise ValueError(f"`holidays` lists {twice[0].isoformat()} twice: keep one entry")
        return self

    @property
    def knowledge_base_files(self) -> list[str]:
        files = self.knowledge_base
        if files is None:
            return []
        return [files] if isinstance(files, str) else files

    def schedule(self) -> Schedule | None:
        """The tenant's opening hours (None when it has none)."""
        if self.opening_hours is None or self.timezone is None:
            return None
        return Schedule(self.timezone, self.opening_hours, tuple(self.holidays))

    def agent(self, aad_object_id: str) -> AgentConfig | None:
        wanted = aad_object_id.casefold()
        return next((a for a in self.agents if a.aad_object_id.casefold() == wanted), None)

    def capacity_of(self, agent: AgentConfig) -> int:
        return agent.capacity or self.agent_capacity

    def find_agent(self, text: str) -> AgentConfig | None:
        """By AAD object id or name, case-insensitively (groups, `consult Bob`)."""
        wanted = text.strip().casefold()
        return next((a for a in self.agents if wanted in (a.aad_object_id.casefold(),
                                                         a.name.casefold())), None)

    def group(self, name: str) -> list[AgentConfig]:
        """The agents of a named group (members that are no agent of it are left out)."""
        found = (self.find_agent(member) for member in self.groups.get(name, []))
        return list({a.aad_object_id: a for a in found if a is not None}.values())

    def pipeline(self, pipeline_id: str) -> PipelineConfig:
        for pipeline in self.pipelines:
            if pipeline.id == pipeline_id:
                return pipeline
        raise KeyError(pipeline_id)

    @property
    def primary(self) -> PipelineConfig:
        return self.pipeline(self.primary_pipeline)


class SwitchboardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_tenant: str
    # how many transfers one chat may go through before the loop is stopped
    max_transfer_hops: int = Field(default=5, ge=1, le=50)
    tenants: list[TenantConfig] = Field(min_length=1)
    # the only hosts `http_request` stages may call (pipelines/url_guard.py)
    http_allowlist: list[str] = Field(default_factory=list, max_length=100)
    # who sees and steers every department in the supervisor console
    admins: list[PersonConfig] = Field(default_factory=list)
    # set by the loader: where relative template paths are resolved
    source: str = ""
    # set by the loader: resolved templates, by (tenant, pipeline, stage, setting)
    templates: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # set by the loader: each tenant's knowledge base (articles, index built), by tenant id;
    # left out of the published config (it may be large), which keeps its digest instead
    knowledge_bases: dict[str, KnowledgeBase] = Field(default_factory=dict, exclude=True)
    knowledge_digests: dict[str, str] = Field(default_factory=dict)

    @field_validator("http_allowlist")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        from pipelines.url_guard import allowlist_problem

        for host in hosts:
            problem = allowlist_problem(host)
            if problem:
                raise ValueError(problem)
        return hosts

    @field_validator("admins")
    @classmethod
    def _admins(cls, value: list[PersonConfig]) -> list[PersonConfig]:
        return _once(value, "admin")

    def tenant(self, tenant_id: str) -> TenantConfig:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise KeyError(tenant_id)

    def find_tenant(self, text: str) -> TenantConfig | None:
        """By id or name, case-insensitively (agents type `transfer hr`)."""
        wanted = text.strip().casefold()
        for tenant in self.tenants:
            if wanted in (tenant.id.casefold(), tenant.name.casefold()):
                return tenant
        return None

    @property
    def primary(self) -> TenantConfig:
        return self.tenant(self.primary_tenant)

    def tenants_of_agent(self, aad_object_id: str | None) -> list[TenantConfig]:
        if not aad_object_id:
            return []
        return [t for t in self.tenants if t.enabled and t.agent(aad_object_id) is not None]

    def template(self, tenant_id: str, pipeline_id: str, stage_key: str, setting: str) -> dict:
        return self.templates[template_key(tenant_id, pipeline_id, stage_key, setting)]

    def knowledge_base(self, tenant_id: str) -> KnowledgeBase | None:
        return self.knowledge_bases.get(tenant_id)


def template_key(tenant_id: str, pipeline_id: str, stage_key: str, setting: str) -> str:
    return f"{tenant_id}/{pipeline_id}/{stage_key}/{setting}"


def tenant_transfer_key(tenant_id: str) -> str:
    """Where the loader keeps a tenant's resolved `transfer_template`."""
    return f"{tenant_id}/-/-/transfer_template"
