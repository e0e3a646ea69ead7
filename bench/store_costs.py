"""What a guest turn and a transfer cost in store round trips and Cosmos request units.

    .venv/bin/python bench/store_costs.py

Runs the real engine with the example configuration on both backends (the embedded file
and the local Cosmos DB server, started here), and prints, for each:

- a guest turn: the instance that served the last message (location cached), and another
  instance seeing the conversation for the first time;
- a transfer: the rehome itself, and the whole guest turn that carries it;
- the transfer with a 10-message and a 1000-message transcript, side by side, against a
  baseline that copies the transcript into the target partition (what a rehome that moves
  "the conversation" naively costs).

Targets (issue 3): <= 2 round trips per guest turn, <= 6 per transfer, and a 1000-message
transfer <= 1.1x a 10-message one.
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

from pipelines.actions.base import GuestInput  # noqa: E402
from pipelines.engine import Engine  # noqa: E402
from pipelines.loader import load_config  # noqa: E402
from storage.documents import DocumentStore, WriteOp  # noqa: E402
from storage.embedded import EmbeddedStore  # noqa: E402
from storage.models import Direction, Session, TranscriptEntry  # noqa: E402
from storage.rehome import rehome  # noqa: E402
from storage.sessions import TENANT_DATA, SessionStore, new_session_id  # noqa: E402

CONFIG = ROOT / "examples" / "helpdesk.yaml"


@dataclass
class Cost:
    round_trips: int
    ru: float

    def __str__(self) -> str:
        return f"{self.round_trips:>3} RT {self.ru:>8.2f} RU"


async def _send(text, card):
    return None


def measure(docs: DocumentStore):
    class _Measure:
        def __enter__(self):
            docs.stats.reset()
            return self

        def __exit__(self, *exc):
            self.cost = Cost(docs.stats.round_trips, docs.stats.request_charge)

    return _Measure()


async def guest_turns(docs: DocumentStore) -> dict[str, Cost]:
    config, _ = load_config(CONFIG)
    one = SessionStore(docs)
    engine = Engine(config, one)
    conversation = f"bench-{uuid.uuid4().hex}"
    guest = {"Guest.Name": "Bench"}
    await engine.start(conversation, guest, {}, _send)
    costs = {}
    session = await one.live(conversation)
    await engine.handle(session, GuestInput(text="My laptop is broken"), _send)

    with measure(docs) as m:
        session = await one.live(conversation)
        await engine.handle(session, GuestInput(text="IT"), _send)
    costs["turn that transfers (whole turn)"] = m.cost

    with measure(docs) as m:
        session = await one.live(conversation)
        await engine.handle(session, GuestInput(text="Laptop"), _send)
    costs["guest turn, same instance"] = m.cost

    other = SessionStore(docs)
    other_engine = Engine(config, other)
    with measure(docs) as m:
        session = await other.live(conversation)
        await other_engine.handle(session, GuestInput(text="Normal"), _send)
    costs["guest turn, another instance (first time)"] = m.cost
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
    return await rehome(
        store, session, source_tenant_name="Service Desk", to_tenant_id="hr",
        to_tenant_name="HR", to_pipeline_id="hr-intake", to_stage_key="employee_number",
    )


async def _copying_rehome(store: SessionStore, session: Session) -> None:
    """The baseline: move the conversation by copying its transcript under the target."""
    target = await _rehome(store, session)
    lines = await store.transcript(session.tenant_id, session.id)
    for start in range(0, len(lines), 100):
        ops = [
            WriteOp("upsert", f"{target.id}:copy:{e.seq:08d}", e.body())
            for e in lines[start:start + 100]
        ]
        await store.docs.batch(TENANT_DATA, target.tenant_id, ops)


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


async def run_backend(name: str, docs: DocumentStore) -> list[str]:
    await docs.open()
    try:
        turns = await guest_turns(docs)
        moves = await transfers(docs)
    finally:
        await docs.close()
    rows = [f"\n{name}", f"  {'':44} {'Switchboard':>19}   {'baseline (copy)':>19}"]
    for label, cost in turns.items():
        rows.append(f"  {label:44} {cost!s:>19}")
    for label, (ours, base) in moves.items():
        rows.append(f"  {label:44} {ours!s:>19}   {base!s:>19}")
    (o10, b10), (o1000, b1000) = moves.values()
    ratio = (o1000.ru or o1000.round_trips) / (o10.ru or o10.round_trips)
    base_ratio = (b1000.ru or b1000.round_trips) / (b10.ru or b10.round_trips)
    rows.append(f"  {'1000 vs 10 messages':44} {ratio:>18.2f}x   {base_ratio:>18.2f}x")
    checks = [
        ("guest turn <= 2 round trips", turns["guest turn, same instance"].round_trips <= 2),
        ("transfer <= 6 round trips", o10.round_trips <= 6 and o1000.round_trips <= 6),
        ("1000-message transfer <= 1.1x a 10-message one", ratio <= 1.1),
    ]
    for label, ok in checks:
        rows.append(f"  target: {label:50} {'met' if ok else 'MISSED'}")
    return rows


async def main() -> None:
    from storage.cosmos import CosmosStore
    from tests.local_cosmos import local_cosmos_server

    with tempfile.TemporaryDirectory() as tmp:
        rows = await run_backend("embedded (SQLite file)", EmbeddedStore(Path(tmp) / "b.db"))
    with local_cosmos_server() as server:
        cosmos = CosmosStore(
            server.endpoint, f"bench-{uuid.uuid4().hex}", key=server.key,
            connection_verify=False,
        )
        rows += await run_backend("Cosmos DB (local @vercel/cosmosdb-server)", cosmos)
    print("\n".join(rows))
    print(
        "\nRT = store round trips (HTTP requests on Cosmos). RU = request charge summed from "
        "x-ms-request-charge;\nthe local server charges a flat 1 RU per request, real Cosmos "
        "charges by size and indexing."
    )


if __name__ == "__main__":
    asyncio.run(main())
