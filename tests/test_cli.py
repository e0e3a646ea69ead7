"""`switchboard-admin`, run exactly as an admin runs it: a subprocess, settings in the
environment. Stores for `sessions` and `agents` are prepared by driving the real Engine,
SessionStore and AgentStore first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from admin.drawing import svg_structure

ROOT = Path(__file__).resolve().parents[1]
DESK = ROOT / "tests" / "cli_fixtures" / "desk.yaml"
EXAMPLE = ROOT / "examples" / "helpdesk.yaml"
BOT_ID = "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d"
ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "aaaaaaaa-0000-0000-0000-000000000002"

# every variable the CLI reads, so this machine's environment cannot leak into a test
OWN_VARIABLES = ("MICROSOFT_APP", "MicrosoftApp", "SWITCHBOARD_", "COSMOS_")


def env(**values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLES)}
    base["PYTHONPATH"] = str(ROOT)
    return {**base, **values}


def cli(*args: str, cwd: Path = ROOT, input: str | None = None, program: list[str] | None = None,
        **variables: str) -> subprocess.CompletedProcess[str]:
    command = program or [sys.executable, "-m", "admin"]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env(**variables), input=input, capture_output=True,
        text=True, timeout=120,
    )


# -- help everywhere -------------------------------------------------------------------


COMMANDS = [
    [], ["config"], ["config", "validate"], ["config", "draw"], ["manifest"],
    ["manifest", "build"], ["manifest", "check"], ["manifest", "publish"], ["simulate"],
    ["sessions"], ["sessions", "list"], ["sessions", "show"], ["agents"], ["agents", "list"],
    ["faq"], ["faq", "report"], ["faq", "learn"],
]


def test_help_everywhere():
    for command in COMMANDS:
        result = cli(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage: switchboard-admin" in result.stdout, command
        assert " ".join(command) in result.stdout.splitlines()[0]
    assert "-h, --help" in cli("-h").stdout


def test_the_installed_script():
    script = shutil.which("switchboard-admin", path=str(Path(sys.executable).parent))
    assert script, "switchboard-admin is not installed: pip install -e ."
    result = cli("config", "validate", str(DESK), program=[script])
    assert result.returncode == 0, result.stderr
    assert "valid: 3 tenants" in result.stdout
    bare = cli(program=[script])  # no command: the help, as a usage error
    assert bare.returncode == 2 and "Usage: switchboard-admin" in bare.stderr


# -- config validate -------------------------------------------------------------------


def test_validate_a_valid_config():
    result = cli("config", "validate", str(DESK))
    assert result.returncode == 0
    assert result.stdout.strip() == (
        f"{DESK}: valid: 3 tenants, 3 pipelines, 11 stages; new chats start in 'Front Desk'")
    assert cli("config", "validate", str(EXAMPLE)).returncode == 0


BROKEN = """\
primary_tenant: front
tenants:
  - id: front
    name: Front
    primary_pipeline: main
    pipelines:
      - id: main
        stages:
          - {key: ask, action: question, prompt: "Hi ${Guest.Nmae}", store_as: A.B, next: nowhere}
          - {key: go, action: tenant_transfer, tenant: payroll}
  - id: hr
    name: HR
    primary_pipeline: intake
    pipelines:
      - id: intake
        stages:
          - {key: done, action: end, colour: blue}
