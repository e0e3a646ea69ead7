"""Load and validate the tenants' configuration (YAML or JSON).

Every mistake an admin can make is found here, all at once, each message naming the
file, the tenant, the pipeline and the stage, and saying how to fix it. A guest never
meets a config error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cards.binding import check_template
from cards.schema import validate_card
from cards.templates import TemplateError, builtin_template, load_template
from pipelines.actions import registry
from pipelines.actions.base import LoadCheck
from pipelines.config import (
    PipelineConfig,
    StageConfig,
    SwitchboardConfig,
    TenantConfig,
    template_key,
)

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 2 * 1024 * 1024
MAX_NESTING = 40

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
BUILTIN_KEYS = frozenset(GUEST_KEYS + SESSION_KEYS + TENANT_KEYS)


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"configuration has {count}:\n" + "\n".join(f"  - {p}" for p in problems))


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[str] = []

    def add(self, message: str, tenant: str = "", pipeline: str = "", stage: str = "") -> None:
        where = [self.file]
        if tenant:
            where.append(f"tenant {tenant!r}")
        if pipeline:
            where.append(f"pipeline {pipeline!r}")
        if stage:
            where.append(f"stage {stage!r}")
        self.items.append(" > ".join(where) + ": " + message)


def load_config(path: str | Path) -> tuple[SwitchboardConfig, list[str]]:
    """The validated config and its warnings; ConfigError with every problem otherwise."""
    path = Path(path)
    raw = _read(path)
    return build_config(raw, path)


def _read(path: Path) -> Any:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read the file: {exc.strerror or exc}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{name}: the file is over {MAX_CONFIG_BYTES // 1024} KB"])
    try:
        text = data.decode("utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([f"{name}: not valid {_kind(path)}: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{name}: nested too deeply to be a configuration"]) from None
    if _depth(raw) > MAX_NESTING:
        raise ConfigError([f"{name}: nested more than {MAX_NESTING} levels deep"])
    return raw


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _pydantic_problems(exc: ValidationError) -> Iterable[str]:
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting: remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required setting is missing"
        yield f"`{loc}`: {msg}" if loc else msg


def build_config(raw: Any, path: Path) -> tuple[SwitchboardConfig, list[str]]:
    problems = _Problems(str(path))
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping with `tenants:`"])
    tenants: list[TenantConfig] = []
    raw_tenants = raw.get("tenants")
    if not isinstance(raw_tenants, list) or not raw_tenants:
        problems.add("`tenants` must be a non-empty list of departments")
        raw_tenants = []
    for index, raw_tenant in enumerate(raw_tenants):
        tenant = _tenant(raw_tenant, index, problems)
        if tenant is not None:
            tenants.append(tenant)
    top = {k: v for k, v in raw.items() if k != "tenants"}
    config = None
    try:
        config = SwitchboardConfig(**top, tenants=tenants or [_placeholder()], source=str(path))
    except ValidationError as exc:
        for message in _pydantic_problems(exc):
            problems.add(message)
    if config is None or not tenants:
        raise ConfigError(problems.items)
    _check_tenants(config, problems)
    warnings = _unreachable(config, str(path))
    templates = _templates(config, path, problems)
    if problems.items:
        raise ConfigError(problems.items)
    config = config.model_copy(update={"templates": templates})
    for warning in warnings:
        log.warning(warning)
    return config, warnings


def _placeholder() -> TenantConfig:
    stage = StageConfig(key="x", action="end")
    return TenantConfig(
        id="x", name="x", primary_pipeline="x", pipelines=[PipelineConfig(id="x", stages=[stage])]
    )


def _tenant(raw: Any, index: int, problems: _Problems) -> TenantConfig | None:
    if not isinstance(raw, dict):
        problems.add(f"tenants[{index}] must be a mapping with id, name, pipelines")
        return None
    tenant_id = str(raw.get("id", f"#{index}"))
    pipelines = []
    raw_pipelines = raw.get("pipelines")
    if not isinstance(raw_pipelines, list) or not raw_pipelines:
        problems.add("`pipelines` must be a non-empty list", tenant_id)
        raw_pipelines = []
    for p_index, raw_pipeline in enumerate(raw_pipelines):
        pipeline = _pipeline(raw_pipeline, p_index, tenant_id, problems)
        if pipeline is not None:
            pipelines.append(pipeline)
    if not pipelines:
        return None
    fields = {k: v for k, v in raw.items() if k != "pipelines"}
    try:
        return TenantConfig(**fields, pipelines=pipelines)
    except (ValidationError, TypeError) as exc:
        for message in _messages(exc):
            problems.add(message, tenant_id)
        return None


def _messages(exc: Exception) -> Iterable[str]:
    if isinstance(exc, ValidationError):
        return _pydantic_problems(exc)
    return [str(exc)]


def _pipeline(raw: Any, index: int, tenant_id: str, problems: _Problems) -> PipelineConfig | None:
    if not isinstance(raw, dict):
        problems.add(f"pipelines[{index}] must be a mapping with id and stages", tenant_id)
        return None
    pipeline_id = str(raw.get("id", f"#{index}"))
    raw_stages = raw.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        problems.add("`stages` must be a non-empty list", tenant_id, pipeline_id)
        return None
    stages: list[StageConfig] = []
    seen: set[str] = set()
    actions = registry()
    for s_index, raw_stage in enumerate(raw_stages):
        if not isinstance(raw_stage, dict):
            problems.add(f"stages[{s_index}] must be a mapping", tenant_id, pipeline_id)
            continue
        key = raw_stage.get("key")
        label = str(key) if key is not None else f"#{s_index}"
        if key is None:
            problems.add(f"stages[{s_index}] has no `key`: give every stage a unique key",
                         tenant_id, pipeline_id)
            continue
        if label in seen:
            problems.add("duplicate stage key: every key must be unique in its pipeline",
                         tenant_id, pipeline_id, label)
            continue
        seen.add(label)
        action_name = raw_stage.get("action")
        action = actions.get(action_name) if isinstance(action_name, str) else None
        if action is None:
            problems.add(
                f"unknown action type {action_name!r}: use one of {', '.join(sorted(actions))}",
                tenant_id, pipeline_id, label,
            )
            continue
        try:
            stages.append(action.settings(**raw_stage))
        except (ValidationError, TypeError) as exc:
            for message in _messages(exc):
                problems.add(message, tenant_id, pipeline_id, label)
    if not stages:
        return None
    fields = {k: v for k, v in raw.items() if k != "stages"}
    try:
        return PipelineConfig(**fields, stages=stages)
    except (ValidationError, TypeError) as exc:
        for message in _messages(exc):
            problems.add(message, tenant_id, pipeline_id)
        return None


def _check_tenants(config: SwitchboardConfig, problems: _Problems) -> None:
    ids = [t.id for t in config.tenants]
    for tenant_id in {i for i in ids if ids.count(i) > 1}:
        problems.add("duplicate tenant id: every department needs its own id", tenant_id)
    try:
        primary = config.tenant(config.primary_tenant)
        if not primary.enabled:
            problems.add(f"`primary_tenant` {config.primary_tenant!r} is disabled: enable it")
    except KeyError:
        problems.add(
            f"`primary_tenant` {config.primary_tenant!r} is not a tenant: use one of "
            + ", ".join(ids)
        )
    actions = registry()
    for tenant in config.tenants:
        pids = [p.id for p in tenant.pipelines]
        for pid in {i for i in pids if pids.count(i) > 1}:
            problems.add("duplicate pipeline id", tenant.id, pid)
        if tenant.primary_pipeline not in pids:
            problems.add(
                f"`primary_pipeline` {tenant.primary_pipeline!r} is not one of its pipelines: "
                + ", ".join(pids),
                tenant.id,
            )
        for pipeline in tenant.pipelines:
            keys = {s.key for s in pipeline.stages}
            load = LoadCheck(config, tenant, pipeline)
            for stage in pipeline.stages:
                for label, target in stage.targets().items():
                    if target not in keys:
                        problems.add(
                            f"`{label}` points to {target!r}, which is not a stage of this "
                            f"pipeline: use one of {', '.join(sorted(keys))}",
                            tenant.id, pipeline.id, stage.key,
                        )
                for message in actions[stage.action].check(stage, load):
                    problems.add(message, tenant.id, pipeline.id, stage.key)


def _unreachable(config: SwitchboardConfig, file: str) -> list[str]:
    warnings = []
    for tenant in config.tenants:
        for pipeline in tenant.pipelines:
            reached = {pipeline.first.key}
            todo = [pipeline.first]
            by_key = {s.key: s for s in pipeline.stages}
            while todo:
                stage = todo.pop()
                for target in stage.targets().values():
                    if target in by_key and target not in reached:
                        reached.add(target)
                        todo.append(by_key[target])
            for stage in pipeline.stages:
                if stage.key not in reached:
                    warnings.append(
                        f"{file} > tenant {tenant.id!r} > pipeline {pipeline.id!r} > stage "
                        f"{stage.key!r}: unreachable: no stage leads to it"
                    )
    return warnings


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


def sample_values(config: SwitchboardConfig) -> dict[str, Any]:
    """Plausible values for every known key, to check that bound templates are valid cards."""
    return {key: f"sample {key}" for key in known_metadata(config)}


def _templates(
    config: SwitchboardConfig, path: Path, problems: _Problems
) -> dict[str, dict[str, Any]]:
    from cards.binding import bind

    known = known_metadata(config)
    samples = sample_values(config)
    resolved: dict[str, dict[str, Any]] = {}
    for tenant in config.tenants:
        for pipeline in tenant.pipelines:
            for stage in pipeline.stages:
                where = (tenant.id, pipeline.id, stage.key)
                for text_field in ("prompt",):
                    text = getattr(stage, text_field, None)
                    if isinstance(text, str):
                        for message in check_template(text, known.__contains__):
                            problems.add(f"`{text_field}`: {message}", *where)
                for setting, ref in stage.template_refs().items():
                    try:
                        template = _resolve(ref, path)
                    except TemplateError as exc:
                        problems.add(f"`{setting}`: {exc}", *where)
                        continue
                    binding = check_template(template, known.__contains__)
                    for message in binding:
                        problems.add(f"`{setting}`: {message}", *where)
                    if not binding:
                        card = bind(template, samples)
                        for message in validate_card(card) if card is not None else []:
                            problems.add(
                                f"`{setting}`: not a valid Adaptive Card 1.5 once bound: "
                                f"{message}",
                                *where,
                            )
                    resolved[template_key(*where, setting)] = template
    return resolved


def _resolve(ref: str | dict[str, Any], config_path: Path) -> dict[str, Any]:
    if isinstance(ref, dict):
        return ref
    if ref.startswith("builtin:"):
        return builtin_template(ref.removeprefix("builtin:"))
    file = (config_path.parent / ref).resolve()
    return load_template(file)
