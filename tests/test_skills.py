"""Skills, tiers and the agents index: the config's checks (`config validate`), the matching,
and offer rounds that read agents through the index, never a whole department (issue 15)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.actions.connect_to_agent import ConnectToAgentStage
from pipelines.loader import ConfigError, build_config
from pipelines.routing.skills import coverage, describe, qualifies, required
from tests.test_cli import cli

ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "aaaaaaaa-0000-0000-0000-000000000002"
CAROL = "bbbbbbbb-0000-0000-0000-000000000001"


def desk(**stage: Any) -> dict[str, Any]:
    """A config: IT (Alice: French 3, VPN 2; Bob: VPN 4; group `seniors`: Bob) whose stage
    `connect` has `stage`'s settings; HR (Carol: payroll)."""
    connect = {"key": "connect", "action": "connect_to_agent", "on_timeout": "done",
               "on_drop": "done", "next": "done", **stage}
    return {
        "primary_tenant": "it",
        "tenants": [
            {"id": "it", "name": "IT", "primary_pipeline": "p",
             "agents": [{"aad_object_id": ALICE, "name": "Alice",
                         "skills": {"language:fr": 3, "vpn": 2}},
                        {"aad_object_id": BOB, "name": "Bob", "skills": {"vpn": 4}}],
             "groups": {"seniors": ["Bob"]},
             "pipelines": [{"id": "p", "stages": [
                 {"key": "lang", "action": "question", "prompt": "Language?",
                  "store_as": "Answers.Language", "next": "connect"},
                 connect, {"key": "done", "action": "end"}]}]},
            {"id": "hr", "name": "HR", "primary_pipeline": "p",
             "agents": [{"aad_object_id": CAROL, "name": "Carol", "skills": ["payroll"]}],
             "pipelines": [{"id": "p", "stages": [{"key": "done", "action": "end"}]}]},
        ],
    }


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_config(raw, Path("desk.yaml"))
    return caught.value.problems


WHERE = "desk.yaml > tenant 'it' > pipeline 'p' > stage 'connect': "


def test_a_valid_config_with_skills_tiers_and_groups_loads():
    config, _ = build_config(desk(
        skills={"vpn": 2}, skills_from={"Answers.Language": {"French": "language:fr"}},
        match="closest", tiers=[{"skills": {"vpn": 4}, "escalate_after": 30},
                                {"group": "seniors", "mode": "hunt", "escalate_after": 30},
                                {"tenant": "hr"}]), Path("desk.yaml"))
    stage = config.tenant("it").pipeline("p").stage("connect")
    assert isinstance(stage, ConnectToAgentStage)
    assert stage.skills_from == {"Answers.Language": {"french": {"language:fr": 1}}}
    assert config.tenant("it").agents[0].skills == {"language:fr": 3, "vpn": 2}
    assert config.tenant("hr").agents[0].skills == {"payroll": 1}
    assert [a.name for a in config.tenant("it").group("seniors")] == ["Bob"]


def test_unknown_skills_are_found_wherever_they_are_named():
    found = problems(desk(skills={"vnp": 1},
                          skills_from={"Answers.Language": {"German": "language:de"}},
                          tiers=[{"skills": {"payrol": 1}, "escalate_after": 30},
                                 {"tenant": "hr"}]))
    assert WHERE + "`skills`: unknown skill 'vnp', no agent has it: did you mean 'vpn'?" in found
    assert (WHERE + "`skills_from.Answers.Language`: unknown skill 'language:de', no agent has "
            "it: did you mean 'language:fr'?") in found
    assert (WHERE + "tier 1 `skills`: unknown skill 'payrol', no agent has it: did you mean "
            "'payroll'?") in found


def test_tiers_that_name_no_agent_are_errors():
    found = problems(desk(tiers=[
        {"skills": {"payroll": 1}, "escalate_after": 30},   # IT has no payroll
        {"group": "juniors", "escalate_after": 30},          # no such group
        {"tenant": "legal", "escalate_after": 30},           # no such department
        {"tenant": "hr", "skills": {"vpn": 1}},              # HR has no VPN
    ]))
    assert WHERE + "tier 1 names no agent: no agent of IT has payroll" in found
    assert WHERE + "tier 2: IT has no group 'juniors' (its `groups`: seniors)" in found
    assert WHERE + "tier 3: `tenant` 'legal' is not a department: use one of hr, it" in found
    assert WHERE + "tier 4 names no agent: no agent of HR has vpn" in found


def test_a_tier_without_the_skills_the_stage_requires_exactly_is_an_error():
    found = problems(desk(skills={"language:fr": 1},
                          tiers=[{"skills": {"vpn": 4}, "escalate_after": 30}, {"tenant": "hr"}]))
    assert any(p.startswith(WHERE + "tier 1 names no agent with every skill the stage requires "
                            "(language:fr)") for p in found), found
    assert any(p.startswith(WHERE + "tier 2 names no agent with every skill") for p in found)
    # with `match: closest` they are ranked instead: valid
    build_config(desk(skills={"language:fr": 1}, match="closest",
                      tiers=[{"skills": {"vpn": 4}, "escalate_after": 30}, {"tenant": "hr"}]),
                 Path("desk.yaml"))