"""


def test_validate_reports_every_problem_with_where_it_is(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text(BROKEN)
    result = cli("config", "validate", str(config))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) >= 4, result.stderr
    text = "\n".join(errors)
    assert f"error: {config} > tenant 'front' > pipeline 'main' > stage 'ask'" in text
    assert "nowhere" in text
    assert "did you mean 'Guest.Name'" in text
    assert f"{config} > tenant 'front' > pipeline 'main' > stage 'go'" in text and "payroll" in text
    assert f"{config} > tenant 'hr' > pipeline 'intake' > stage 'done'" in text
    assert "colour" in text
    assert result.stderr.strip().endswith("problems: the bot would refuse to start")


def test_validate_prints_warnings_and_passes(tmp_path):
    config = tmp_path / "warn.yaml"
    config.write_text(textwrap.dedent("""\
        primary_tenant: a
        tenants:
          - id: a
            name: A
            primary_pipeline: p
            pipelines:
              - id: p
                stages:
                  - {key: start, action: end}
                  - {key: orphan, action: end}
        """))
    result = cli("config", "validate", str(config))
    assert result.returncode == 0, result.stderr
    assert "warning: " in result.stderr and "orphan" in result.stderr
    assert "1 warning" in result.stdout


def test_validate_a_missing_file(tmp_path):
    result = cli("config", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "cannot read the file" in result.stderr


# -- config draw -----------------------------------------------------------------------


def test_draw_svg(tmp_path):
    result = cli("config", "draw", str(DESK), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wrote desk.svg"
    drawing = svg_structure((tmp_path / "desk.svg").read_text())
    assert drawing["cluster"] == sorted([
        "cluster_tenant_front", "cluster_tenant_hr", "cluster_tenant_it",
        "cluster_pipeline_front/triage", "cluster_pipeline_hr/intake",
        "cluster_pipeline_it/helpdesk"])
    assert "front/triage/route" in drawing["node"]
    assert "it/helpdesk/connect" in drawing["node"]
    edges = drawing["edge"]
    # branches, timeouts, the new chat's start, and the transfers between tenants
    for edge in ["start->front/triage/welcome", "front/triage/route->front/triage/to_hr",
                 "front/triage/route->front/triage/to_it", "it/helpdesk/connect->it/helpdesk/sorry",
                 "front/triage/to_hr->hr/intake/topic", "front/triage/to_it->it/helpdesk/connect"]:
        assert edge in edges, edge
    texts = drawing["texts"]
    for words in ["Human Resources", "IT Support", "on_timeout", "(after 5 min)", "on_drop",
                  "accept_timeout: 45 s", "max_wait: 5 min", "Front Desk -> Human Resources",
                  "Front Desk -> IT Support", "Front Desk (front)", "primary tenant",
                  "2 agents", "pipeline triage (primary)"]:
        assert words in texts, words


def test_draw_other_formats_and_mistakes(tmp_path):
    result = cli("config", "draw", str(DESK), "-o", str(tmp_path / "pic" / "desk.png"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pic" / "desk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = cli("config", "draw", str(DESK), "--output", str(tmp_path / "desk.dot"))
    assert result.returncode == 0
    assert (tmp_path / "desk.dot").read_text().startswith("digraph switchboard {")
    result = cli("config", "draw", str(DESK), "-o", str(tmp_path / "desk.gif"))
    assert result.returncode == 2
    assert "unknown picture format '.gif'" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = cli("config", "draw", str(broken), "-o", str(tmp_path / "b.svg"))
    assert result.returncode == 1 and "payroll" in result.stderr
    assert not (tmp_path / "b.svg").exists()


def test_draw_labels_a_condition_edge_with_its_when(tmp_path):
    result = cli("config", "draw", str(EXAMPLE), "-o", str(tmp_path / "example.dot"))
    assert result.returncode == 0, result.stderr
    dot = (tmp_path / "example.dot").read_text()
    assert ('"hr/hr-intake/route" -> "hr/hr-intake/ticket" '
            '[label="Answers.HrTopic == \'Something else\'"]') in dot
    assert '"hr/hr-intake/route" -> "hr/hr-intake/summary" [label=otherwise]' in dot
    assert "branches." not in dot


def test_docs_drawing_is_the_example_as_it_is_now(tmp_path):
    """docs/example-config.svg shows examples/helpdesk.yaml as `config draw` draws it today.
    Compared by what it shows (clusters, nodes, edges, texts), not byte for byte."""
    fresh = tmp_path / "example.svg"
    result = cli("config", "draw", str(EXAMPLE), "-o", str(fresh))
    assert result.returncode == 0, result.stderr
    committed = svg_structure((ROOT / "docs" / "example-config.svg").read_text())
    assert committed == svg_structure(fresh.read_text()), (
        "docs/example-config.svg is out of date: run `switchboard-admin config draw "
        "examples/helpdesk.yaml -o docs/example-config.svg`")


# -- simulate --------------------------------------------------------------------------


def test_simulate_a_transfer_from_a_script(tmp_path):
    script = tmp_path / "answers.txt"
    script.write_text("# the guest's answers\na new badge\n\n1\n2\n")
    result = cli("simulate", str(DESK), "--script", str(script), "--guest-name", "Ada")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected = [
        "bot> Hello Ada, this is the Front Desk.",
        "bot> What do you need, Ada?",
        "(type your answer)",
        "you> a new badge",
        "bot> Who should help you?",
        "[1] Human Resources",
        "[2] IT Support",
        "you> 1",
        "(pressed [1] Human Resources)",
        "bot> Moving you from Front Desk to Human Resources.",
        "bot> Which topic?",
        "[1] Leave",
        "[2] Payroll",
        "(moved to Human Resources: its pipeline intake runs)",
        "you> 2",
        "(pressed [2] Payroll)",
        "bot> Logged: a new badge (Payroll).",
        "(end of simulation: Front Desk [transferred] -> Human Resources [resolved])",
    ]
    position = 0
    for line in expected:
        found = out.find(line, position)
        assert found >= 0, f"{line!r} missing (or out of order) in:\n{out}"
        position = found + len(line)


def test_simulate_typed_titles_restart_and_help(tmp_path):
    answers = "printer\nhelp\nrestart\nscanner\nIT Support\ncancel\n"
    result = cli("simulate", str(DESK), input=answers)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bot> You're talking to Front Desk." in out
    assert "bot> Starting over." in out
    assert out.count("bot> Hello Guest, this is the Front Desk.") == 2
    assert "bot> Connecting you with someone from IT Support" in out
    assert "bot> Nobody from IT is free. We'll email you." in out
    assert "Front Desk [restarted] -> Front Desk [transferred] -> IT Support [ended]" in out


def test_simulate_plays_the_agent(tmp_path):
    answers = "/agent\nhello?\n/end\n4\n"
    result = cli("simulate", str(DESK), "--tenant", "it", input=answers)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "bot> Connecting you with someone from IT Support" in out
    assert "[1] Stop waiting" in out
    assert "bot> You're now chatting with Alice" in out
    assert "(relayed to the agent)" in out
    assert "bot> How did Alice do, 1 to 5?" in out
    assert "bot> Thanks, rated 4." in out
    assert "(end of simulation: IT Support [resolved])" in out


def test_simulate_timeout_and_stop_button():
    result = cli("simulate", str(DESK), "--tenant", "it", input="/timeout\n")
    assert "bot> Nobody from IT is free. We'll email you." in result.stdout
    result = cli("simulate", str(DESK), "--tenant", "it", input="1\n")
    assert "(pressed [1] Stop waiting)" in result.stdout
    assert "IT Support [ended]" in result.stdout


RATING_DESK = """
primary_tenant: desk
tenants:
  - id: desk
    name: Desk
    primary_pipeline: p
    pipelines:
      - id: p
        stages:
          - {key: rate, action: feedback, next: done}
          - key: done
            action: end
            state: resolved
            template: {"type": "AdaptiveCard", "version": "1.5",
                       "body": [{"type": "TextBlock", "text": "Rated ${Feedback.Rating}."}]}
