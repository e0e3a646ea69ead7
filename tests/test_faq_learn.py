"""`switchboard-admin faq learn`: a reported question written into the knowledge base.

The loop an admin runs (docs/faq.md, "Learning from use"): guests ask, `faq report` lists what
found nothing, `faq learn` writes it where it belongs, and the bot's next start answers it. Then
what must hold when the write is repeated, refused, raced or killed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.loader import load_config
from storage.embedded import EmbeddedStore
from tests import teams
from tests.harness import BotServer, Chat, settings_for
from tests.test_cli import EXAMPLE, cli, env
from tests.test_faq_report import FAQ_PROMPT
from tests.test_faq_report import ask as ask_in

GLOBE = "the globe icon by the clock, what do I put in it"  # no card; the VPN article answers it
DOG = "can I book annual leave for my dog"  # the annual-leave card; no article answers it
VPN_TITLE = "Connect to the VPN from home"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The example configuration and its knowledge base, copied: the config file's path."""
    shutil.copytree(EXAMPLE.parent, tmp_path / "config")
    return tmp_path / "config" / EXAMPLE.name


def learn(config: Path, question: str, *options: str) -> subprocess.CompletedProcess[str]:
    # after `--`, a question may start with a dash
    return cli("faq", "learn", *options, "--config", str(config), "--", question)


async def ask(server: BotServer, connector, name: str, question: str) -> str:
    return await ask_in(Chat(teams.TeamsUser.make(name), server, connector), question)


