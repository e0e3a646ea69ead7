"""botbuilder `Storage` on Switchboard's store (storage/botstate.py), on both backends.

botbuilder's own `StorageBaseTests` (botbuilder-testing 4.17.1, installed by scripts/setup with
--no-deps) run unchanged; then what they do not cover: class-valued state as in Microsoft's
state-management sample, the allowlist that keeps stored data from naming classes to build,
and the README's example.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import sys
from pathlib import Path

import pytest
from botbuilder.core import ConversationState, MessageFactory, StoreItem, TurnContext, UserState
from botbuilder.core.adapters import TestAdapter
from botbuilder.dialogs import DialogState
from botbuilder.dialogs.choices import Choice, ListStyle
from botbuilder.dialogs.prompts import PromptOptions
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount
from botbuilder.testing import StorageBaseTests
from botframework.connector import Channels
from pydantic import BaseModel

from storage.botstate import (
    DocumentBotStorage,
    NotAllowedClass,
    allowed_class_names,
    encode_key,
    register_state_class,
)
from storage.documents import DocumentStore

ROOT = Path(__file__).resolve().parent.parent

BASE_TESTS = [
    "return_empty_object_when_reading_unknown_key",
    "handle_null_keys_when_reading",
    "handle_null_keys_when_writing",
    "does_not_raise_when_writing_no_items",
    "create_object",
    "handle_crazy_keys",
    "update_object",
    "delete_object",
    "delete_unknown_object",
    "perform_batch_operations",
    "proceeds_through_waterfall",
]


def test_the_base_tests_are_all_of_them():
    found = sorted(n for n, v in vars(StorageBaseTests).items() if isinstance(v, staticmethod))
    assert found == sorted(BASE_TESTS)


@pytest.mark.parametrize("name", BASE_TESTS)
async def test_botbuilder_storage_base_tests(docs, name):
    assert await getattr(StorageBaseTests, name)(DocumentBotStorage(docs)) is True


# -- class-valued state: Microsoft's state-management sample -------------------------------------


@register_state_class
class UserProfile:
    def __init__(self, name: str | None = None):
        self.name = name


@register_state_class
class ConversationData:
    def __init__(self, timestamp: str | None = None, channel_id: str | None = None,
                 prompted_for_user_name: bool = False):
        self.timestamp = timestamp
        self.channel_id = channel_id
        self.prompted_for_user_name = prompted_for_user_name


def state_management_bot(storage: DocumentBotStorage):
    """The sample's logic (python/45.state-management), compressed."""
    conversation_state, user_state = ConversationState(storage), UserState(storage)
    conversation_data = conversation_state.create_property("ConversationData")
    user_profile = user_state.create_property("UserProfile")

    async def logic(turn: TurnContext) -> None:
        profile = await user_profile.get(turn, UserProfile)
        data = await conversation_data.get(turn, ConversationData)
        if profile.name is None:
            if data.prompted_for_user_name:
                profile.name = turn.activity.text
                await turn.send_activity(f"Thanks {profile.name}.")
                data.prompted_for_user_name = False
            else:
                await turn.send_activity("What is your name?")
                data.prompted_for_user_name = True
        else:
            data.timestamp = "2026-01-21T10:00:00Z"
            data.channel_id = turn.activity.channel_id
            await turn.send_activity(f"{profile.name} sent: {turn.activity.text}")
        await conversation_state.save_changes(turn)
        await user_state.save_changes(turn)

    return logic


async def test_class_valued_state_of_the_state_management_sample(docs):
    first = TestAdapter(state_management_bot(DocumentBotStorage(docs)))
    step = await (await first.test("hi", "What is your name?")).test("Ada", "Thanks Ada.")
    await step.test("hello", "Ada sent: hello")

    # another bot instance over the same store reads the same objects back
    again = TestAdapter(state_management_bot(DocumentBotStorage(docs)))
    await again.test("still there?", "Ada sent: still there?")

    key = "%s/users/User1" % Channels.test  # UserState's key, as botbuilder formats it  # noqa: UP031
    profile = (await DocumentBotStorage(docs).read([key]))[key]["UserProfile"]
    assert isinstance(profile, UserProfile) and profile.name == "Ada"