"""


@pytest.mark.parametrize("typed, rating", [("5", "5"), ("1", "1"), ("4", "4")])
def test_simulate_a_typed_number_at_the_rating_card_is_that_rating(tmp_path, typed, rating):
    config = tmp_path / "desk.yaml"
    config.write_text(RATING_DESK)
    result = cli("simulate", str(config), input=f"{typed}\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # the options are keyed by their own numbers, so what is shown is what typing does
    assert "[5] 5 - Excellent" in out and "[1] 1 - Poor" in out
    assert f"(pressed [{typed}] {typed} - " in out
    assert f"bot> Rated {rating}." in out


def test_simulate_a_long_number_is_text_not_an_option(tmp_path):
    config = tmp_path / "desk.yaml"
    config.write_text(RATING_DESK)
    result = cli("simulate", str(config), input="5" * 50 + "\nskip\n")
    assert result.returncode == 0, result.stderr
    assert "pressed" not in result.stdout and "Traceback" not in result.stderr


def test_simulate_mistakes(tmp_path):
    result = cli("simulate", str(DESK), "--tenant", "payroll", input="")
    assert result.returncode == 2
    assert "unknown tenant 'payroll': the configuration has front, hr, it" in result.stderr
    result = cli("simulate", str(DESK), "--script", str(tmp_path / "none.txt"))
    assert result.returncode == 2 and "cannot read the script" in result.stderr
    result = cli("simulate", str(DESK), input="/agent\n")
    assert "/agent works while the guest waits for or talks to an agent" in result.stdout


# -- sessions and agents: a store prepared with the real engine ------------------------


async def _prepare_store(db: Path) -> dict[str, str]:
    """Two chats: Ada went front -> hr and is answering HR's question; Bo is still at the
    front desk. Agent Alice of IT has written to the bot (reachable), Bob has not."""
    from pipelines.actions.base import GuestInput
    from pipelines.engine import Engine
    from pipelines.loader import load_config
    from storage.agents import AgentRecord, AgentStore, Presence
    from storage.embedded import EmbeddedStore
    from storage.sessions import SessionStore

    config, _ = load_config(DESK)
    docs = EmbeddedStore(db)
    await docs.open()
    sessions = SessionStore(docs)
    engine = Engine(config, sessions)  # no deliverer: what it owes stays owed

    ids = {}
    for conversation, name, answers in (("conv-ada", "Ada", ["badge broken", "Human Resources"]),
                                        ("conv-bo", "Bo", [])):
        result = await engine.start(conversation, {"Guest.Name": name, "Guest.Id": name}, {})
        ids[f"{name}-first"] = result.session.id
        for answer in answers:
            result = await engine.handle(result.session, GuestInput(text=answer))
        ids[name] = result.session.id
    await AgentStore(docs).update(
        ALICE,
        lambda r: r.model_copy(update={"reference": {"conversation": {"id": "alice-chat"}},
                                       "presence": Presence.AVAILABLE}),
        default=lambda: AgentRecord(agent_id=ALICE, name="Alice"),
    )
    await docs.close()
    return ids


@pytest.fixture
async def store(tmp_path):
    db = tmp_path / "bot.sqlite3"
    ids = await _prepare_store(db)
    return db, ids


def store_cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, SWITCHBOARD_DB_PATH=str(db), SWITCHBOARD_CONFIG=str(DESK))


async def test_sessions_list(store):
    db, ids = store
    result = store_cli(db, "sessions", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Front Desk (front): 2 sessions"
    assert "Human Resources (hr): 1 session" in lines
    assert "IT Support (it): 0 sessions" in lines
    ada_front = next(line for line in lines if ids["Ada-first"] in line)
    assert "transferred" in ada_front and "-> hr" in ada_front and "guest Ada" in ada_front
    ada_hr = next(line for line in lines if ids["Ada"] in line)
    assert "open" in ada_hr and "intake/topic (waiting for the guest)" in ada_hr
    assert "hops 1" in ada_hr
    bo = next(line for line in lines if ids["Bo"] in line)
    assert "triage/need" in bo

    result = store_cli(db, "sessions", "list", "--state", "live", "--tenant", "front")
    assert result.stdout.splitlines() == [
        "Front Desk (front): 1 session in state live",
        next(line for line in result.stdout.splitlines() if ids["Bo"] in line),
    ]
    result = store_cli(db, "sessions", "list", "--state", "transferred")
    assert ids["Ada-first"] in result.stdout and ids["Bo"] not in result.stdout
    result = store_cli(db, "sessions", "list", "--tenant", "front", "--limit", "1")
    assert result.stdout.count("\n  ") == 1
    result = store_cli(db, "sessions", "list", "--state", "sleeping")
    assert result.returncode == 2
    assert "unknown state 'sleeping': use one of live, open" in result.stderr


async def test_sessions_show(store):
    db, ids = store
    result = store_cli(db, "sessions", "show", ids["Ada"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"Session {ids['Ada']}\n  tenant:       Human Resources (hr)")
    assert "Answers.Need" in out and "= badge broken" in out
    assert "Answers.Route" in out
    keys = {
        "Session.TransferredFrom.SessionId": ids["Ada-first"],
        "Session.TransferredFrom.TenantId": "front",
        "Session.TransferredFrom.TenantName": "Front Desk",
        "Session.TransferredTo.SessionId": ids["Ada"],
        "Session.TransferredTo.TenantId": "hr",
        "Session.TransferredTo.TenantName": "Human Resources",
    }
    for key, value in keys.items():
        assert any(line.split() == [key, "=", *value.split()] for line in out.splitlines()), key
    assert "Chain of transfers (1 hop):" in out
    assert (f"1. Front Desk (front) {ids['Ada-first']} -> Human Resources (hr) {ids['Ada']}"
            in out)
    # both sessions' transcripts, the earlier one first
    first = out.index(f"Transcript of {ids['Ada-first']} (Front Desk, transferred):")
    second = out.index(f"Transcript of {ids['Ada']} (Human Resources, open)  <- this session:")
    assert first < second
    assert "guest> badge broken" in out[first:second]
    assert "bot> Hello Ada, this is the Front Desk." in out[first:second]
    assert "bot> Moving you from Front Desk to Human Resources." in out[second:]
    assert "bot> Which topic?" in out[second:]

    # the sending session shows the same chain, and the six keys too
    result = store_cli(db, "sessions", "show", ids["Ada-first"], "--tenant", "front")
    assert ["Session.TransferredTo.TenantId", "=", "hr"] in [
        line.split() for line in result.stdout.splitlines()]
    assert f"Transcript of {ids['Ada']} (Human Resources, open):" in result.stdout

    result = store_cli(db, "sessions", "show", ids["Ada"], "--json")
    data = json.loads(result.stdout)
    assert data["session"]["tenant_id"] == "hr"
    assert data["chain"] == [ids["Ada-first"], ids["Ada"]]
    assert data["transcripts"][ids["Ada-first"]][0]["direction"] == "out"

    result = store_cli(db, "sessions", "show", "nope")
    assert result.returncode == 1
    assert "no session 'nope'" in result.stderr


async def test_sessions_show_takes_the_short_ids_it_prints(store):
    db, ids = store
    result = store_cli(db, "sessions", "show", ids["Ada"])
    chat_line = next(line for line in result.stdout.splitlines()
                     if line.startswith("Sessions of this chat: "))
    short = f"{ids['Ada-first'][:8]}.."
    assert short in chat_line
    for typed in (short, ids["Ada-first"][:8], ids["Ada-first"][:4]):
        result = store_cli(db, "sessions", "show", typed)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Session {ids['Ada-first']}\n")
    result = store_cli(db, "sessions", "show", ids["Ada-first"][:3])
    assert result.returncode == 1 and "give at least 4 characters" in result.stderr


async def test_sessions_show_marks_a_consults_private_lines(store):
    """An admin reading a transcript sees which lines were between agents only (a consult,
    pipelines/routing/consult.py) and which tier the accepting agent came from."""
    from pipelines.engine import Engine
    from pipelines.loader import load_config
    from pipelines.routing.consult import private
    from storage.embedded import EmbeddedStore
    from storage.models import Direction
    from storage.sessions import SessionStore

    db, ids = store
    config, _ = load_config(DESK)
    docs = EmbeddedStore(db)
    await docs.open()

    async def step(turn):
        turn.record(Direction.IN, f"agent:{ALICE}", visible=False, tier=2,
                    text="Alice accepted the chat (tier 2)")
        private(turn.record(Direction.IN, f"agent:{ALICE}", visible=False,
                            text="Can you take a payroll question?"))

    await Engine(config, SessionStore(docs)).act("hr", ids["Ada"], step)
    await docs.close()
    out = store_cli(db, "sessions", "show", ids["Ada"]).stdout
    [accepted] = [line for line in out.splitlines() if "accepted the chat" in line]
    assert accepted.endswith("> Alice accepted the chat (tier 2)")
    [aside] = [line for line in out.splitlines() if "payroll question" in line]
    assert aside.endswith("> [private] Can you take a payroll question?"), aside


async def test_sessions_show_an_ambiguous_short_id_lists_the_candidates(store):
    from storage.embedded import EmbeddedStore

    db, ids = store
    docs = EmbeddedStore(db)
    await docs.open()
    original = await docs.read("tenant_data", ("front", ids["Bo"]), ids["Bo"])
    # shares the first 6 characters and never the 7th (a random id may have a 0 there)
    twin_id = ids["Bo"][:6] + ("1" if ids["Bo"][6] == "0" else "0") + "0" * 25
    body = {k: v for k, v in original.body.items()
            if k not in ("id", "tenantId", "sessionId", "_etag")}
    await docs.create("tenant_data", ("front", twin_id), twin_id, {**body, "id": twin_id})
    await docs.close()
    result = store_cli(db, "sessions", "show", ids["Bo"][:6])
    assert result.returncode == 2
    assert f"'{ids['Bo'][:6]}' is the start of 2 session ids" in result.stderr
    assert ids["Bo"] in result.stderr and twin_id in result.stderr
    assert store_cli(db, "sessions", "show", ids["Bo"][:7]).returncode == 0


async def test_sessions_an_unknown_tenant_is_a_usage_error(store):
    db, _ = store
    for command in (["list"], ["show", "abcdef"]):
        result = store_cli(db, "sessions", *command, "--tenant", "nope")
        assert result.returncode == 2, result.stdout
        assert ("unknown tenant 'nope': the configuration has front, hr, it, and the store has "
                "no sessions of 'nope'") in result.stderr
        assert result.stdout == ""
    # a tenant known to the configuration but without sessions is simply empty
    result = store_cli(db, "sessions", "list", "--tenant", "it")
    assert result.returncode == 0 and result.stdout == "IT Support (it): 0 sessions\n"


def test_sessions_without_a_store(tmp_path):
    result = cli("sessions", "list", SWITCHBOARD_DB_PATH=str(tmp_path / "missing.sqlite3"),
                 SWITCHBOARD_CONFIG=str(DESK))
    assert result.returncode == 1
    assert f"no embedded store at {tmp_path / 'missing.sqlite3'}" in result.stderr
    assert not (tmp_path / "missing.sqlite3").exists()


async def test_agents_list(store):
    db, _ = store
    result = store_cli(db, "agents", "list")
    assert result.returncode == 1  # Bob cannot be reached
    lines = result.stdout.splitlines()
    assert "IT Support (it): 2 agents" in lines
    alice = next(line for line in lines if ALICE in line)
    bob = next(line for line in lines if BOB in line)
    assert alice.split()[:2] == ["reachable", "Alice"] and "available" in alice
    assert alice.endswith("skills: language:fr, vpn (3)")
    assert bob.split()[:2] == ["UNREACHABLE", "Bob"]
    assert "open a chat with it in Teams" in bob
    assert "Front Desk (front): 0 agents" in lines
    assert lines[-1] == "1 agent cannot be reached"

    result = store_cli(db, "agents", "list", "--tenant", "hr")
    assert result.returncode == 0
    result = store_cli(db, "agents", "list", "--tenant", "nope")
    assert result.returncode == 2 and "unknown tenant 'nope'" in result.stderr


# -- manifest --------------------------------------------------------------------------


PACKAGE_ENV = {
    "MICROSOFT_APP_ID": BOT_ID,
    "SWITCHBOARD_DEVELOPER_NAME": "Contoso IT",
    "SWITCHBOARD_DEVELOPER_URL": "https://help.contoso.com",
    "SWITCHBOARD_PRIVACY_URL": "https://help.contoso.com/privacy",
    "SWITCHBOARD_TERMS_URL": "https://help.contoso.com/terms",
    "SWITCHBOARD_BOT_DOMAIN": "bot.contoso.com",
}


def test_manifest_build_from_settings_and_arguments(tmp_path):
    result = cli("manifest", "build", "--version", "1.4.0", "--name", "Contoso Desk",
                 cwd=tmp_path, **PACKAGE_ENV, SWITCHBOARD_APP_VERSION="1.0.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"wrote appPackage.zip: Contoso Desk 1.4.0 (app id {BOT_ID}, manifest v1.30)")
    with zipfile.ZipFile(tmp_path / "appPackage.zip") as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["version"] == "1.4.0"  # the argument wins over the variable
    assert manifest["bots"][0]["botId"] == BOT_ID
    assert manifest["developer"]["name"] == "Contoso IT"
    result = cli("manifest", "check", str(tmp_path / "appPackage.zip"))
    assert result.returncode == 0 and "valid: Contoso Desk 1.4.0" in result.stdout


def test_manifest_build_reports_every_mistake(tmp_path):
    result = cli("manifest", "build", "--app-id", "nope", "--version", "1", cwd=tmp_path,
                 SWITCHBOARD_DEVELOPER_URL="help.contoso.com")
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    expected = [
        "error: manifest.json > id: 'nope' must be a GUID",
        "error: manifest.json > bots[0].botId: is missing: Teams requires it (set it with "
        "--bot-id or MICROSOFT_APP_ID)",
        "error: manifest.json > developer.name: is missing",
        "error: manifest.json > developer.websiteUrl: 'help.contoso.com' must be a web address",
        "error: manifest.json > version: '1' is not a version Teams accepts",
    ]
    for line in expected:
        assert any(e.startswith(line) for e in errors), (line, errors)
    assert errors[-1].endswith("problems: no package written")
    assert not (tmp_path / "appPackage.zip").exists()