def test_no_agent_with_every_required_skill_is_an_error():
    found = problems(desk(skills={"language:fr": 1, "vpn": 4}))
    assert (WHERE + "no agent of IT has every skill the stage requires (language:fr, vpn (4)): "
            "give one of them the skills, or use `match: closest`") in found


@pytest.mark.parametrize("tiers, message", [
    ([{"tenant": "hr"}, {"group": "seniors"}],
     "tier 1 needs `escalate_after`: the seconds it is offered before tier 2 joins"),
    ([{"tenant": "hr", "escalate_after": 30}],
     "tier 1 is the last: it has no `escalate_after`"),
    ([{"tenant": "hr", "escalate_after": 500}, {"tenant": "hr", "escalate_after": 200},
      {"group": "seniors"}],
     "tier 3 would join after 700 s, past `max_wait` (600 s)"),
    ([{"group": "seniors", "skills": {"vpn": 1}}],
     "a tier names its agents by `group` or by `skills`, not both"),
])
def test_tier_settings_are_checked(tiers, message):
    found = problems(desk(tiers=tiers))
    assert any(p.startswith(WHERE) and message in p for p in found), found


def test_skill_names_levels_and_groups_are_checked():
    raw = desk()
    raw["tenants"][0]["agents"][0]["skills"] = {"Language FR": 3, "vpn": 7}
    raw["tenants"][0]["groups"] = {"seniors": ["Zed"]}
    found = problems(raw)
    assert any("'Language FR' is not a skill name" in p for p in found), found
    raw = desk()
    raw["tenants"][0]["agents"][0]["skills"] = {"vpn": 7}
    assert any("the level of skill 'vpn' must be a whole number 1 to 5" in p
               for p in problems(raw))
    raw = desk()
    raw["tenants"][0]["groups"] = {"seniors": ["Zed"]}
    assert any("group 'seniors' lists 'Zed', who is not one of its `agents` (Alice, Bob)" in p
               for p in problems(raw))
    found = problems(desk(skills_from={"Answers.Lang": {"French": "language:fr"}}))
    assert any("`skills_from`: unknown metadata name 'Answers.Lang'" in p for p in found)


def test_config_validate_reports_them_and_exits_1(tmp_path):
    raw = desk(skills={"vnp": 1}, tiers=[{"group": "juniors", "escalate_after": 30},
                                         {"tenant": "hr"}])
    path = tmp_path / "desk.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = cli("config", "validate", str(path))
    assert result.returncode == 1, result.stdout
    errors = result.stderr.splitlines()
    assert any("unknown skill 'vnp', no agent has it: did you mean 'vpn'?" in e for e in errors)
    assert any("tier 1: IT has no group 'juniors'" in e for e in errors), errors
    assert errors[-1].endswith("the bot would refuse to start")


# -- matching ----------------------------------------------------------------------------


def test_coverage_qualifies_and_required():
    alice, bob = {"language:fr": 3, "vpn": 2}, {"vpn": 4}
    wanted = {"language:fr": 3, "vpn": 3}
    assert coverage(alice, wanted) == pytest.approx((1 + 2 / 3) / 2)
    assert coverage(bob, wanted) == pytest.approx(0.5)
    assert coverage({}, wanted) == 0 and coverage(alice, {}) == 1.0
    assert not qualifies(alice, wanted, "exact") and qualifies(alice, wanted, "closest")
    assert qualifies(bob, {"vpn": 4}, "exact") and not qualifies(bob, {"vpn": 5}, "exact")
    assert describe(wanted) == "language:fr (3), vpn (3)"

    config, _ = build_config(desk(
        skills={"vpn": 2},
        skills_from={"Answers.Language": {"French": {"language:fr": 2}, "Vpn": {"vpn": 4}}}),
        Path("desk.yaml"))
    stage = config.tenant("it").pipeline("p").stage("connect")
    assert required(stage, {"Answers.Language": " french "}) == {"vpn": 2, "language:fr": 2}
    assert required(stage, {"Answers.Language": "VPN"}) == {"vpn": 4}  # the higher level
    assert required(stage, {"Answers.Language": "Klingon"}) == {"vpn": 2}
    assert required(stage, {}) == {"vpn": 2}


# -- the index: an offer round never reads a whole department ------------------------------


BIG = 300