async def test_dialog_state_comes_back_as_botbuilder_objects(docs):
    storage = DocumentBotStorage(docs)
    prompt = PromptOptions(
        prompt=MessageFactory.text("Pick one"),
        choices=[Choice("IT"), Choice("HR")],
        style=ListStyle.hero_card,
        number_of_attempts=2,
    )
    state = DialogState()
    await storage.write({"c": {"dialogState": state, "options": prompt}})
    got = (await storage.read(["c"]))["c"]
    assert isinstance(got["dialogState"], DialogState) and got["dialogState"].dialog_stack == []
    options = got["options"]
    assert isinstance(options, PromptOptions) and options.number_of_attempts == 2
    assert isinstance(options.prompt, Activity) and options.prompt.text == "Pick one"
    assert [c.value for c in options.choices] == ["IT", "HR"]
    assert options.style is ListStyle.hero_card


async def test_plain_values_round_trip_exactly(docs):
    storage = DocumentBotStorage(docs)
    when = dt.datetime(2026, 1, 21, 10, 0, tzinfo=dt.UTC)
    value = {
        "tuple": (1, "a"),
        "set": {3},
        "frozen": frozenset({"x"}),
        "int keys": {1: "one", 2: "two"},
        "$schema": "a key that starts with $",
        "card": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "$when": "x"},
        "when": when,
        "day": when.date(),
        "wait": dt.timedelta(minutes=5),
        "raw": b"\x00\xff",
        "nan": float("inf"),
        "nested": [{"deep": [None, True, 1.5]}],
    }
    await storage.write({"k": dict(value)})
    got = (await storage.read(["k"]))["k"]
    assert got.pop("e_tag")
    assert got == value


# -- the allowlist ---------------------------------------------------------------------------------


class NotRegistered:
    def __init__(self):
        self.value = 1


class Colour(enum.Enum):
    RED = "red"


class Answer(BaseModel):
    question: str
    value: int


@register_state_class
class Rated(BaseModel):
    question: str
    value: int


async def test_an_unregistered_class_is_refused_when_written_and_nothing_is_written(docs):
    storage = DocumentBotStorage(docs)
    for bad in (NotRegistered(), Colour.RED, Answer(question="q", value=1)):
        with pytest.raises(NotAllowedClass, match="register_state_class") as err:
            await storage.write({"first": {"v": 1}, "second": {"x": [bad]}})
        assert "second.x[0]" in str(err.value)
        assert await storage.read(["first", "second"]) == {}


async def test_a_registered_pydantic_model_is_validated_when_read(docs):
    storage = DocumentBotStorage(docs)
    await storage.write({"k": {"answer": Rated(question="q", value=1)}})
    assert (await storage.read(["k"]))["k"]["answer"] == Rated(question="q", value=1)
    # what is stored is validated when read: a tampered value is refused, not built
    doc_id = encode_key("k")
    await docs.open_container("botstate")  # raw documents: the container first
    doc = await docs.read("botstate", doc_id, doc_id)
    body = {k: v for k, v in doc.body.items() if k not in ("id", "stateKey", "_etag")}
    body["document"]["answer"]["$state"]["value"] = "not a number"
    await docs.upsert("botstate", doc_id, doc_id, body)
    with pytest.raises(ValueError, match="botstate key 'k'"):
        await storage.read(["k"])


async def test_a_registered_object_at_the_top_level_round_trips(docs):
    """A pydantic model cannot take an e_tag attribute: it is stored and read all the same."""
    storage = DocumentBotStorage(docs)
    await storage.write({"k": Rated(question="q", value=2), "c": Choice("IT")})
    got = await storage.read(["k", "c"])
    assert got["k"] == Rated(question="q", value=2)
    assert isinstance(got["c"], Choice) and got["c"].value == "IT" and got["c"].e_tag


def test_register_state_class_refuses_what_it_cannot_keep():
    import os

    with pytest.raises(TypeError, match="takes a class"):
        register_state_class(os.system)
    with pytest.raises(TypeError, match="built-in"):
        register_state_class(dict)

    class Other:
        pass

    with pytest.raises(ValueError, match="already taken"):
        register_state_class(Other, "botbuilder.dialogs.DialogState")
    names = allowed_class_names()
    assert "botbuilder.dialogs.DialogState" in names and "botbuilder.schema.Activity" in names
    assert "botbuilder.core.StoreItem" in names
    assert not any(n.startswith(("os.", "subprocess.", "builtins.")) for n in names)


