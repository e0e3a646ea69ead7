"""What one refresh of the console's live view costs as the history grows, on both stores.

    .venv/bin/python bench/console_costs.py                       # embedded: 1,000 / 10,000 chats
    .venv/bin/python bench/console_costs.py --sizes 1000 30000 --cosmos 100 1000

For each size, a new store gets that many closed chats (spread over 60 days, every fourth
one left open in a pipeline and idle, as guests who walk away leave them), the fold runs
over them, then 20 chats of the last minutes arrive that the fold has not reached, and the
same open chats (one in a pipeline, one waiting, one connected). Then the live view is
refreshed three times (the first reads the 20 new chats, the second finds nothing new) and
the third is measured: store round trips by operation, documents the queries returned, and
the CPU of this process. The chats are written straight into the store, as the bot leaves
them (tests/test_console_costs.py's `History`). The Cosmos sizes run against the local
Cosmos server of the tests (tests/local_cosmos.py), which must be installed
(scripts/setup --with-node).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.live import Board, rating_keys  # noqa: E402
from pipelines.loader import load_config  # noqa: E402
from storage.agents import AgentStore  # noqa: E402
from storage.documents import DocumentStore  # noqa: E402
from storage.embedded import EmbeddedStore  # noqa: E402
from storage.fold import Folder  # noqa: E402
from storage.models import Phase, SessionState  # noqa: E402
from storage.sessions import SessionStore  # noqa: E402
from tests.console_support import console_config  # noqa: E402
from tests.test_console_costs import History  # noqa: E402
from tests.test_console_tail import Rows  # noqa: E402


async def fill(docs: DocumentStore, size: int, config) -> None:
    history = History(docs)
    now = datetime.now(UTC)
    for i in range(size):
        when = now - timedelta(days=1 + i % 60, minutes=i % 600)
        if i % 4:
            await history.chat("it", created=when, closed=when + timedelta(minutes=4),
                               state=SessionState.RESOLVED, rating=1 + i % 5,
                               waits=[("answered", 5 + i % 90, when + timedelta(minutes=1))])
        else:
            await history.chat("it", created=when)
    folder = Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config), lag=0)
    await folder.fold()
    for i in range(20):
        when = now - timedelta(minutes=3, seconds=i)
        await history.chat("it", created=when, closed=when + timedelta(seconds=40),
                           state=SessionState.DEFLECTED)
    for phase in (Phase.PIPELINE, Phase.WAITING, Phase.CONNECTED):
        await history.chat("it", created=now - timedelta(minutes=2), phase=phase)


async def measure(docs: Rows, config) -> dict:
    board = Board(config, docs, SessionStore(docs), AgentStore(docs), refresh=0)
    await board.compute()
    await board.compute()
    docs.stats.reset()
    docs.rows = 0
    cpu = time.process_time()
    snapshot = await board.compute()
    cpu = time.process_time() - cpu
    it = snapshot["departments"]["it"]
    assert it["pipeline"]["count"] == 1 and it["today"]["deflected"] == 20, it
    return {"ops": dict(docs.stats.by_op), "round_trips": docs.stats.round_trips,
            "rows": docs.rows, "cpu_ms": 1000 * cpu}


async def run(backend: str, size: int, config, workdir: Path, cosmos) -> dict:
    if backend == "embedded":
        inner: DocumentStore = EmbeddedStore(workdir / f"history-{size}.sqlite3")
    else:
        from storage.cosmos import CosmosStore

        inner = CosmosStore(cosmos.endpoint, f"bench-{size}-{uuid.uuid4().hex[:8]}",
                            key=cosmos.key, connection_verify=False, max_retry_seconds=10.0)
    docs = Rows(inner)
    await docs.open()
    try:
        started = time.perf_counter()
        await fill(docs, size, config)
        filled = time.perf_counter() - started
        out = await measure(docs, config)
        out["fill_s"] = filled
        return out
    finally:
        if hasattr(inner, "delete_database"):
            await inner.delete_database()
        await docs.close()


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory(prefix="switchboard-console-costs-") as tmp:
        workdir = Path(tmp)
        config, _ = load_config(str(console_config(workdir)))
        runs = [("embedded", n) for n in args.sizes] + [("cosmos", n) for n in args.cosmos]
        async with contextlib.AsyncExitStack() as stack:
            cosmos = None
            if args.cosmos:
                from tests.local_cosmos import local_cosmos_server

                (workdir / "cosmos").mkdir()
                cosmos = stack.enter_context(local_cosmos_server(workdir / "cosmos"))
            print("| store | closed chats in history | round trips of a refresh | "
                  "documents read | CPU ms (this process) |")
            print("|---|---|---|---|---|")
            for backend, size in runs:
                r = await run(backend, size, config, workdir, cosmos)
                ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items()))
                print(f"| {backend} | {size:,} | {r['round_trips']} ({ops}) | {r['rows']} | "
                      f"{r['cpu_ms']:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000],
                        help="closed chats in the embedded store's history")
    parser.add_argument("--cosmos", type=int, nargs="*", default=[],
                        help="closed chats in the local Cosmos server's history")
    started = time.perf_counter()
    asyncio.run(main_async(parser.parse_args()))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
