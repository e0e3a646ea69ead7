"""Live agents: the search, the offers, the accept race, the relay, hand-back and transfer.

`Routing` puts the parts together: `search` (the guest's side, offer rounds, timers),
`accept` (the accept race), `chat` (relay, end, transfer, an agent leaving), `presence`
(reachability, presence, the waiting list), `offer_view` (what an offer card shows),
`skills` (what a chat requires, how well an agent covers it), `tiers` (escalation: who is
offered when), `roster` (who can take a chat now, through the agents index), `consult`
(private consults and warm transfers). The engine and the actions see it through
`protocols.RoutingService`; the bot's agent desk calls the rest.
"""

from __future__ import annotations

from pipelines.routing.accept import Accepting
from pipelines.routing.chat import Chat
from pipelines.routing.common import Desk, NothingToDo, Refused, activity_key
from pipelines.routing.consult import Consults
from pipelines.routing.presence import Presences
from pipelines.routing.roster import memberships
from pipelines.routing.search import Search

__all__ = ["Desk", "NothingToDo", "Refused", "Routing", "activity_key"]


class Routing:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        # an agent's record publishes the departments and skills the config gives them
        desk.agents.profile = lambda agent_id: memberships(desk.config, agent_id)
        self.search = Search(desk)
        self.consults = Consults(desk, self.search.roster)
        self.search.consults = self.consults
        self.chat = Chat(desk, self.search, self.consults)
        self.accepting = Accepting(desk, self.search)
        self.presence = Presences(desk, self.chat)
        # the guest's side, for the engine (protocols.RoutingService)
        self.start = self.search.start
        self.relay_from_guest = self.search.relay_from_guest
        self.guest_leaves = self.search.guest_leaves
        self.leave = self.search.leave
        self.on_timer = self.search.on_timer

    @property
    def config(self):
        return self.desk.config