async def plant(docs: DocumentStore, key: str, document: object) -> None:
    """A document written straight into the store: what an attacker with database access does."""
    doc_id = encode_key(key)
    await docs.open_container("botstate")
    await docs.upsert("botstate", doc_id, doc_id, {"key": key, "format": 2, "document": document})


CANARY = "tests.botstate_canary"  # importing it would write a file (tests/botstate_canary.py)


@pytest.mark.parametrize(
    "document",
    [
        {"$type": "subprocess.Popen", "$state": {"args": ["touch", "{marker}"]}},
        {"$type": "os.system", "$state": {}},
        {"x": [{"$type": CANARY + ".Boom", "$state": {"path": "{marker}"}}]},
        {"$enum": "os.system", "$value": "touch {marker}"},
        {"$type": "botbuilder.core.TurnContext", "$state": {}},  # botbuilder's, not on the list
    ],
)
async def test_stored_data_naming_a_class_off_the_allowlist_builds_nothing(docs, tmp_path,
                                                                            document):
    marker = tmp_path / "ran"
    planted = _fill(document, str(marker))
    assert CANARY not in sys.modules
    await plant(docs, "conversation/1", planted)
    await DocumentBotStorage(docs).write({"other": {"fine": True}})

    with pytest.raises(NotAllowedClass, match="not on the allowlist: nothing was built") as err:
        await DocumentBotStorage(docs).read(["other", "conversation/1"])
    assert "conversation/1" in str(err.value)
    assert not marker.exists()
    assert CANARY not in sys.modules
    # the other keys are still readable on their own
    assert (await DocumentBotStorage(docs).read(["other"]))["other"]["fine"] is True


async def test_a_jsonpickle_document_is_inert_data(docs, tmp_path):
    """What botbuilder-azure writes (jsonpickle) is plain data here: never unpickled."""
    marker = tmp_path / "ran"
    payload = {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [f"touch {marker}"]}]}
    await plant(docs, "k", {"state": payload})
    got = (await DocumentBotStorage(docs).read(["k"]))["k"]
    assert got["state"] == payload
    assert not marker.exists()


async def test_a_malformed_tag_is_an_error_not_a_guess(docs):
    await plant(docs, "k", {"$type": "botbuilder.dialogs.DialogState"})
    with pytest.raises(ValueError, match=r"unknown tag|malformed"):
        await DocumentBotStorage(docs).read(["k"])


async def test_documents_of_the_first_encoding_still_read(docs):
    doc_id = encode_key("old")
    await docs.open_container("botstate")
    await docs.upsert("botstate", doc_id, doc_id,
                      {"key": "old", "kind": "store_item", "document": {"name": "ada"}})
    got = (await DocumentBotStorage(docs).read(["old"]))["old"]
    assert isinstance(got, StoreItem) and got.name == "ada" and got.e_tag


def _fill(node: object, marker: str) -> object:
    if isinstance(node, str):
        return node.replace("{marker}", marker)
    if isinstance(node, list):
        return [_fill(v, marker) for v in node]
    if isinstance(node, dict):
        return {k: _fill(v, marker) for k, v in node.items()}
    return node


# -- the README's example ---------------------------------------------------------------------


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(# botbuilder state in Switchboard's store.*?)```", text, re.S)
    assert match, "README.md has no botbuilder state example"
    return match.group(1)


async def test_the_readme_example_keeps_state_and_dialogs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    store = namespace["store"]
    await store.open()
    try:
        bot_logic = namespace["on_turn"]
        template = Activity(channel_id="msteams", service_url="https://test.invalid",
                            conversation=ConversationAccount(id="19:chat"),
                            from_property=ChannelAccount(id="guest"),
                            recipient=ChannelAccount(id="bot"))
        adapter = TestAdapter(bot_logic, template_or_conversation=template)
        step = await adapter.test("hi", "What is your name?")
        step = await step.test("Ada", "Hello Ada. Which department?")
        await step.test("HR", "Ada, HR it is (1 visit).")
    finally:
        await store.close()
    # a new process (a new store object on the same file) sees the profile
    store = namespace["EmbeddedStore"]("data/botstate.sqlite3")
    await store.open()
    try:
        data = await namespace["DocumentBotStorage"](store).read(["msteams/users/guest"])
        profile = data["msteams/users/guest"]["profile"]
        assert type(profile).__name__ == "Profile" and profile.name == "Ada"
        assert profile.visits == 1
    finally:
        await store.close()