async def test_reported_learnt_and_answered_at_the_next_start(copy: Path, tmp_path: Path,
                                                               connector) -> None:
    db = tmp_path / "bot.sqlite3"
    settings = settings_for(tmp_path, config_path=str(copy))
    server = await BotServer(settings, docs=EmbeddedStore(db)).start()
    try:
        assert FAQ_PROMPT not in await ask(server, connector, "Guest One", GLOBE)
        assert "Book annual leave" in await ask(server, connector, "Guest Two", DOG)
    finally:
        await server.stop()
    reported = cli("faq", "report", "--db", str(db), "--config", str(copy))
    assert reported.returncode == 0 and f"      - {GLOBE}" in reported.stdout

    it_before = (copy.parent / "kb" / "it.yaml").read_text("utf-8")
    added = learn(copy, GLOBE, "--article", "it-vpn-connect")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added to article 'it-vpn-connect' in it.yaml (")
    dog = learn(copy, DOG, "--out-of-scope")
    assert dog.returncode == 0 and "the out-of-scope list in out_of_scope.yaml" in dog.stdout
    # the file keeps every line, comments included, and gains one under the article's questions
    it_after = (copy.parent / "kb" / "it.yaml").read_text("utf-8")
    before, after = it_before.splitlines(), it_after.splitlines()
    [new] = [i for i, line in enumerate(after) if GLOBE in line]
    assert after[:new] + after[new + 1:] == before and after[new] == f'      - "{GLOBE}"'
    assert after[0].startswith("# IT knowledge base")

    server = await BotServer(settings, docs=EmbeddedStore(db)).start()
    try:
        shown = await ask(server, connector, "Guest Three", GLOBE)
        titles = [a.title for a in load_config(copy)[0].knowledge_base("service-desk").articles]
        on_card = sorted((shown.index(t), t) for t in titles if t in shown)
        assert FAQ_PROMPT in shown and on_card[0][1] == VPN_TITLE
        assert FAQ_PROMPT not in await ask(server, connector, "Guest Four", DOG)
    finally:
        await server.stop()


def test_again_is_a_no_op_and_mistakes_write_nothing(copy: Path, tmp_path: Path) -> None:
    kb = copy.parent / "kb"
    assert learn(copy, GLOBE, "--article", "it-vpn-connect").returncode == 0
    files = {p.name: p.read_bytes() for p in kb.iterdir()}

    again = learn(copy, f"  {GLOBE.upper()} ", "--article", "it-vpn-connect")
    assert again.returncode == 0 and again.stdout.startswith(
        "already in article 'it-vpn-connect' (it.yaml); nothing written")
    elsewhere = learn(copy, GLOBE, "--out-of-scope")
    assert elsewhere.returncode == 1 and (
        f"{GLOBE!r} is already in article 'it-vpn-connect' (kb/it.yaml): a question belongs "
        "to one place; remove it there first") in elsewhere.stderr
    unknown = learn(copy, "x y z", "--article", "it-vpn")
    assert unknown.returncode == 1 and "tenant 'service-desk' has no article 'it-vpn'" in (
        unknown.stderr) and "did you mean it-vpn-connect, it-vpn-slow?" in unknown.stderr
    assert learn(copy, "x y z", "--tenant", "finance", "--out-of-scope").returncode == 1
    hr = learn(copy, "x y z", "--tenant", "hr", "--out-of-scope")
    assert hr.returncode == 1 and "tenant 'hr' has no `knowledge_base`" in hr.stderr
    for flags in ([], ["--out-of-scope", "--article", "it-vpn-connect"]):
        neither = learn(copy, "x y z", *flags)
        assert neither.returncode == 2 and "--article ID" in neither.stderr
    for question in ("   ", "a" * 301):
        bad = learn(copy, question, "--out-of-scope")
        assert bad.returncode == 1 and "the question must be 1 to 300 characters" in bad.stderr
    assert {p.name: p.read_bytes() for p in kb.iterdir()} == files
    # a configuration with problems is not written to: the admin fixes it first
    (kb / "legal.yaml").write_text("articles: [{id: x}]\n", "utf-8")
    broken = learn(copy, "x y z", "--out-of-scope")
    assert broken.returncode == 1 and "the configuration has problems; fix them first" in (
        broken.stderr) and "Traceback" not in broken.stderr
    assert (kb / "out_of_scope.yaml").read_bytes() == files["out_of_scope.yaml"]


ODD = ['say "hi": now', "back\\slash \\n", "# not a comment", "- dash first", "null", "yes",
       "[brackets] {braces} &anchor *alias %percent @at `tick` | > !tag",
       "emoji 🙂, ünïcödé, עברית", "'single' quotes", "tab\tand\nnewline  and   spaces"]


def test_odd_questions_are_written_as_typed(copy: Path) -> None:
    for question in ODD:
        written = learn(copy, question, "--article", "it-vpn-connect")
        assert written.returncode == 0, (question, written.stderr)
    article = load_config(copy)[0].knowledge_base("service-desk").article("it-vpn-connect")
    assert article is not None
    assert article.questions[-len(ODD):] == [" ".join(q.split()) for q in ODD]
    typed = learn(copy, r"ring the \x07 bell", "--out-of-scope")
    assert typed.returncode == 0, typed.stderr  # typed as text: a backslash, then x07
    control = learn(copy, "ring the \x07 bell", "--out-of-scope")
    assert control.returncode == 1 and "control character" in control.stderr


def two_tenant_config(tmp_path: Path) -> Path:
    """Two tenants with knowledge bases: one JSON file; one YAML file without a list."""
    (tmp_path / "it.json").write_text(json.dumps({"articles": [
        {"id": "vpn", "title": "Connect to the VPN", "answer": "Open GlobalProtect."}]}), "utf-8")
    (tmp_path / "hr.yaml").write_text(
        "# HR's articles\narticles:\n  - id: leave\n    title: Book leave\n"
        "    answer: Use the HR portal.  # the portal\n", "utf-8")
    config = tmp_path / "helpdesk.yaml"
    config.write_text(textwrap.dedent("""\
        primary_tenant: it
        tenants:
          - id: it
            name: IT
            primary_pipeline: main
            knowledge_base: it.json
            pipelines:
              - id: main
                stages:
                  - {key: faq, action: faq, question_from: Guest.Name, next: done}
                  - {key: done, action: end}
          - id: hr
            name: HR
            primary_pipeline: main
            knowledge_base: hr.yaml
            pipelines:
              - id: main
                stages:
                  - {key: done, action: end}
        """), "utf-8")
    return config


def test_a_json_file_and_a_file_without_a_list(tmp_path: Path) -> None:
    config = two_tenant_config(tmp_path)
    loaded, _ = load_config(config)  # the configuration is valid as written
    which = learn(config, "vpn from the train", "--article", "vpn")
    assert which.returncode == 2 and "say which tenant with --tenant: it, hr" in which.stderr
    assert learn(config, "vpn from the train", "--article", "vpn", "--tenant", "it").returncode == 0
    assert json.loads((tmp_path / "it.json").read_text("utf-8"))["articles"][0]["questions"] == [
        "vpn from the train"]
    canteen = learn(config, "canteen: what's on today?", "--out-of-scope", "--tenant", "hr")
    assert canteen.returncode == 0, canteen.stderr
    hr = (tmp_path / "hr.yaml").read_text("utf-8")
    assert hr.startswith("# HR's articles\n") and "# the portal" in hr
    assert hr.endswith('out_of_scope:\n  - "canteen: what\'s on today?"\n')
    loaded, _ = load_config(config)
    assert loaded.knowledge_base("hr").out_of_scope == ["canteen: what's on today?"]
    assert loaded.knowledge_base("it").article("vpn").questions == ["vpn from the train"]


# a run of the command in its own process, killed (SIGKILL) at one step of the write
KILLED = """
import os, signal, sys
from admin import faq_learn
step = sys.argv[1]
real_fsync, real_replace, calls = os.fsync, os.replace, []
def fsync(fd):
    calls.append(fd)
    if step == f"fsync{len(calls)}":
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)
def replace(a, b):
    if step == "replace":
        os.kill(os.getpid(), signal.SIGKILL)
    if step == "full disk":
        raise OSError(28, "No space left on device")
    real_replace(a, b)
faq_learn.os.fsync, faq_learn.os.replace = fsync, replace
from admin.cli import app
app(["faq", "learn", "killed mid write", "--out-of-scope", "--config", sys.argv[2]])
"""


@pytest.mark.parametrize("step", ["fsync1", "replace", "fsync2"])
def test_a_learn_killed_at_each_step_leaves_the_old_file_or_the_new(copy: Path,
                                                                       step: str) -> None:
    listed = copy.parent / "kb" / "out_of_scope.yaml"
    before = listed.read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILLED, step, str(copy)], env=env(),
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    renamed = step == "fsync2"  # killed after the rename, syncing the folder
    after = listed.read_bytes()
    assert after == before if not renamed else after == before + b'  - "killed mid write"\n'
    assert load_config(copy)[0].knowledge_base("service-desk") is not None
    # the next run is not stuck on the dead one's lock, and clears its half-written file
    again = learn(copy, "killed mid write", "--out-of-scope")
    assert again.returncode == 0, again.stderr
    assert ("already in" in again.stdout) == renamed
    assert listed.read_bytes().count(b"killed mid write") == 1
    assert not list(listed.parent.glob(".out_of_scope.yaml.*.tmp"))


