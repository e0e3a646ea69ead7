"""Skills: what a chat requires, and how well an agent covers it.

An agent's skills are in the config, each with a level 1-5 (`AgentConfig.skills`). A chat's
requirement is resolved once, when its search begins (`required`): the stage's `skills`, and
those its `skills_from` maps metadata values to (a language question's answer "French" ->
`language:fr`, a menu's stored choice). It is kept on the search, so every offer round,
timer and restart uses the same one, and shown to the agents offered the chat.

`exact`: an agent qualifies with every required skill at or above its level. `closest`
(Dynamics 365's "closest match"): each required skill counts the level held over the level
asked (at most 1), averaged; the agents with the best coverage among those who can take the
chat now are offered it (hunt goes down the ranking), the least busy first.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelines.actions.connect_to_agent import ConnectToAgentStage
from pipelines.config import SwitchboardConfig
from storage.models import MetadataValue


def required(stage: ConnectToAgentStage,
             metadata: Mapping[str, MetadataValue]) -> dict[str, int]:
    """The skills this chat requires at this stage: name -> lowest level."""
    out = dict(stage.skills)
    for name, mapping in stage.skills_from.items():
        value = metadata.get(name)
        if value is None or isinstance(value, bool):
            continue
        for skill, level in mapping.get(str(value).strip().casefold(), {}).items():
            out[skill] = max(out.get(skill, 0), level)
    return out


def coverage(held: Mapping[str, int], wanted: Mapping[str, int]) -> float:
    """1.0 when every wanted skill is held at its level; less, in proportion, otherwise."""
    if not wanted:
        return 1.0
    return sum(min(held.get(skill, 0), level) / level
               for skill, level in wanted.items()) / len(wanted)


def qualifies(held: Mapping[str, int], wanted: Mapping[str, int], match: str) -> bool:
    return match == "closest" or all(held.get(s, 0) >= level for s, level in wanted.items())


def describe(skills: Mapping[str, int]) -> str:
    """`language:fr, vpn (3)`: a level above 1 in brackets."""
    return ", ".join(name if level <= 1 else f"{name} ({level})"
                     for name, level in sorted(skills.items()))


def known_skills(config: SwitchboardConfig) -> set[str]:
    """Every skill some agent of the config has."""
    return {skill for tenant in config.tenants for agent in tenant.agents
            for skill in agent.skills}
