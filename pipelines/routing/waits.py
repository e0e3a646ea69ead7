"""A record of each wait for an agent as it ends, for the console's figures (speed to
answer, abandoned while waiting, the wait percentiles: storage/stats.py).

Written with the step that ends the wait (`Turn.keep`: the same batch as the session), so a
wait is on record exactly when its end is; the console folds these records from an index
(storage/feeds.py), never from transcripts. One record per wait (named by when it began):
a chat whose agent left and that waits again has two.
"""

from __future__ import annotations

from pipelines.engine import Turn
from storage.models import utcnow

# answered (by an agent's Accept or a supervisor's assignment), abandoned (the guest
# cancelled or started over), timed_out (the stage's max_wait passed), transferred or
# closed (by a supervisor, while waiting)
OUTCOMES = ("answered", "abandoned", "timed_out", "transferred", "closed")


def note_wait(turn: Turn, outcome: str, *, agent_id: str | None = None,
              agent_name: str | None = None, by: str | None = None) -> None:
    """The session's current wait ended with `outcome` (nothing when it is not waiting)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown wait outcome {outcome!r}")
    search = turn.session.routing
    if search is None:
        return
    waited = max(0.0, turn.engine.clock() - search.started_at)
    turn.keep(f"wait-{int(search.started_at * 1000)}", {
        "type": "wait", "at": utcnow(), "outcome": outcome, "waited": round(waited, 3),
        "agent_id": agent_id, "agent_name": agent_name, "by": by,
    })
