"""Load and validate the tenants' configuration (YAML or JSON).

Every mistake an admin can make is found here, all at once, each message naming the
file, the tenant, the pipeline and the stage, and saying how to fix it. A guest never
meets a config error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipelines.actions import registry
from pipelines.actions.base import LoadCheck
from pipelines.config import (
    PipelineConfig,
    StageConfig,
    SwitchboardConfig,
    TenantConfig,
)
from pipelines.config_templates import (  # noqa: F401 - the metadata names, used from here too
    AGENT_KEYS,
    BUILTIN_KEYS,
    GUEST_KEYS,
    HOURS_KEYS,
    SESSION_KEYS,
    TENANT_KEYS,
    TemplateChecker,
    known_metadata,
)
from pipelines.knowledge import KnowledgeBase, parse_knowledge_file
from pipelines.problems import explain
from pipelines.search.semantic import ModelUnavailable

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 2 * 1024 * 1024
MAX_NESTING = 40
MAX_VALUES = 200_000

class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"configuration has {count}:\n" + "\n".join(f"  - {p}" for p in problems))


def _short(label: str, limit: int = 60) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[str] = []
        # parts that failed to parse: references to them are not reported a second time
        self.broken: set[tuple[str, ...]] = set()

    def add(self, message: str, tenant: str = "", pipeline: str = "", stage: str = "") -> None:
        where = [self.file]
        if tenant:
            where.append(f"tenant {_short(tenant)!r}")
        if pipeline:
            where.append(f"pipeline {_short(pipeline)!r}")
        if stage:
            where.append(f"stage {_short(stage)!r}")
        self.items.append(" > ".join(where) + ": " + message)

    def add_template(self, template_file: str, message: str, used_by: str) -> None:
        """A problem of a template file: once, whichever stages use it (listed)."""
        self.items.append(f"{self.file} > template {template_file}: {message} "
                          f"(used by {used_by})")

    def broken_tenants(self) -> frozenset[str]:
        return frozenset(b[1] for b in self.broken if b[0] == "tenant")


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
        raise ConfigError([
            f"{name}: the file is over {MAX_CONFIG_BYTES // 1024} KB: keep card templates "
            "in their own files and reference them with `template: file.json`"
        ])
    try:
        text = data.decode("utf-8")
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError([f"{name}: not UTF-8 text: save the file as UTF-8"]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [f"{name}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{name}: not valid YAML: {_yaml_problem(exc)}"]) from None
    except RecursionError:
        raise ConfigError([f"{name}: nested too deeply to be a configuration"]) from None
    too_big = _too_big(raw)
    if too_big:
        raise ConfigError([f"{name}: {too_big}"])
    return raw


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


def _too_big(value: Any) -> str | None:
    """Why the parsed file is too deep or too large, walking it in bounded time.

    YAML aliases make a small file expand into a huge tree ("billion laughs"), so the walk
    counts values visited and stops at a budget rather than trusting the file size.
    """
    seen = 0
    stack = [(value, 0)]
    while stack:
        node, level = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"expands to more than {MAX_VALUES:,} values (YAML aliases?): simplify it"
        if level > MAX_NESTING:
            return f"nested more than {MAX_NESTING} levels deep: flatten it"
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)
    return None


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
        for message in explain(exc):
            problems.add(message)
    if config is None or not tenants:
        raise ConfigError(problems.items)
    _check_tenants(config, problems)
    warnings = _unreachable(config, str(path))
    templates = TemplateChecker(config, path, problems).run()
    knowledge = _knowledge_bases(config, path, problems)
    if problems.items:
        raise ConfigError(problems.items)
    config = config.model_copy(update={
        "templates": templates,
        "knowledge_bases": knowledge,
        "knowledge_digests": {tenant: kb.digest() for tenant, kb in knowledge.items()},
    })
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
        problems.broken.add(("tenant", tenant_id))
        return None
    fields = {k: v for k, v in raw.items() if k != "pipelines"}
    try:
        return TenantConfig(**fields, pipelines=pipelines)
    except (ValidationError, TypeError) as exc:
        for message in explain(exc):
            problems.add(message, tenant_id)
        problems.broken.add(("tenant", tenant_id))
        return None


def _pipeline(raw: Any, index: int, tenant_id: str, problems: _Problems) -> PipelineConfig | None:
    if not isinstance(raw, dict):
        problems.add(f"pipelines[{index}] must be a mapping with id and stages", tenant_id)
        return None
    pipeline_id = str(raw.get("id", f"#{index}"))
    raw_stages = raw.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        problems.add("`stages` must be a non-empty list", tenant_id, pipeline_id)
        problems.broken.add(("pipeline", tenant_id, pipeline_id))
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
        known = ", ".join(sorted(actions))
        if action is None:
            problems.broken.add(("stage", tenant_id, pipeline_id, label))
            if action_name is None:
                problems.add(f"the stage has no `action`: use one of {known}",
                             tenant_id, pipeline_id, label)
            else:
                problems.add(f"unknown action type {_short(str(action_name))!r}: use one of "
                             f"{known}", tenant_id, pipeline_id, label)
            continue
        try:
            stages.append(action.settings(**raw_stage))
        except (ValidationError, TypeError) as exc:
            problems.broken.add(("stage", tenant_id, pipeline_id, label))
            for message in explain(exc):
                problems.add(message, tenant_id, pipeline_id, label)
    if not stages:
        problems.broken.add(("pipeline", tenant_id, pipeline_id))
        return None
    fields = {k: v for k, v in raw.items() if k != "stages"}
    try:
        return PipelineConfig(**fields, stages=stages)
    except (ValidationError, TypeError) as exc:
        for message in explain(exc):
            problems.add(message, tenant_id, pipeline_id)
        problems.broken.add(("pipeline", tenant_id, pipeline_id))
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
        if ("tenant", config.primary_tenant) not in problems.broken:
            problems.add(
                f"`primary_tenant` {config.primary_tenant!r} is not a tenant: use one of "
                + ", ".join(ids)
            )
    actions = registry()
    for tenant in config.tenants:
        agent_ids = [a.aad_object_id.casefold() for a in tenant.agents]
        for agent_id in sorted({a for a in agent_ids if agent_ids.count(a) > 1}):
            problems.add(f"agent {agent_id} is listed twice: keep one entry", tenant.id)
        pids = [p.id for p in tenant.pipelines]
        for pid in {i for i in pids if pids.count(i) > 1}:
            problems.add("duplicate pipeline id", tenant.id, pid)
        if tenant.primary_pipeline not in pids and (
            ("pipeline", tenant.id, tenant.primary_pipeline) not in problems.broken
        ):
            problems.add(
                f"`primary_pipeline` {tenant.primary_pipeline!r} is not one of its pipelines: "
                + ", ".join(pids),
                tenant.id,
            )
        for pipeline in tenant.pipelines:
            keys = {s.key for s in pipeline.stages}
            load = LoadCheck(config, tenant, pipeline, problems.broken_tenants())
            for stage in pipeline.stages:
                for label, target in stage.targets().items():
                    if target not in keys and (
                        ("stage", tenant.id, pipeline.id, target) not in problems.broken
                    ):
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


def _knowledge_bases(
    config: SwitchboardConfig, path: Path, problems: _Problems
) -> dict[str, KnowledgeBase]:
    """Each tenant's knowledge base, read, checked and indexed (once, here)."""
    found: dict[str, KnowledgeBase] = {}
    for tenant in config.tenants:
        articles = []
        out_of_scope: list[str] = []
        first_file: dict[str, str] = {}
        broken = False
        for ref in tenant.knowledge_base_files:
            raw, problem = _read_knowledge_file(path.parent / ref)
            if problem is not None:
                problems.add(f"`knowledge_base` {ref}: {problem}", tenant.id)
                broken = True
                continue
            parsed, file_problems = parse_knowledge_file(raw)
            for message in file_problems:
                problems.add(f"`knowledge_base` {ref}: {message}", tenant.id)
            broken = broken or bool(file_problems)
            out_of_scope.extend(parsed.out_of_scope)
            for article in parsed.articles:
                if article.id in first_file:
                    where = "twice in the file" if first_file[article.id] == ref else (
                        f"also in {first_file[article.id]}")
                    problems.add(
                        f"`knowledge_base` {ref}: duplicate article id {article.id!r} ({where}): "
                        "every article needs its own id",
                        tenant.id,
                    )
                    broken = True
                    continue
                first_file[article.id] = ref
                articles.append(article)
        if not articles and not broken and tenant.knowledge_base_files:
            problems.add("`knowledge_base`: its files hold no article (only `out_of_scope` "
                         "questions): add the articles the FAQ should show", tenant.id)
            broken = True
        answered = {q.casefold(): a.id for a in articles for q in a.questions}
        for question in out_of_scope:
            if question.casefold() in answered:
                problems.add(
                    f"`knowledge_base`: the question {question!r} is both out of scope and an "
                    f"example question of article {answered[question.casefold()]!r}: keep it "
                    "in one of them", tenant.id)
                broken = True
        if articles and not broken:
            try:
                found[tenant.id] = KnowledgeBase(articles=articles,
                                                 out_of_scope=out_of_scope).build()
            except ModelUnavailable as exc:  # the same for every tenant: said once
                problems.add(f"`knowledge_base`: {exc}", tenant.id)
                return found
    return found


def _read_knowledge_file(file: Path) -> tuple[Any, str | None]:
    """(parsed YAML/JSON, None) or (None, what is wrong), the file named by the caller."""
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        return None, "file not found: check the path (relative to the config file)"
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"
    if size > MAX_CONFIG_BYTES:
        return None, f"the file is over {MAX_CONFIG_BYTES // 1024} KB: split it into several"
    try:
        return _read(file), None
    except ConfigError as exc:
        return None, exc.problems[0].removeprefix(f"{file}: ")
