"""What a guest turn and a transfer cost in store round trips and Cosmos request units.

    .venv/bin/python bench/store_costs.py

Runs the bot's engine as `app.create_app` wires it (deliverer, timers, routing), with the
example configuration, on both backends (the embedded file and the local Cosmos DB server,
started here), its messages delivered to the bench's lean connector (bench/lean_connector.py,
its own process), and prints, for each:

- a guest turn: the instance that served the last message (location cached), and another
  instance seeing the conversation for the first time; the delivery of the turn's messages
  (each message but the last marked sent, the last with the session's settling write)
  counts, since the guest's reply waits for it;
- a transfer: the rehome itself, and the whole guest turn that carries it;
- the transfer with a 10-message and a 1000-message transcript, side by side, against a
  baseline that copies the transcript into the target partition (what a rehome that moves
  "the conversation" naively costs).

Targets (issues 3 and 11): a guest turn <= 2 round trips (read, then one write of the state
and the messages due) + 1 per message delivered (its mark), <= 6 per transfer, and a
1000-message transfer <= 1.1x a 10-message one.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from botbuilder.core import TurnContext  # noqa: E402
from botbuilder.schema import Activity  # noqa: E402
from proc import Children, free_port, wait_port  # noqa: E402

from app import ENGINE, SESSIONS, Settings, create_app  # noqa: E402
from pipelines.actions.base import GuestInput  # noqa: E402
from storage.documents import DocumentStore, WriteOp  # noqa: E402
from storage.embedded import EmbeddedStore  # noqa: E402
from storage.models import Direction, Session, TranscriptEntry  # noqa: E402
from storage.rehome import finish_rehome, mark_intent  # noqa: E402
from storage.sessions import TENANT_DATA, SessionStore, new_session_id  # noqa: E402

CONFIG = ROOT / "examples" / "helpdesk.yaml"


@dataclass
class Cost:
    round_trips: int
    ru: float
    ops: str = ""
    sent: int = 0  # messages the turn delivered

    def __str__(self) -> str:
        return f"{self.round_trips:>3} RT {self.ru:>8.2f} RU"


def measure(docs: DocumentStore):
    class _Measure:
        def __enter__(self):
            docs.stats.reset()
            return self

        def __exit__(self, *exc):
            ops = ", ".join(f"{k} {v}" for k, v in sorted(docs.stats.by_op.items()))
            self.cost = Cost(docs.stats.round_trips, docs.stats.request_charge, ops)

    return _Measure()


def reference(service_url: str, conversation: str) -> dict:
    """The guest's conversation reference, as the bot keeps it (botbuilder serializes it)."""
    aad = str(uuid.uuid4())
    activity = Activity().deserialize({
        "type": "message", "id": "bench-1", "channelId": "msteams", "serviceUrl": service_url,
        "from": {"id": f"29:{aad}", "name": "Bench", "aadObjectId": aad},
        "recipient": {"id": "28:switchboard-bot", "name": "Switchboard"},
        "conversation": {"id": conversation, "conversationType": "personal"},
    })
    return TurnContext.get_conversation_reference(activity).serialize()


def bot(docs: DocumentStore):
    """The app's objects on `docs` (not started: no timer loop, no sweep)."""
    settings = Settings(config_path=str(CONFIG), sends_per_app=1e6, sends_per_conversation=1e6,
                        timer_interval=0)
    return create_app(settings, docs=docs)


async def guest_turns(docs: DocumentStore, service_url: str, apps: list) -> dict[str, Cost]:
    one, other = bot(docs), bot(docs)
    apps += [one, other]
    engine, sessions = one[ENGINE], one[SESSIONS]
    conversation = f"a:1{uuid.uuid4().hex}"
    costs = {}
    n = iter(range(1, 100))

    def said(text: str) -> GuestInput:
        return GuestInput(text=text, activity_id=f"bench-{next(n)}")

    await engine.start(conversation, {"Guest.Name": "Bench"}, reference(service_url,
                                                                        conversation),
                       first=said("hi"))
    for text in ("My laptop is broken", "still need help"):
        await engine.handle(await sessions.live(conversation), said(text))

    with measure(docs) as m:
        session = await sessions.live(conversation)
        turn = await engine.handle(session, said("IT"))
    costs["turn that transfers (whole turn)"] = m.cost
    m.cost.sent = turn.sent

    with measure(docs) as m:
        session = await sessions.live(conversation)
        turn = await engine.handle(session, said("Laptop"))
    costs["guest turn, same instance"] = m.cost
    m.cost.sent = turn.sent

    with measure(docs) as m:
        session = await other[SESSIONS].live(conversation)
        turn = await other[ENGINE].handle(session, said("Normal"))
    costs["guest turn, another instance (first time)"] = m.cost
    m.cost.sent = turn.sent
    return costs


