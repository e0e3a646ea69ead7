"""`agents list`: which agents the bot can reach, per tenant, and their skills there.

The bot can send an agent an offer only once it has their conversation reference: it is kept
in the store the first time the agent writes to the bot (or installs the app). An agent in
the config without one is UNREACHABLE: they get no offers until they open a chat with the bot.
"""

from __future__ import annotations

from typing import Annotated

import typer

from admin.common import PROBLEMS, load_config_or_exit, open_store, out, run, settings

app = typer.Typer(
    rich_markup_mode=None,help="The agents of each tenant and whether the bot can reach them.",
                  no_args_is_help=True)


@app.command("list")
def list_agents(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (its id).")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", help="The tenants' configuration [SWITCHBOARD_CONFIG].")] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="The embedded store's file [SWITCHBOARD_DB_PATH].")] = None,
) -> None:
    """Every agent of every tenant: reachable (the bot has their conversation reference),
    presence, open chats (and consults) against their capacity, and their skills there.
    Exit 1 when any configured agent is UNREACHABLE."""
    from pipelines.routing.skills import describe
    from storage.agents import AgentStore

    cfg = load_config_or_exit(config or settings().config_path)
    tenants = [t for t in cfg.tenants if tenant in (None, t.id)]
    if tenant is not None and not tenants:
        known = ", ".join(t.id for t in cfg.tenants)
        raise typer.Exit(_unknown(tenant, known))

    async def go() -> int:
        unreachable = 0
        async with open_store(db) as docs:
            store = AgentStore(docs)
            for t in tenants:
                records = await store.many(a.aad_object_id for a in t.agents)
                state = "" if t.enabled else " [tenant disabled]"
                out(f"{t.name} ({t.id}){state}: {len(t.agents)} agent"
                    f"{'s' if len(t.agents) != 1 else ''}")
                if not t.agents:
                    out("  (no agents configured)")
                for agent in t.agents:
                    record = records.pop(agent.aad_object_id.casefold(), None)
                    skills = f"  skills: {describe(agent.skills)}" if agent.skills else ""
                    if record is not None and record.reachable:
                        chats = len(record.chats)
                        consults = sum(1 for c in record.chats if c.consult)
                        held = f" ({consults} consulting)" if consults else ""
                        out(f"  reachable    {agent.name:<24} {agent.aad_object_id}  "
                            f"{record.presence.value:<8} {chats}/{t.capacity_of(agent)} chats"
                            f"{held}{skills}")
                    else:
                        unreachable += 1
                        out(f"  UNREACHABLE  {agent.name:<24} {agent.aad_object_id}  "
                            f"has never written to the bot: ask them to open a chat with it "
                            f"in Teams{skills}")

        return unreachable

    unreachable = run(go())
    if unreachable:
        out(f"{unreachable} agent{'s' if unreachable != 1 else ''} cannot be reached")
        raise typer.Exit(PROBLEMS)


def _unknown(tenant: str, known: str) -> int:
    from admin.common import USAGE, err

    err(f"unknown tenant {tenant!r}: the configuration has {known}")
    return USAGE
