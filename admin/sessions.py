"""`sessions list` and `sessions show`: the chats in the configured store, per tenant.

Reads the store the bot is configured with (the same environment variables as the bot:
SWITCHBOARD_STORE, SWITCHBOARD_DB_PATH, COSMOS_*; SWITCHBOARD_CONFIG for the tenants' names).
Never writes to it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from admin.common import USAGE, err, fail, open_store, out, run, settings

app = typer.Typer(
    rich_markup_mode=None,help="Look at the help desk's chats (sessions) in the store.",
                  no_args_is_help=True)

TRANSFER_KEYS = tuple(
    f"Session.Transferred{side}.{what}"
    for side in ("From", "To")
    for what in ("SessionId", "TenantId", "TenantName")
)

ConfigOption = Annotated[str | None, typer.Option(
    "--config", help="The tenants' configuration [SWITCHBOARD_CONFIG].")]
MIN_PREFIX = 4  # a shorter start of an id matches too much to be what was meant

DbOption = Annotated[str | None, typer.Option(
    "--db", help="The embedded store's file [SWITCHBOARD_DB_PATH].")]


def _tenant_names(config_path: str | None) -> dict[str, str]:
    """Tenant id -> name from the config, in config order ({} if it cannot be read)."""
    from pipelines.loader import ConfigError, load_config

    path = config_path or settings().config_path
    try:
        config, _ = load_config(path)
    except ConfigError as exc:
        err(f"warning: cannot read the configuration ({exc.problems[0]}); "
            f"showing what the store has")
        return {}
    return {t.id: t.name for t in config.tenants}


async def _check_tenant(docs: Any, tenant: str | None, names: dict[str, str]) -> None:
    """A --tenant that neither the configuration nor the store knows is a usage error.

    A tenant removed from the configuration whose sessions are still stored is fine.
    """
    if tenant is None or not names or tenant in names:
        return
    from storage.sessions import TENANT_DATA

    if await docs.query(TENANT_DATA, (tenant,), {"type": "session"}, limit=1):
        return
    raise fail(f"unknown tenant {tenant!r}: the configuration has {', '.join(names)}, and the "
               f"store has no sessions of {tenant!r}", USAGE)


# how many of the latest sessions a short id is looked for among (the store has no prefix
# query; a whole id is found among any number)
SHORT_ID_WINDOW = 5_000


async def _sessions_starting_with(docs: Any, tenant: str | None, prefix: str) -> list[Any]:
    """Sessions whose id starts with `prefix` (the short ids `show` prints, like `881d4693..`),
    among the latest SHORT_ID_WINDOW of the tenant (of every tenant without --tenant)."""
    from storage.models import Session
    from storage.sessions import TENANT_DATA

    found = await docs.query(TENANT_DATA, None if tenant is None else (tenant,),
                             {"type": "session"}, order_by="updated_at", descending=True,
                             limit=SHORT_ID_WINDOW)
    return [Session.model_validate(d.body) for d in found if d.id.startswith(prefix)]


def _states(value: str | None) -> list[Any]:
    from storage.models import SessionState

    if value is None:
        return [None]
    if value == "live":
        return [SessionState.OPEN, SessionState.TRANSFERRING]
    try:
        return [SessionState(value)]
    except ValueError:
        allowed = ", ".join(["live", *(s.value for s in SessionState)])
        raise fail(f"unknown state {value!r}: use one of {allowed}", USAGE) from None


def _short_time(iso: str | None) -> str:
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]


def _where(session) -> str:
    stage = session.stage_key or "-"
    waiting = " (waiting for the guest)" if session.awaiting_input and session.state.live else ""
    return f"{session.pipeline_id}/{stage}{waiting}"


@app.command("list")
def list_sessions(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (its id).")] = None,
    state: Annotated[str | None, typer.Option(
        help="Only this state: live (open or transferring), open, transferred, resolved, "
             "ended, restarted, hop_limit...")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000,
                                       help="At most this many per tenant, newest first.")] = 20,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Live and recent sessions, per tenant, newest first: id, state, where it is, the guest,
    the agent, and the transfers it went through."""
    from storage.sessions import SessionStore

    states = _states(state)
    names = _tenant_names(config)

    async def go() -> int:
        async with open_store(db) as docs:
            await _check_tenant(docs, tenant, names)
            store = SessionStore(docs)
            tenants: list[str | None] = [tenant] if tenant else (list(names) or [None])
            shown = 0
            for tenant_id in tenants:
                found = []
                for wanted in states:
                    found += await store.list(tenant_id, wanted, limit)
                found.sort(key=lambda s: s.updated_at, reverse=True)
                found = found[:limit]
                groups: dict[str, list] = {}
                for s in found:
                    groups.setdefault(s.tenant_id, []).append(s)
                if tenant_id is not None and not groups:
                    groups[tenant_id] = []
                for tid, sessions in groups.items():
                    label = f"{names[tid]} ({tid})" if tid in names else tid
                    out(f"{label}: {len(sessions)} session{'s' if len(sessions) != 1 else ''}"
                        + (f" in state {state}" if state else ""))
                    for s in sessions:
                        shown += 1
                        guest = s.metadata.get("Guest.Name") or "-"
                        agent = f"  agent {s.agent.agent_name}" if s.agent else ""
                        hops = f"  hops {s.hops}" if s.hops else ""
                        moved = f"  -> {s.transfer.to_tenant_id}" if s.transfer else ""
                        out(f"  {s.id}  {s.state.value:<12} {s.phase.value:<9} "
                            f"{_where(s):<40} guest {guest}{agent}{hops}{moved}  "
                            f"updated {_short_time(s.updated_at)}")
            return shown

    run(go())