async def _session_with_transcript(store: SessionStore, lines: int) -> Session:
    sid = new_session_id()
    session = Session(
        id=sid, tenant_id="service-desk", conversation_id=f"bench-{sid}", pipeline_id="triage",
        stage_key="department", metadata={"Guest.Name": "Bench", "Answers.Need": "x" * 200},
    )
    session = await store.begin(session, {})
    for start in range(0, lines, 50):
        entries = [
            TranscriptEntry(session_id=sid, tenant_id="service-desk", seq=i,
                            direction=Direction.IN, sender="guest", text=f"message {i} " * 8)
            for i in range(start, min(lines, start + 50))
        ]
        session.transcript_count = start + len(entries)
        session = await store.save(session, entries)
    return session


async def _rehome(store: SessionStore, session: Session) -> Session:
    source = await mark_intent(
        store, session, source_tenant_name="Service Desk", to_tenant_id="hr",
        to_tenant_name="HR", to_pipeline_id="hr-intake", to_stage_key="employee_number",
    )
    return await finish_rehome(store, source)


async def _copying_rehome(store: SessionStore, session: Session) -> None:
    """The baseline: move the conversation by copying its transcript under the target."""
    target = await _rehome(store, session)
    lines = await store.transcript(session.tenant_id, session.id)
    for start in range(0, len(lines), 100):
        ops = [
            WriteOp("upsert", f"{target.id}:copy:{e.seq:08d}", e.body())
            for e in lines[start:start + 100]
        ]
        await store.docs.batch(TENANT_DATA, (target.tenant_id, target.id), ops)


async def transfers(docs: DocumentStore) -> dict[str, tuple[Cost, Cost]]:
    store = SessionStore(docs)
    out: dict[str, tuple[Cost, Cost]] = {}
    for lines in (10, 1000):
        ours = await _session_with_transcript(store, lines)
        with measure(docs) as m:
            await _rehome(store, ours)
        base = await _session_with_transcript(store, lines)
        with measure(docs) as b:
            await _copying_rehome(store, base)
        out[f"transfer, {lines:>4}-message transcript"] = (m.cost, b.cost)
    return out


async def run_backend(name: str, docs: DocumentStore, service_url: str) -> list[str]:
    await docs.open()
    apps: list = []
    try:
        turns = await guest_turns(docs, service_url, apps)
        moves = await transfers(docs)
    finally:
        for app in apps:  # the outbound pools, the store
            for callback in app.on_cleanup:
                await callback(app)
        await docs.close()
    rows = [f"\n{name}", f"  {'':44} {'Switchboard':>19}   {'baseline (copy)':>19}"]
    for label, cost in turns.items():
        rows.append(f"  {label:44} {cost!s:>19}   ({cost.ops}; messages delivered: {cost.sent})")
    for label, (ours, base) in moves.items():
        rows.append(f"  {label:44} {ours!s:>19}   {base!s:>19}")
    (o10, b10), (o1000, b1000) = moves.values()
    ratio = (o1000.ru or o1000.round_trips) / (o10.ru or o10.round_trips)
    base_ratio = (b1000.ru or b1000.round_trips) / (b10.ru or b10.round_trips)
    rows.append(f"  {'1000 vs 10 messages':44} {ratio:>18.2f}x   {base_ratio:>18.2f}x")
    checks = [
        ("guest turn <= 2 round trips + 1 per message delivered",
         turns["guest turn, same instance"].round_trips
         <= 2 + turns["guest turn, same instance"].sent),
        ("transfer <= 6 round trips", o10.round_trips <= 6 and o1000.round_trips <= 6),
        ("1000-message transfer <= 1.1x a 10-message one", ratio <= 1.1),
    ]
    for label, ok in checks:
        rows.append(f"  target: {label:56} {'met' if ok else 'MISSED'}")
    return rows


async def main() -> None:
    from storage.cosmos import CosmosStore
    from tests.local_cosmos import local_cosmos_server

    children = Children()
    with tempfile.TemporaryDirectory() as tmp:
        port, control = free_port(), free_port()
        connector = children.start(
            "connector", [sys.executable, str(ROOT / "bench" / "lean_connector.py"), "--port",
                          str(port), "--control-port", str(control)],
            cwd=ROOT, log_dir=Path(tmp))
        try:
            wait_port(port, connector, 20)
            url = f"http://127.0.0.1:{port}"
            rows = await run_backend("embedded (SQLite file)", EmbeddedStore(Path(tmp) / "b.db"),
                                     url)
            with local_cosmos_server() as server:
                cosmos = CosmosStore(
                    server.endpoint, f"bench-{uuid.uuid4().hex}", key=server.key,
                    connection_verify=False,
                )
                rows += await run_backend("Cosmos DB (local @vercel/cosmosdb-server)", cosmos,
                                          url)
        finally:
            children.stop_all()
    print("\n".join(rows))
    print(
        "\nRT = store round trips (HTTP requests on Cosmos). RU = request charge summed from "
        "x-ms-request-charge;\nthe local server charges a flat 1 RU per request, real Cosmos "
        "charges by size and indexing."
    )


if __name__ == "__main__":
    asyncio.run(main())
