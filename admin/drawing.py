"""Draw the tenants' pipelines as a graph: one cluster per tenant, one per pipeline inside it.

Stages are nodes (their key and action, and their timers), the ways out of a stage are edges
labelled as the stage's `targets()` names them (menu choices by their titles), and every
tenant transfer is a bold edge into the receiving tenant's cluster, to the first stage of its
primary pipeline (that is where a transferred chat goes). Rendered by Graphviz's `dot`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import graphviz

from pipelines.actions.condition import expression_text
from pipelines.config import StageConfig, SwitchboardConfig, TenantConfig

FONT = "Helvetica"
TRANSFER_COLOUR = "#E65100"
TENANT_FILL = "#EEF1FB"
PRIMARY_FILL = "#E3F2E6"
DISABLED_FILL = "#EEEEEE"

# node shape per action; others get a rounded box
SHAPES = {
    "message": {"shape": "note"},
    "question": {"shape": "box", "style": "rounded,filled", "fillcolor": "white"},
    "menu": {"shape": "hexagon", "style": "filled", "fillcolor": "#FFF8E1"},
    "tenant_transfer": {"shape": "cds", "style": "filled", "fillcolor": "#FFE0B2"},
    "end": {"shape": "box", "style": "rounded,bold,filled", "fillcolor": "#E0E0E0",
            "peripheries": "2"},
    "connect_to_agent": {"shape": "box", "style": "rounded,filled", "fillcolor": "#E1F5FE"},
}
_TIMER_FIELD = re.compile(r"(timeout|wait|every|delay|after)", re.IGNORECASE)
_BRANCH = re.compile(r"branches\.(\d+)\.next")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def node_id(tenant_id: str, pipeline_id: str, stage_key: str) -> str:
    return f"{tenant_id}/{pipeline_id}/{stage_key}"


def tenant_cluster(tenant_id: str) -> str:
    return f"cluster_tenant_{tenant_id}"


def pipeline_cluster(tenant_id: str, pipeline_id: str) -> str:
    return f"cluster_pipeline_{tenant_id}/{pipeline_id}"


def _seconds(value: float) -> str:
    value = float(value)
    if value >= 3600 and value % 3600 == 0:
        return f"{int(value // 3600)} h"
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)} min"
    return f"{value:g} s"


def timers(stage: StageConfig) -> dict[str, float]:
    """The stage's numeric timing settings (accept_timeout, max_wait...), by name."""
    out = {}
    for name in type(stage).model_fields:
        value = getattr(stage, name, None)
        if (isinstance(value, (int, float)) and not isinstance(value, bool)
                and _TIMER_FIELD.search(name)):
            out[name] = value
    return out


def _node_label(stage: StageConfig) -> str:
    lines = [stage.key, f"({stage.action})"]
    mode = getattr(stage, "mode", None)
    if isinstance(mode, str):
        lines[-1] = f"({stage.action}, {mode})"
    store_as = getattr(stage, "store_as", None)
    if isinstance(store_as, str):
        lines.append(f"-> {store_as}")
    for name, value in timers(stage).items():
        lines.append(f"{name}: {_seconds(value)}")
    return "\n".join(lines)


def edge_label(stage: StageConfig, label: str) -> str:
    """How an edge out of `stage` is labelled: menu choices by title, a condition's branches by
    their `when`, timeouts with their time; a plain `next` is unlabelled unless the stage has
    other ways out."""
    if label == "next":
        return "next" if len(stage.targets()) > 1 else ""
    if (branch := _BRANCH.fullmatch(label)) and getattr(stage, "branches", None):
        branches = stage.branches
        index = int(branch.group(1))
        when = getattr(branches[index], "when", None) if index < len(branches) else None
        if isinstance(when, str):
            return _shorten(expression_text(when), 60)
    if label.startswith("choice "):
        wanted = label.removeprefix("choice ")
        for choice in getattr(stage, "choices", None) or []:
            if getattr(choice, "id", None) == wanted and getattr(choice, "title", None):
                return str(choice.title)
    if "timeout" in label:
        stage_timers = timers(stage)
        wait = next((v for k, v in stage_timers.items() if "max_wait" in k), None)
        if wait is None:
            wait = next(iter(stage_timers.values()), None)
        if wait is not None:
            return f"{label}\n(after {_seconds(wait)})"
    return label


