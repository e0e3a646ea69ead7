"""The live view's own cost per refresh, measured apart from the server: run by
bench/console_load.py while its guests play, this process opens the same embedded store and
computes the live view every 2 s, as the server does for its consoles. It prints `ready`
after the first computation (which reads every open chat and the feeds), then one
`computed <CPU ms>` line per computation (this process's CPU, its store threads included).

    .venv/bin/python bench/console_refresh.py DB CONFIG SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.live import Board
from pipelines.loader import load_config
from storage.agents import AgentStore
from storage.embedded import EmbeddedStore
from storage.sessions import SessionStore

INTERVAL = 2.0


async def main(db: str, config_path: str, seconds: float) -> None:
    config, _ = load_config(config_path)
    docs = EmbeddedStore(Path(db))
    await docs.open()
    try:
        board = Board(config, docs, SessionStore(docs), AgentStore(docs), refresh=0)
        await board.compute()
        print("ready", flush=True)
        await asyncio.sleep(INTERVAL)
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            began = time.monotonic()
            start = time.process_time()
            json.dumps(await board.compute())
            print(f"computed {1000 * (time.process_time() - start):.2f}", flush=True)
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - began)))
    finally:
        await docs.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
