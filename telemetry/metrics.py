"""Switchboard's metrics: the instruments, and the gauges' last reading.

Counters and histograms are recorded where things happen (a turn, a transfer, a store call,
a send, a timer). The three gauges (guests waiting, longest wait, agents available, by
department) are observable: the SDK reads `Gauges` when it exports, and `Gauges` holds what
telemetry/gauges.py last read from the store (once per export interval, never per turn).

Attributes are departments, kinds and operation names only, never ids (their number has no
bound) and never anything a person typed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation

DEPARTMENT = "switchboard.department"
KIND = "switchboard.turn.kind"
OUTCOME = "switchboard.turn.outcome"
# a turn's duration: from a few milliseconds to Teams' 15-second patience
TURN_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Reading:
    """What the store said at one moment, by department id."""

    waiting: dict[str, int] = field(default_factory=dict)
    longest_wait: dict[str, float] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)


class Gauges:
    """The latest reading; the SDK's export thread reads it, the event loop replaces it."""

    def __init__(self) -> None:
        self.reading: Reading | None = None

    def _observe(self, values: dict[str, int] | dict[str, float]) -> Iterable[Observation]:
        return [Observation(value, {DEPARTMENT: department})
                for department, value in values.items()]

    def waiting(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(self.reading.waiting) if self.reading else []

    def longest_wait(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(self.reading.longest_wait) if self.reading else []

    def available(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._observe(self.reading.available) if self.reading else []


Labels = tuple[tuple[str, str], ...]


class Counts:
    """A counter the hot path adds to as a plain dict (a few nanoseconds), which the SDK reads
    as an observable counter when it exports (cumulative, as a counter's sum is)."""

    def __init__(self) -> None:
        self.values: dict[Labels, float] = {}

    def add(self, amount: float, labels: Labels) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(labels)) for labels, value in list(self.values.items())]


class Instruments:
    def __init__(self, meter: Meter, gauges: Gauges) -> None:
        self.turns = Counts()
        meter.create_observable_counter(
            "switchboard.turns", callbacks=[self.turns.observe], unit="{turn}",
            description="Activities from Teams handled, by department, kind and outcome")
        self.turn_duration = meter.create_histogram(
            "switchboard.turn.duration", unit="s",
            description="How long a turn took, from the activity to its answer",
            explicit_bucket_boundaries_advisory=list(TURN_BUCKETS))
        self.transfers = meter.create_counter(
            "switchboard.transfers", unit="{transfer}",
            description="Chats moved to another department, by source and target")
        self.undelivered = meter.create_counter(
            "switchboard.messages.undelivered", unit="{message}",
            description="Messages Teams refused, or throttled past the retry budget")
        self.throttled = meter.create_counter(
            "switchboard.sends.throttled", unit="{response}",
            description="HTTP 429 answers received from the Bot Connector")
        self.store_round_trips = Counts()
        meter.create_observable_counter(
            "switchboard.store.round_trips", callbacks=[self.store_round_trips.observe],
            unit="{round_trip}",
            description="Calls to the document store, by operation and container")
        self.store_charge = Counts()
        meter.create_observable_counter(
            "switchboard.store.request_charge", callbacks=[self.store_charge.observe],
            unit="{request_unit}",
            description="Cosmos DB request units the store calls cost (none on the embedded store)")
        self.timer_lag = meter.create_histogram(
            "switchboard.timer.lag", unit="s",
            description="How late a timer fired after it was due, by kind",
            explicit_bucket_boundaries_advisory=list(LAG_BUCKETS))
        meter.create_observable_gauge(
            "switchboard.guests.waiting", callbacks=[gauges.waiting], unit="{guest}",
            description="Guests waiting for a live agent, by department")
        meter.create_observable_gauge(
            "switchboard.guests.longest_wait", callbacks=[gauges.longest_wait], unit="s",
            description="How long the guest waiting longest has waited, by department")
        meter.create_observable_gauge(
            "switchboard.agents.available", callbacks=[gauges.available], unit="{agent}",
            description="Agents available and reachable, by department")