def big_department(tmp_path: Path) -> Path:
    """IT with BIG agents (a few of whom will ever write to the bot), one skill each."""
    raw = yaml.safe_load((Path(__file__).parent / "e2e_configs" / "agents.yaml").read_text())
    it = raw["tenants"][0]
    it["agent_capacity"] = 2
    for n in range(3, BIG + 1):
        it["agents"].append({"aad_object_id": f"aaaaaaaa-0000-0000-0000-{n:012d}",
                             "name": f"Agent {n}", "skills": ["printers" if n % 2 else "vpn"]})
    it["agents"][0]["skills"] = ["vpn"]  # Alice
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def test_an_offer_round_reads_the_index_not_the_department(tmp_path, make_docs,
                                                                   connector):
    from app import DOCS
    from tests.agent_desk import ALICE as A
    from tests.agent_desk import BOB as B
    from tests.agent_desk import Desk, waiting_guest
    from tests.harness import BotServer, FakeClock, settings_for

    clock = FakeClock()
    server = await BotServer(settings_for(tmp_path, config_path=str(big_department(tmp_path))),
                             docs=make_docs(), clock=clock).start()
    try:
        desk_ = Desk(server, connector, clock)
        alice, bob = await desk_.agent(A), await desk_.agent(B)
        await waiting_guest(desk_)
        await server.fire_timers()  # the first round also logs who never installed (once)
        assert len(desk_.offers(alice)) == 1 and len(desk_.offers(bob)) == 1
        docs = server.app[DOCS]
        seen: list[tuple[str, str]] = []
        for name in ("read", "query"):
            real = getattr(docs, name)

            async def counted(container, *args, real=real, name=name, **kwargs):
                seen.append((name, container))
                return await real(container, *args, **kwargs)

            setattr(docs, name, counted)
        await waiting_guest(desk_, "The printer is on fire")
        seen.clear()
        await server.fire_timers()
        assert len(desk_.offers(alice)) == 2 and len(desk_.offers(bob)) == 2
        agent_reads = [c for c in seen if c[1] == "agents"]
        # one query of the department's open seats, then the two agents who hold one (and
        # their records again to note the offer): never the 300 configured
        assert agent_reads.count(("query", "agents")) == 1, agent_reads
        assert len(agent_reads) <= 6, agent_reads
    finally:
        await server.stop()


async def test_seats_follow_presence_load_and_the_config(tmp_path, docs):
    """The seat documents an agent record publishes, written in the record's own batch."""
    from pipelines.config import SwitchboardConfig
    from pipelines.routing.roster import memberships
    from storage.agents import AgentRecord, AgentStore, ChatRef, Presence, pool

    config, _ = build_config(desk(), Path("desk.yaml"))
    store = AgentStore(docs)
    current: list[SwitchboardConfig] = [config]
    store.profile = lambda agent_id: memberships(current[0], agent_id)
    make = lambda: AgentRecord(agent_id=ALICE, name="Alice")  # noqa: E731

    def change(**fields: Any):
        return lambda r: r.model_copy(update=fields)

    await store.update(ALICE, change(reference={"conversation": {"id": "c"}}), default=make)
    assert await store.open_seats(pool("it"), 10) == []  # offline
    await store.update(ALICE, change(presence=Presence.AVAILABLE), default=make)
    assert await store.open_seats(pool("it"), 10) == [ALICE]
    assert await store.open_seats(pool("it", "language:fr"), 10) == [ALICE]
    assert await store.open_seats(pool("it", "payroll"), 10) == []
    # a chat: load 1 of 2 (IT's default): still open, the seat says so
    chat = ChatRef(tenant_id="it", session_id="s1")
    await store.update(ALICE, change(chats=[chat]), default=make)
    [seat] = await docs.query("agents", ALICE, {"type": "seat", "pool": "it|vpn"})
    assert seat.body["load"] == 1 and seat.body["level"] == 2
    # at capacity: no seat anywhere
    await store.update(ALICE, change(chats=[chat, chat.model_copy(update={"session_id": "s2"})]),
                       default=make)
    assert await store.open_seats(pool("it"), 10) == []
    assert await docs.query("agents", ALICE, {"type": "seat"}) == []
    await store.update(ALICE, change(chats=[]), default=make)
    # the config changes her skills: her next write (any, even one that changes nothing)
    # publishes them
    changed = copy.deepcopy(desk())
    changed["tenants"][0]["agents"][0]["skills"] = {"printers": 5}
    current[0], _ = build_config(changed, Path("desk.yaml"))
    await store.update(ALICE, lambda r: None, default=make)
    assert await store.open_seats(pool("it", "printers"), 10) == [ALICE]
    assert await store.open_seats(pool("it", "language:fr"), 10) == []
    record = await store.get(ALICE)
    assert record is not None and record.skills_in("it") == {"printers": 5}


def test_the_example_config_documents_skills_tiers_and_consult():
    text = (Path(__file__).resolve().parents[1] / "examples" / "helpdesk.yaml").read_text()
    for word in ("skills:", "skills_from:", "tiers:", "escalate_after:", "match:"):
        assert word in text, word