def _value_text(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    data = value.get("switchboard") if isinstance(value.get("switchboard"), dict) else {}
    if "answer" in value:
        return f"answered: {value['answer']}"
    if data.get("choice"):
        return f"pressed: {data['choice']}"
    if data.get("verb"):
        return f"pressed: {data['verb']}"
    return "sent: " + json.dumps(value, ensure_ascii=False)[:200]


def _entry_lines(entry) -> list[str]:
    from cards.text import card_text

    who = "guest" if entry.sender == "guest" else entry.sender
    stamp = _short_time(entry.at)[11:]
    parts = []
    if entry.text:
        parts.append(entry.text)
    if entry.card is not None:
        parts.append(card_text(entry.card))
    if entry.value:
        parts.append(_value_text(entry.value))
    body = "\n".join(p for p in parts if p) or "(nothing)"
    if entry.private:  # between agents (a consult): never sent to the guest
        body = "[private] " + body
    lines = body.splitlines() or [""]
    head = f"  {entry.seq:>4} {stamp} {who:>6}> "
    return [head + lines[0]] + [" " * len(head) + line for line in lines[1:]]


@app.command()
def show(
    session_id: Annotated[str, typer.Argument(
        help="The session's id (from `sessions list`), or its first characters (at least 4).")],
    tenant: Annotated[str | None, typer.Option(
        help="The session's tenant (faster; default: look in every tenant).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """One session: its state, metadata (the six transfer keys included), the chain of
    transfers it belongs to (hop log), and the transcript of every session in that chain."""
    from storage.documents import DocumentStore
    from storage.models import Session
    from storage.sessions import SessionStore

    names = _tenant_names(config)

    wanted = session_id.strip().rstrip(".")  # `show` prints short ids as "881d4693.."

    async def exact(docs: DocumentStore, store: SessionStore) -> Session | None:
        for tenant_id in [tenant] if tenant else list(names):
            session = await store.get(tenant_id, wanted)
            if session is not None:
                return session
        return None

    async def find(docs: DocumentStore, store: SessionStore) -> Session | None:
        session = await exact(docs, store) if wanted else None
        if session is not None or len(wanted) < MIN_PREFIX:
            return session
        matches = await _sessions_starting_with(docs, tenant, wanted)
        if len(matches) > 1:
            shown = ", ".join(f"{s.id} ({s.tenant_id})" for s in matches[:5])
            more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
            raise fail(f"{session_id!r} is the start of {len(matches)} session ids: {shown}"
                       f"{more}; give more of the id", USAGE)
        return matches[0] if matches else None

    async def go() -> None:
        async with open_store(db) as docs:
            await _check_tenant(docs, tenant, names)
            store = SessionStore(docs)
            session = await find(docs, store)
            if session is None:
                where = f" in tenant {tenant!r}" if tenant else ""
                short = f" (give at least {MIN_PREFIX} characters of an id)" \
                    if len(wanted) < MIN_PREFIX else ""
                raise fail(f"no session {session_id!r}{where}{short}: `sessions list` shows "
                           f"the ids")
            chain = await store.chain(session)
            later = await _later(store, session)
            transcripts = {s.id: await store.transcript(s.tenant_id, s.id)
                           for s in chain + later}
        if as_json:
            out(json.dumps({
                "session": session.model_dump(mode="json"),
                "chain": [s.id for s in chain + later],
                "transcripts": {k: [e.model_dump(mode="json") for e in v]
                                for k, v in transcripts.items()},
            }, indent=2, ensure_ascii=False))
            return
        _print_session(session, names)
        _print_chain(session, chain + later, names)
        for s in chain + later:
            mark = "  <- this session" if s.id == session.id else ""
            out(f"\nTranscript of {s.id} ({names.get(s.tenant_id, s.tenant_id)}, "
                f"{s.state.value}){mark}:")
            lines = transcripts[s.id]
            if not lines:
                out("  (empty)")
            for entry in lines:
                for line in _entry_lines(entry):
                    out(line)

    run(go())


async def _later(store, session) -> list:
    """The sessions this one was transferred to, in order (the chain ends at the live one)."""
    later = []
    current = session
    for _ in range(50):
        nxt = current.transfer
        if nxt is None or current.state.value not in ("transferred", "transferring"):
            break
        following = await store.get(nxt.to_tenant_id, nxt.to_session_id)
        if following is None or any(s.id == following.id for s in later):
            break
        later.append(following)
        current = following
    return later


def _print_session(session, names: dict[str, str]) -> None:
    tenant = names.get(session.tenant_id)
    out(f"Session {session.id}")
    where = f"{tenant} ({session.tenant_id})" if tenant else session.tenant_id
    out(f"  tenant:       {where}")
    out(f"  state:        {session.state.value}    phase: {session.phase.value}")
    out(f"  at:           {_where(session)}")
    out(f"  conversation: {session.conversation_id}")
    out(f"  created:      {_short_time(session.created_at)}    updated: "
        f"{_short_time(session.updated_at)}    closed: {_short_time(session.closed_at)}")
    out(f"  hops:         {session.hops}")
    if session.agent is not None:
        out(f"  agent:        {session.agent.agent_name} ({session.agent.agent_id}) since "
            f"{_short_time(session.agent.since)}")
    out("Metadata:")
    width = max([len(k) for k in [*session.metadata, *TRANSFER_KEYS]] or [0])
    for key in sorted(session.metadata):
        if key not in TRANSFER_KEYS:
            out(f"  {key:<{width}} = {session.metadata[key]}")
    out("Transfer keys:")
    for key in TRANSFER_KEYS:
        value = session.metadata.get(key)
        out(f"  {key:<{width}} = {value if value not in (None, '') else '-'}")


def _print_chain(session, chain: list, names: dict[str, str]) -> None:
    hops = session.hop_log
    for later in chain:
        if len(later.hop_log) > len(hops):
            hops = later.hop_log
    out(f"Chain of transfers ({len(hops)} hop{'s' if len(hops) != 1 else ''}):")
    if not hops:
        out("  (never transferred)")
    for index, hop in enumerate(hops, 1):
        by = f"by {hop.by_name or hop.by}" if hop.by != "pipeline" else "by the pipeline"
        out(f"  {index}. {hop.from_tenant_name} ({hop.from_tenant_id}) {hop.from_session_id}"
            f" -> {hop.to_tenant_name} ({hop.to_tenant_id}) {hop.to_session_id}  "
            f"at {_short_time(hop.at)}, {by}")
    if len(chain) > 1:
        out("Sessions of this chat: " + " -> ".join(
            f"{s.id[:8]}.. {names.get(s.tenant_id, s.tenant_id)} [{s.state.value}]"
            for s in chain))