def _tenant_label(config: SwitchboardConfig, tenant: TenantConfig) -> str:
    notes = []
    if tenant.id == config.primary_tenant:
        notes.append("primary tenant")
    if not tenant.enabled:
        notes.append("disabled")
    agents = len(tenant.agents)
    if agents:
        notes.append(f"{agents} agent{'s' if agents != 1 else ''}")
    extra = f"\n{', '.join(notes)}" if notes else ""
    return f"{tenant.name} ({tenant.id}){extra}"


def config_graph(config: SwitchboardConfig, title: str | None = None) -> graphviz.Digraph:
    graph = graphviz.Digraph("switchboard")
    graph.attr(compound="true", rankdir="TB", newrank="true", fontname=FONT, fontsize="12",
               nodesep="0.35", ranksep="0.45",
               label=title or Path(config.source).name or "switchboard", labelloc="t")
    graph.attr("node", fontname=FONT, fontsize="10")
    graph.attr("edge", fontname=FONT, fontsize="9")
    graph.node("start", "new chat", shape="circle", style="filled", fillcolor="black",
               fontcolor="white", fontsize="9", width="0.8", fixedsize="true")
    primary = config.primary
    graph.edge("start", node_id(primary.id, primary.primary_pipeline, primary.primary.first.key),
               lhead=tenant_cluster(primary.id))
    transfers: list[tuple[str, TenantConfig, str]] = []
    for tenant in config.tenants:
        fill = (DISABLED_FILL if not tenant.enabled
                else PRIMARY_FILL if tenant.id == config.primary_tenant else TENANT_FILL)
        with graph.subgraph(name=tenant_cluster(tenant.id)) as cluster:
            cluster.attr(label=_tenant_label(config, tenant), style="rounded,filled",
                         fillcolor=fill, color="#5C6BC0", fontsize="13", penwidth="1.5")
            for pipeline in tenant.pipelines:
                primary_mark = " (primary)" if pipeline.id == tenant.primary_pipeline else ""
                with cluster.subgraph(name=pipeline_cluster(tenant.id, pipeline.id)) as sub:
                    sub.attr(label=f"pipeline {pipeline.id}{primary_mark}", style="dashed,rounded",
                             color="#9FA8DA", fontsize="10", fillcolor="white")
                    keys = {s.key for s in pipeline.stages}
                    for stage in pipeline.stages:
                        here = node_id(tenant.id, pipeline.id, stage.key)
                        sub.node(here, _node_label(stage), **SHAPES.get(
                            stage.action, {"shape": "box", "style": "rounded"}))
                        for label, target in stage.targets().items():
                            if target not in keys:
                                missing = node_id(tenant.id, pipeline.id, target)
                                sub.node(missing, f"{target}\n(missing)", color="red",
                                         fontcolor="red")
                            sub.edge(here, node_id(tenant.id, pipeline.id, target),
                                     label=edge_label(stage, label))
                        if stage.action == "tenant_transfer":
                            transfers.append((here, tenant, str(getattr(stage, "tenant", ""))))
    by_id = {t.id: t for t in config.tenants}
    for here, source, target_id in transfers:
        target = by_id.get(target_id)
        if target is None:
            graph.node(f"unknown/{target_id}", f"{target_id}\n(unknown tenant)", color="red")
            graph.edge(here, f"unknown/{target_id}", color="red", style="bold")
            continue
        first = node_id(target.id, target.primary_pipeline, target.primary.first.key)
        graph.edge(here, first, label=f"transfer\n{source.name} -> {target.name}",
                   lhead=tenant_cluster(target.id), color=TRANSFER_COLOUR,
                   fontcolor=TRANSFER_COLOUR, style="bold", penwidth="2")
    return graph


def render(graph: graphviz.Digraph, fmt: str) -> bytes:
    """The picture as `fmt` bytes (svg, png, pdf), or the DOT source for `dot`/`gv`."""
    if fmt in ("dot", "gv"):
        return graph.source.encode("utf-8")
    return graph.pipe(format=fmt)


def svg_structure(svg: str) -> dict[str, Any]:
    """What an SVG drawing shows, independent of layout: the titles of its clusters, nodes and
    edges, and every text drawn. Two drawings of the same config compare equal."""
    kinds: dict[str, list[str]] = {"cluster": [], "node": [], "edge": []}
    for kind, title in re.findall(
        r'<g id="[^"]*" class="(cluster|node|edge)">\s*<title>(.*?)</title>', svg, re.DOTALL
    ):
        kinds[kind].append(_unescape(title))
    texts = [_unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, re.DOTALL)]
    return {**{k: sorted(v) for k, v in kinds.items()}, "texts": sorted(texts)}


def _unescape(text: str) -> str:
    import html

    return html.unescape(text).strip()
