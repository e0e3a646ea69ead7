"""`http_request` for the admin: `config validate` finds a host missing from the allowlist and
secrets written in the config; `simulate` shows the call without making it, `--live` makes it;
the bot refuses to start without a secret a stage needs. All run as an admin runs them:
`switchboard-admin` and `app.py` as subprocesses, settings in the environment."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_cli import ROOT, cli, env
from tests.ticket_desk import TicketDesk

TICKETS = ROOT / "tests" / "e2e_configs" / "tickets.yaml"
SECRET = "Basic dGlja2V0czpzM2NyZXQtdmFsdWU="


def config_with(tmp_path: Path, *stages: str, allowlist: str = "[tickets.example.com]") -> Path:
    """A config whose pipeline has these http_request stages (`ticket`, `ticket2`...)."""
    parts = []
    for n, stage in enumerate(stages, 1):
        key = "ticket" if n == 1 else f"ticket{n}"
        parts.append(f"- key: {key}\n  action: http_request\n"
                     + textwrap.indent(textwrap.dedent(stage), "  ")
                     + "  next: done\n  on_error: done\n")
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent("""\
        primary_tenant: hr
        http_allowlist: {allowlist}
        tenants:
          - id: hr
            name: HR
            primary_pipeline: p
            pipelines:
              - id: p
                stages:
        """).format(allowlist=allowlist)
        + textwrap.indent("".join(parts) + "- {key: done, action: end}\n", " " * 10))
    return path


def errors_of(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    return "\n".join(line for line in result.stderr.splitlines() if line.startswith("error: "))


def test_validate_passes_a_good_stage(tmp_path):
    config = config_with(tmp_path, """\
        url: https://tickets.example.com/api/now/table/incident?sysparm_fields=number
        headers: {Accept: application/json}
        header_env: {Authorization: SNOW_AUTH}
        body: {short_description: "${Guest.Name}"}
        store_as: {Answers.Ticket: result.number}
        """)
    result = cli("config", "validate", str(config), SNOW_AUTH=SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # without the secret here: a warning, since the bot would refuse to start
    result = cli("config", "validate", str(config))
    assert result.returncode == 0
    assert "SNOW_AUTH is not set" in result.stderr and "would refuse to start" in result.stderr


def test_validate_finds_a_host_missing_from_the_allowlist(tmp_path):
    config = config_with(tmp_path, "url: https://tickets.example.org/api/now/table/incident\n")
    text = errors_of(cli("config", "validate", str(config)))
    assert f"{config} > tenant 'hr' > pipeline 'p' > stage 'ticket'" in text
    assert "host tickets.example.org is not on `http_allowlist`: add it there" in text
    # a URL from the environment is checked the same way where it is set
    config = config_with(tmp_path, "url_env: SNOW_URL\npath: /api/now/table/incident\n")
    result = cli("config", "validate", str(config), SNOW_URL="https://evil.example.net")
    assert "SNOW_URL='https://evil.example.net': host evil.example.net is not on" in result.stderr


SECRETS = [
    ("url: https://tickets.example.com/x\nheaders: {Authorization: Basic dXNlcjpwYXNz}\n",
     "header 'Authorization' carries a secret and is written in the config"),
    ("url: https://tickets.example.com/x\nheaders: {X-API-Key: abc123}\n",
     "header 'X-API-Key' carries a secret"),
    ("url: https://tickets.example.com/x\nheaders: {X-Trace: 'Bearer eyJhbGciOiJIUzI1NiJ9'}\n",
     "header 'X-Trace' holds what looks like a credential"),
    ("url: https://admin:hunter2@tickets.example.com/x\n",
     "a user name or password in the URL"),
    ("url: https://tickets.example.com/x?api_key=abc123\n",
     "the query parameter 'api_key' looks like a secret written in the config"),
    ("url_env: SNOW_URL\npath: /x?token=abc\n",
     "the query parameter 'token' looks like a secret"),
]


def test_validate_refuses_secrets_written_in_the_config(tmp_path):
    config = config_with(tmp_path, *(stage for stage, _ in SECRETS))
    lines = errors_of(cli("config", "validate", str(config))).splitlines()
    for n, (_, says) in enumerate(SECRETS, 1):
        key = "ticket" if n == 1 else f"ticket{n}"
        [line] = [line for line in lines if f"stage {key!r}:" in line]
        assert says in line and "header_env" in line, line  # what is wrong, and the fix


MISTAKES = [
    ("url: https://169.254.169.254/latest/meta-data/\n",
     "169.254.169.254 is the cloud metadata service: the bot never calls it"),
    ("url: https://[fe80::1]/x\n", "fe80::1 is a link-local address"),
    ("url: http://tickets.example.com/x\n", "use https:// (plain http only for loopback)"),
    ("url: https://${Answers.Host}/x\n", "${...} in the scheme, host or port"),
    ("url: https://tickets.example.com/x\npath: /y\n", "`path` goes with `url_env`"),
    ("url: https://tickets.example.com/x\nheaders: {Idempotency-Key: x}\n",
     "header 'Idempotency-Key' is set by the bot"),
    ("url: https://tickets.example.com/x\nstore_as: {Session.Id: result.sys_id}\n",
     "'Session.Id' is the bot's own metadata"),
    ("method: GET\nurl: https://tickets.example.com/x\nbody: {a: 1}\n",
     "a GET request has no `body`"),
    ("url: https://tickets.example.com/${Answers.Nope}\n", "unknown metadata name 'Answers.Nope'"),
]


def test_validate_finds_the_other_mistakes_all_at_once(tmp_path):
    config = config_with(tmp_path, *(stage for stage, _ in MISTAKES))
    lines = errors_of(cli("config", "validate", str(config))).splitlines()
    for n, (_, says) in enumerate(MISTAKES, 1):
        key = "ticket" if n == 1 else f"ticket{n}"
        assert any(f"stage {key!r}:" in line and says in line for line in lines), (says, lines)
    config = config_with(tmp_path, "url: https://tickets.example.com/x\n",
                         allowlist="[tickets.example.com, 169.254.169.254]")
    text = errors_of(cli("config", "validate", str(config)))
    assert "`http_allowlist`: 169.254.169.254 is the cloud metadata service" in text


@pytest.fixture
async def desk():
    desk = await TicketDesk(auth=SECRET).start()
    yield desk
    await desk.stop()


async def simulate(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    # in a thread: the local ServiceNow answers on this test's event loop meanwhile
    return await asyncio.to_thread(cli, "simulate", str(TICKETS), "--guest-name", "Ada",
                                   *args, input="My payslip ${Guest.Name}\nDone\n", **variables)


async def test_simulate_shows_the_call_it_would_make_without_making_it(desk):
    result = await simulate(TICKETS_URL=desk.url, TICKETS_AUTH=SECRET)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(http_request: the bot would call)" in out
    assert f"POST {desk.url}/api/now/table/incident?sysparm_fields=number,sys_id" in out
    assert "Authorization: (the value of $TICKETS_AUTH)" in out and SECRET not in out
    assert "Idempotency-Key: " in out
    assert '"description": "My payslip ${Guest.Name}"' in out
    assert "dry run: not sent, --live sends it" in out
    assert "Anything else?" in out
    assert desk.requests == []


async def test_simulate_live_makes_the_call(desk):
    result = await simulate("--live", TICKETS_URL=desk.url, TICKETS_AUTH=SECRET)
    assert result.returncode == 0, result.stderr
    assert "(http_request: the bot calls)" in result.stdout
    assert "(http_request: done, HTTP 201, 1 attempt" in result.stdout
    assert "Ticket INC0010001 is open." in result.stdout
    [post] = desk.posts()
    assert post.headers["Authorization"] == SECRET
    assert post.body["description"] == "My payslip ${Guest.Name}"


async def test_simulate_live_without_the_secret_refuses(desk):
    result = await simulate("--live", TICKETS_URL=desk.url)
    assert result.returncode == 1
    assert "TICKETS_AUTH is not set" in result.stderr and "leave out --live" in result.stderr
    assert desk.requests == []


def test_the_bot_refuses_to_start_without_a_secret_a_stage_needs(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    variables = {"SWITCHBOARD_CONFIG": str(TICKETS), "SWITCHBOARD_PORT": port,
                 "SWITCHBOARD_DB_PATH": str(tmp_path / "bot.sqlite3"),
                 "TICKETS_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=ROOT,
                            env=env(**variables), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "stage 'ticket': TICKETS_AUTH is not set" in result.stderr
    assert not (tmp_path / "bot.sqlite3").exists()
    result = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=ROOT,
                            env=env(**{**variables, "TICKETS_URL": "https://evil.example.net",
                                       "TICKETS_AUTH": SECRET}),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "TICKETS_URL='https://evil.example.net': host evil.example.net is not on" in \
        result.stderr