def test_a_write_that_fails_says_so_and_changes_nothing(copy: Path) -> None:
    listed = copy.parent / "kb" / "out_of_scope.yaml"
    before = listed.read_bytes()
    failed = subprocess.run([sys.executable, "-c", KILLED, "full disk", str(copy)], env=env(),
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "nothing written: cannot write the knowledge base" in failed.stderr
    assert "No space left on device" in failed.stderr
    assert listed.read_bytes() == before
    assert not list(listed.parent.glob(".out_of_scope.yaml.*.tmp"))


# a run of the command whose read of the files lingers, so that runs started together overlap
SLOW = """
import sys, time
from admin import faq_learn
read = faq_learn._read
def slow(path):
    found = read(path)
    time.sleep(0.3)
    return found
faq_learn._read = slow
from admin.cli import app
app(["faq", "learn", sys.argv[1], "--article", "it-vpn-connect", "--config", sys.argv[2]])
"""


def test_admins_learning_at_once_lose_nothing(copy: Path) -> None:
    questions = [f"vpn question number {n} from a different admin" for n in range(4)]
    runs = [subprocess.Popen([sys.executable, "-c", SLOW, q, str(copy)], env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for q in questions]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    article = load_config(copy)[0].knowledge_base("service-desk").article("it-vpn-connect")
    assert article is not None and set(questions) <= set(article.questions)
