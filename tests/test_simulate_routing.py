"""`switchboard-admin simulate` at a stage with skills and tiers: it shows whom the chat would
be offered to (skills resolved from the guest's answers, per tier, best match first), refuses
an /agent the bot would never offer the chat to (saying why), lets the next tier join with
/escalate (the guest's card), and records the accepting agent's tier (issue 15)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.test_cli import cli

ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
CAROL = "bbbbbbbb-0000-0000-0000-000000000001"

DESK = """
primary_tenant: it
tenants:
  - id: it
    name: IT
    agents:
      - {aad_object_id: "aaaaaaaa-0000-0000-0000-000000000001", name: Alice,
         skills: {language:fr: 3, vpn: 2}}
      - {aad_object_id: "aaaaaaaa-0000-0000-0000-000000000002", name: Bob, skills: {vpn: 4}}
      - {aad_object_id: "aaaaaaaa-0000-0000-0000-000000000003", name: Dana}
    primary_pipeline: p
    pipelines:
      - id: p
        stages:
          - key: lang
            action: question
            prompt: "Which language?"
            choices: [English, French]
            store_as: Answers.Language
            next: connect
          - key: connect
            action: connect_to_agent
            skills: {vpn: 2}
            skills_from:
              Answers.Language: {French: language:fr}
            match: MATCH
            max_wait: 300
            tiers:
              - {name: First line, escalate_after: 60}
              - {name: HR backup, tenant: hr, mode: hunt}
            on_timeout: done
            on_drop: done
            next: done
          - {key: done, action: end, state: resolved}
  - id: hr
    name: HR
    agents:
      - {aad_object_id: "bbbbbbbb-0000-0000-0000-000000000001", name: Carol,
         skills: {vpn: 2, language:fr: 2}}
      - {aad_object_id: "bbbbbbbb-0000-0000-0000-000000000002", name: Erin, skills: {vpn: 3}}
      - {aad_object_id: "bbbbbbbb-0000-0000-0000-000000000004", name: Finn}
    primary_pipeline: p
    pipelines:
      - id: p
        stages:
          - {key: done, action: end}
"""


def desk(tmp_path: Path, match: str = "exact") -> Path:
    path = tmp_path / "desk.yaml"
    path.write_text(DESK.replace("MATCH", match))
    return path


def in_order(out: str, expected: list[str]) -> None:
    position = 0
    for line in expected:
        found = out.find(line, position)
        assert found >= 0, f"{line!r} missing (or out of order) in:\n{out}"
        position = found + len(line)


def test_exact_match_follows_skills_and_tiers(tmp_path):
    db = tmp_path / "sim.sqlite3"
    answers = ("French\n/agent Bob\n/agent Carol\n/agent Dana\n/escalate\n/escalate\n"
               "/agent Carol\n/end\n")
    result = cli("simulate", str(desk(tmp_path)), "--db", str(db), input=answers)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    in_order(out, [
        "you> French",
        "(dry run: the chat needs language:fr, vpn (2); match exact)",
        "(dry run: tier 1 of 2 (First line), broadcast: offered to Alice; tier 2 joins after "
        "60 s)",
        "you> /agent Bob",
        "(dry run: Bob lacks skills the chat needs (language:fr, vpn (2); they have vpn (4)), "
        "and the match is exact)",
        "you> /agent Carol",
        "(dry run: Carol is in tier 2, which has not joined yet: /escalate first)",
        "you> /agent Dana",
        "(dry run: Dana lacks skills the chat needs",
        "you> /escalate",
        "bot> ",  # the guest's escalated card
        "(dry run: tier 2 of 2 (HR backup), hunt: offered to Carol one at a time, in this "
        "order)",
        "you> /escalate",
        "(no tier is left to join: /timeout ends the search)",
        "you> /agent Carol",
        "bot> You're now chatting with Carol",
        "(dry run: Carol accepted (tier 2).",
        "(end of simulation: IT [resolved])",
    ])
    assert "Erin" not in out and "Finn" not in out  # no French: never offered
    escalated = out[out.index("you> /escalate"):out.index("(dry run: tier 2 of 2")]
    assert "bot> We've asked more people to help" in escalated, escalated
    # what the session recorded, as the bot records it: the escalation's card and the
    # accept, each with its tier
    session, lines = asyncio.run(_session(db))
    assert session.metadata["Agent.Id"] == CAROL and session.metadata["Agent.Name"] == "Carol"
    [accepted] = [e for e in lines if e.sender == f"agent:{CAROL}"]
    assert accepted.text == "Carol accepted the chat (tier 2)" and accepted.tier == 2
    assert not accepted.visible
    [escalated] = [e for e in lines if e.tier == 2 and e.to == "guest"]
    assert "We've asked more people to help" in str(escalated.card)


def test_closest_match_offers_the_best_and_hunts_down_the_ranking(tmp_path):
    answers = "English\n/agent Alice\n/escalate\n/agent\n"
    result = cli("simulate", str(desk(tmp_path, "closest")), input=answers)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    in_order(out, [
        "(dry run: the chat needs vpn (2); match closest)",
        # broadcast, closest: only those who cover the skills best (Dana has none)
        "(dry run: tier 1 of 2 (First line), broadcast: offered to Alice, Bob; tier 2 joins "
        "after 60 s)",
        "you> /agent Alice",
        "bot> You're now chatting with Alice",
        "(dry run: Alice accepted (tier 1).",
    ])
    assert "Dana" not in out
    # /escalate after the accept is refused; the next chat: hunt goes down the ranking
    assert "(/escalate works while the guest waits for an agent)" in out
    result = cli("simulate", str(desk(tmp_path, "closest")),
                 input="English\n/escalate\n/agent Dana\n/agent\n")
    out = result.stdout
    in_order(out, [
        "(dry run: tier 2 of 2 (HR backup), hunt: offered to Carol, Erin, Finn one at a "
        "time, in this order)",
        "(dry run: Dana would not be offered this chat: agents who cover its skills "
        "(vpn (2)) better are offered it first)",
        "you> /agent",
        "bot> You're now chatting with Alice",  # the best of tier 1, the earlier tier
    ])


def test_an_agent_in_no_tier_and_a_stand_in(tmp_path):
    raw = DESK.replace("MATCH", "exact") + (
        "  - id: legal\n    name: Legal\n    agents:\n"
        "      - {aad_object_id: \"cccccccc-0000-0000-0000-000000000001\", name: Gil}\n"
        "    primary_pipeline: p\n    pipelines:\n      - id: p\n        stages:\n"
        "          - {key: done, action: end}\n")
    path = tmp_path / "desk.yaml"
    path.write_text(raw)
    result = cli("simulate", str(path), input="English\n/agent Gil\n/agent Somebody Else\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    in_order(out, [
        "(dry run: Gil (Legal) is in none of this stage's tiers: the chat is never offered "
        "to them)",
        "you> /agent Somebody Else",
        "bot> You're now chatting with Somebody Else",  # no agent of the config: a stand-in
    ])


async def _session(db: Path):
    from storage.embedded import EmbeddedStore
    from storage.sessions import SessionStore

    docs = EmbeddedStore(str(db))
    await docs.open()
    try:
        store = SessionStore(docs)
        [session] = await store.list("it")
        return session, await store.transcript("it", session.id)
    finally:
        await docs.close()
