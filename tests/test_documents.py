"""One suite for the document store, run against both backends.

`store` is parametrized: "embedded" (SQLite file) and "cosmos" (CosmosStore on the local
Cosmos DB server started by tests/fixtures/cosmos.py). Every test that takes `store` must hold
on both; where the local server cannot show a real-Cosmos behaviour, the test says so.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import web
from botbuilder.core import ConversationState, StoreItem, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.botstate import DocumentBotStorage, decode_key, encode_key
from storage.cosmos import CosmosStore
from storage.documents import (
    AlreadyExists,
    DocumentStore,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
    WriteOp,
)
from storage.embedded import EmbeddedStore
from storage.layout import Container, Index, Layout

# the suite's own containers: the primitives are the same whatever the app keeps in them
T = "docs"  # partition field: tenantId
TREE = "tree"  # hierarchical: tenantId, then sessionId
SUITE = Layout((
    Container(T, ("tenantId",), indexes=(Index(("state", "n")),), ttl=True),
    Container(TREE, ("tenantId", "sessionId"), indexes=(Index(("type", "seq")),), ttl=True),
    Container("plain", ("p",)),
    Container("lazy", ("k",), lazy=True),
))


@pytest.fixture
async def embedded_store(tmp_path):
    store = EmbeddedStore(tmp_path / "db.sqlite3", layout=SUITE)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def suite_cosmos_store(cosmos_server):
    import uuid

    store = CosmosStore(cosmos_server.endpoint, f"suite-{uuid.uuid4().hex}",
                        key=cosmos_server.key, connection_verify=False, max_retry_seconds=10.0,
                        layout=SUITE)
    await store.open()
    try:
        yield store
    finally:
        try:
            await store.delete_database()
        finally:
            await store.close()


@pytest.fixture(params=["embedded", "cosmos"])
def store(request) -> DocumentStore:
    name = "embedded_store" if request.param == "embedded" else "suite_cosmos_store"
    return request.getfixturevalue(name)


def is_cosmos(store: DocumentStore) -> bool:
    return isinstance(store, CosmosStore)


# -- create / read -------------------------------------------------------------------------


async def test_create_then_read_returns_body_with_keys_and_etag(store):
    created = await store.create(T, "t1", "s1", {"state": "open", "n": 1, "nested": {"a": [1, 2]}})
    assert created.id == "s1" and created.partition == ("t1",)
    assert created.etag and created.body["_etag"] == created.etag
    expected = {"state": "open", "n": 1, "nested": {"a": [1, 2]}, "id": "s1", "tenantId": "t1"}
    assert {k: v for k, v in created.body.items() if k != "_etag"} == expected

    read = await store.read(T, "t1", "s1")
    assert read == created
    # no backend-specific system fields leak out
    assert set(read.body) == {"state", "n", "nested", "id", "tenantId", "_etag"}


async def test_create_existing_id_raises_already_exists(store):
    await store.create(T, "t1", "s1", {"v": 1})
    with pytest.raises(AlreadyExists):
        await store.create(T, "t1", "s1", {"v": 2})
    assert (await store.read(T, "t1", "s1")).body["v"] == 1


async def test_same_id_in_two_partitions_are_two_documents(store):
    await store.create(T, "t1", "s1", {"v": 1})
    await store.create(T, "t2", "s1", {"v": 2})
    assert (await store.read(T, "t1", "s1")).body["v"] == 1
    assert (await store.read(T, "t2", "s1")).body["v"] == 2


async def test_read_missing_returns_none_fast(store):
    await store.create(T, "t1", "s1", {"v": 1})
    started = time.monotonic()
    assert await store.read(T, "t1", "nope") is None
    assert await store.read(T, "t2", "s1") is None  # right id, wrong partition
    # one round trip each: no retries of a server error behind a missing item
    assert time.monotonic() - started < 0.4


async def test_body_fields_named_like_keys_are_overridden_by_the_store(store):
    doc = await store.create(T, "t1", "s1", {"id": "other", "tenantId": "t9", "_etag": "x"})
    assert doc.body["id"] == "s1" and doc.body["tenantId"] == "t1"
    assert doc.body["_etag"] == doc.etag != "x"


async def test_unknown_container_is_a_value_error(store):
    with pytest.raises(ValueError):
        await store.read("nope", "p", "i")
    with pytest.raises(ValueError):
        await store.create("nope", "p", "i", {})


# -- replace / upsert / delete --------------------------------------------------------------


async def test_replace_with_current_etag(store):
    v1 = await store.create(T, "t1", "s1", {"v": 1})
    v2 = await store.replace(T, "t1", "s1", {"v": 2}, if_match=v1.etag)
    assert v2.etag != v1.etag
    assert v2.body["v"] == 2
    assert await store.read(T, "t1", "s1") == v2


async def test_replace_with_stale_etag_raises_and_keeps_the_newer_write(store):
    v1 = await store.create(T, "t1", "s1", {"v": 1})
    v2 = await store.replace(T, "t1", "s1", {"v": 2}, if_match=v1.etag)
    # v1.etag was real a moment ago: a genuinely stale ETag, not a made-up one
    with pytest.raises(PreconditionFailed):
        await store.replace(T, "t1", "s1", {"v": 3}, if_match=v1.etag)
    assert await store.read(T, "t1", "s1") == v2


async def test_replace_without_etag_is_unconditional(store):
    v1 = await store.create(T, "t1", "s1", {"v": 1})
    await store.replace(T, "t1", "s1", {"v": 2}, if_match=v1.etag)
    v3 = await store.replace(T, "t1", "s1", {"v": 3}, if_match=None)
    assert (await store.read(T, "t1", "s1")).body["v"] == 3 == v3.body["v"]


async def test_replace_missing_raises_not_found(store):
    other = await store.create(T, "t1", "other", {"v": 1})
    with pytest.raises(NotFound):
        await store.replace(T, "t1", "nope", {"v": 1}, if_match=None)
    with pytest.raises(NotFound):
        await store.replace(T, "t1", "nope", {"v": 1}, if_match=other.etag)
    with pytest.raises(NotFound):  # exists, but in another partition
        await store.replace(T, "t2", "other", {"v": 1}, if_match=None)
    assert await store.read(T, "t1", "nope") is None


async def test_upsert_creates_then_replaces(store):
    v1 = await store.upsert(T, "t1", "s1", {"v": 1})
    assert (await store.read(T, "t1", "s1")) == v1
    v2 = await store.upsert(T, "t1", "s1", {"w": 2})
    assert v2.etag != v1.etag
    read = await store.read(T, "t1", "s1")
    assert read == v2 and "v" not in read.body and read.body["w"] == 2


async def test_delete_without_etag(store):
    await store.create(T, "t1", "s1", {"v": 1})
    assert await store.delete(T, "t1", "s1") is True
    assert await store.read(T, "t1", "s1") is None
    assert await store.delete(T, "t1", "s1") is False


async def test_delete_with_etag(store):
    v1 = await store.create(T, "t1", "s1", {"v": 1})
    v2 = await store.replace(T, "t1", "s1", {"v": 2}, if_match=v1.etag)
    with pytest.raises(PreconditionFailed):
        await store.delete(T, "t1", "s1", if_match=v1.etag)
    assert await store.read(T, "t1", "s1") == v2
    assert await store.delete(T, "t1", "s1", if_match=v2.etag) is True
    assert await store.read(T, "t1", "s1") is None
    with pytest.raises(NotFound):
        await store.delete(T, "t1", "s1", if_match=v2.etag)


async def test_etag_changes_on_every_write(store):
    etags = []
    doc = await store.create(T, "t1", "s1", {"v": 0})
    etags.append(doc.etag)
    for i in range(1, 3):
        doc = await store.replace(T, "t1", "s1", {"v": i}, if_match=doc.etag)
        etags.append(doc.etag)
    # a write that changes nothing still gets a new ETag
    doc = await store.upsert(T, "t1", "s1", {"v": 2})
    etags.append(doc.etag)
    doc = await store.replace(T, "t1", "s1", {"v": 2}, if_match=None)
    etags.append(doc.etag)
    (doc,) = await store.batch(T, "t1", [WriteOp("replace", "s1", {"v": 5}, doc.etag)])
    etags.append(doc.etag)
    assert len(set(etags)) == len(etags)
    assert (await store.read(T, "t1", "s1")).etag == etags[-1]


async def test_two_concurrent_replaces_with_the_same_etag_exactly_one_wins(store):
    base = await store.create(T, "t1", "chat", {"agent": None})
    results = await asyncio.gather(
        store.replace(T, "t1", "chat", {"agent": "alice"}, if_match=base.etag),
        store.replace(T, "t1", "chat", {"agent": "bob"}, if_match=base.etag),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1 and len(losses) == 1
    assert isinstance(losses[0], PreconditionFailed)
    assert (await store.read(T, "t1", "chat")).body["agent"] == wins[0].body["agent"]


# -- query ------------------------------------------------------------------------------------


async def seed(store: DocumentStore) -> None:
    rows: list[tuple[str, str, dict[str, Any]]] = [
        ("t1", "a", {"state": "open", "n": 3, "guest": "g1"}),
        ("t1", "b", {"state": "open", "n": 1, "guest": "g2"}),
        # d before c: ties must come back by id, not in the order they were written
        ("t1", "d", {"state": "open", "n": 2, "guest": None}),
        ("t1", "c", {"state": "closed", "n": 2, "guest": "g1"}),
        ("t2", "e", {"state": "open", "n": 5, "guest": "g1"}),
        ("t2", "f", {"state": "closed", "n": 4}),
    ]
    for partition, id, body in rows:
        await store.create(T, partition, id, body)


def ids(docs) -> list[str]:
    return [d.id for d in docs]


async def test_query_equality_filters(store):
    await seed(store)
    assert sorted(ids(await store.query(T, "t1", {"state": "open"}))) == ["a", "b", "d"]
    assert ids(await store.query(T, "t1", {"state": "open", "guest": "g1"})) == ["a"]
    assert ids(await store.query(T, "t1", {"n": 2, "state": "closed"})) == ["c"]
    assert await store.query(T, "t1", {"state": "nope"}) == []
    docs = await store.query(T, "t1", {"guest": "g2"})
    assert docs == [await store.read(T, "t1", "b")]


async def test_query_none_matches_null_and_missing(store):
    await seed(store)
    assert ids(await store.query(T, "t1", {"guest": None})) == ["d"]
    assert sorted(ids(await store.query(T, None, {"guest": None}))) == ["d", "f"]


async def test_query_is_scoped_to_its_partition(store):
    await seed(store)
    # "t2" also has open sessions of guest g1: they must not show up in t1's answer
    assert ids(await store.query(T, "t1", {"guest": "g1", "state": "open"})) == ["a"]
    assert ids(await store.query(T, "t2", {"guest": "g1"})) == ["e"]
    assert sorted(ids(await store.query(T, "t1", {}))) == ["a", "b", "c", "d"]
    assert await store.query(T, "t3", {}) == []


async def test_query_across_partitions(store):
    await seed(store)
    docs = await store.query(T, None, {"guest": "g1"})
    assert sorted((d.partition, d.id) for d in docs) == [
        (("t1",), "a"), (("t1",), "c"), (("t2",), "e")
    ]
    assert len(await store.query(T, None, {})) == 6


async def test_query_order_by_descending_and_limit(store):
    await seed(store)
    # ties (c and d both have n=2) come back by id, in the query's direction
    assert ids(await store.query(T, "t1", {}, order_by="n")) == ["b", "c", "d", "a"]
    assert ids(await store.query(T, "t1", {}, order_by="n", descending=True)) == [
        "a",
        "d",
        "c",
        "b",
    ]
    assert ids(await store.query(T, "t1", {"state": "open"}, order_by="n", limit=2)) == ["b", "d"]
    assert ids(await store.query(T, "t1", {}, order_by="n", descending=True, limit=1)) == ["a"]
    assert ids(await store.query(T, None, {}, order_by="n", descending=True, limit=3)) == [
        "e",
        "f",
        "a",
    ]
    assert len(await store.query(T, None, {"state": "open"}, limit=2)) == 2
    assert await store.query(T, None, {}, limit=0) == []


async def test_query_field_names_that_are_sql_keywords(store):
    await store.create(T, "t1", "x", {"value": 1, "order": "first", "select": True})
    await store.create(T, "t1", "y", {"value": 2, "order": "second", "select": False})
    assert ids(await store.query(T, "t1", {"value": 1})) == ["x"]
    assert ids(await store.query(T, "t1", {"select": False})) == ["y"]
    assert ids(await store.query(T, "t1", {}, order_by="order", descending=True)) == ["y", "x"]


@pytest.mark.parametrize("name", ["a.b", "a b", "", "x]", 'x"', "n = 1 OR 1=1 --", "c.id", "é"])
async def test_query_rejects_field_names_that_are_not_plain(store, name):
    await store.create(T, "t1", "x", {"v": 1})
    with pytest.raises(ValueError):
        await store.query(T, "t1", {name: 1})
    if name:  # order_by="" means no ordering
        with pytest.raises(ValueError):
            await store.query(T, "t1", {}, order_by=name)
    with pytest.raises(ValueError):
        await store.query(T, "t1", {}, at_most={name: 1})


async def test_query_at_most_numbers_includes_the_bound(store):
    await seed(store)  # n: a=3 b=1 c=2 d=2 (t1), e=5 f=4 (t2)
    assert sorted(ids(await store.query(T, "t1", {}, at_most={"n": 2}))) == ["b", "c", "d"]
    assert sorted(ids(await store.query(T, "t1", {}, at_most={"n": 2.5}))) == ["b", "c", "d"]
    assert sorted(ids(await store.query(T, "t1", {}, at_most={"n": 3}))) == ["a", "b", "c", "d"]
    assert ids(await store.query(T, "t1", {}, at_most={"n": 1})) == ["b"]
    assert await store.query(T, "t1", {}, at_most={"n": 0.999}) == []
    assert await store.query(T, "t1", {}, at_most={"n": -1}) == []
    assert sorted(ids(await store.query(T, None, {}, at_most={"n": 4}))) == [
        "a",
        "b",
        "c",
        "d",
        "f",
    ]
    # an empty or absent at_most filters nothing
    assert len(await store.query(T, None, {}, at_most={})) == 6
    assert len(await store.query(T, None, {}, at_most=None)) == 6


async def test_query_at_most_with_fractions_and_large_epoch_seconds(store):
    for id, due in [("x", 1_700_000_000.25), ("y", 1_700_000_000.5), ("z", 1_700_000_001)]:
        await store.create(T, "t1", id, {"due": due})
    assert ids(await store.query(T, "t1", {}, at_most={"due": 1_700_000_000.25})) == ["x"]
    assert ids(
        await store.query(T, "t1", {}, at_most={"due": 1_700_000_000.5}, order_by="due")
    ) == [
        "x",
        "y",
    ]
    assert len(await store.query(T, "t1", {}, at_most={"due": 1_700_000_001})) == 3


async def test_query_at_most_combined_with_equals_order_by_and_limit(store):
    await seed(store)
    open_by_n = await store.query(T, None, {"state": "open"}, at_most={"n": 3}, order_by="n")
    assert ids(open_by_n) == ["b", "d", "a"]
    assert ids(
        await store.query(T, None, {"state": "open"}, at_most={"n": 3}, order_by="n", limit=2)
    ) == ["b", "d"]
    assert ids(
        await store.query(T, None, {}, at_most={"n": 4}, order_by="n", descending=True, limit=2)
    ) == ["f", "a"]
    assert ids(await store.query(T, "t1", {"guest": "g1"}, at_most={"n": 2})) == ["c"]
    assert ids(await store.query(T, "t2", {"state": "closed"}, at_most={"n": 4})) == ["f"]
    assert await store.query(T, "t2", {"state": "closed"}, at_most={"n": 3.9}) == []
    assert await store.query(T, "t1", {}, at_most={"n": 3}, limit=0) == []
    # several bounds, and a field both equal to and bounded by a value: all ANDed
    both = await store.query(T, "t1", {"n": 2}, at_most={"n": 2}, order_by="n")
    assert ids(both) == ["c", "d"]
    await store.create(T, "t1", "g", {"n": 1, "m": 10})
    await store.create(T, "t1", "h", {"n": 1, "m": 20})
    assert ids(await store.query(T, "t1", {}, at_most={"n": 1, "m": 15})) == ["g"]


async def test_query_at_most_iso_strings(store):
    for id, at in [
        ("p", "2024-05-01T09:00:00.000+00:00"),
        ("q", "2024-05-01T10:00:00.000+00:00"),
        ("r", "2024-05-02T08:00:00.000+00:00"),
    ]:
        await store.create(T, "t1", id, {"at": at, "kind": "x"})
    bound = "2024-05-01T10:00:00.000+00:00"
    assert ids(await store.query(T, "t1", {"kind": "x"}, at_most={"at": bound}, order_by="at")) == [
        "p",
        "q",
    ]
    assert ids(await store.query(T, "t1", {}, at_most={"at": "2024-05-01T09:59"})) == ["p"]
    assert await store.query(T, "t1", {}, at_most={"at": "2024-04-30"}) == []


async def test_query_at_most_skips_missing_null_and_other_types(store):
    await store.create(T, "t1", "num", {"v": 1})
    await store.create(T, "t1", "text", {"v": "1"})
    await store.create(T, "t1", "null", {"v": None})
    await store.create(T, "t1", "missing", {})
    await store.create(T, "t1", "flag", {"v": False})
    await store.create(T, "t1", "list", {"v": [0]})
    # SQLite alone would order every number below every text: both backends compare like types
    assert ids(await store.query(T, "t1", {}, at_most={"v": 5})) == ["num"]
    assert ids(await store.query(T, "t1", {}, at_most={"v": "9"})) == ["text"]


@pytest.mark.parametrize("value", [None, True, float("nan"), float("inf"), [1], {"a": 1}])
async def test_query_at_most_rejects_values_without_a_shared_order(store, value):
    with pytest.raises(ValueError):
        await store.query(T, "t1", {}, at_most={"v": value})


async def test_query_at_least_bounds_from_below_and_with_at_most_makes_a_range(store):
    await seed(store)  # n: a=3 b=1 c=2 d=2 (t1), e=5 f=4 (t2)
    assert sorted(ids(await store.query(T, "t1", {}, at_least={"n": 2}))) == ["a", "c", "d"]
    assert ids(await store.query(T, "t1", {}, at_least={"n": 2.5})) == ["a"]
    assert await store.query(T, "t1", {}, at_least={"n": 3.5}) == []
    # a walk of what came after a position, newest first, that reads nothing older
    assert ids(await store.query(T, None, {}, at_least={"n": 2}, at_most={"n": 4},
                                 order_by="n", descending=True)) == ["f", "a", "d", "c"]
    assert ids(await store.query(T, None, {}, at_least={"n": 2}, at_most={"n": 4},
                                 order_by="n", descending=True, limit=2)) == ["f", "a"]
    assert await store.query(T, None, {}, at_least={"n": 4}, at_most={"n": 3}) == []
    for id, at in [("p", "2024-05-01T09:00:00.000+00:00"), ("q", "2024-05-01T10:00:00.000+00:00")]:
        await store.create(T, "t3", id, {"at": at})
    await store.create(T, "t3", "num", {"at": 5})
    assert ids(await store.query(T, "t3", {}, at_least={"at": "2024-05-01T10"})) == ["q"]
    assert ids(await store.query(T, "t3", {}, at_least={"at": 0})) == ["num"]


@pytest.mark.parametrize("value", [None, True, float("nan"), [1]])
async def test_query_at_least_rejects_values_without_a_shared_order(store, value):
    with pytest.raises(ValueError, match="at_least"):
        await store.query(T, "t1", {}, at_least={"v": value})


# -- batch ------------------------------------------------------------------------------------


async def test_batch_applies_every_op_in_order(store):
    a = await store.create(T, "t1", "a", {"v": 1})
    await store.create(T, "t1", "b", {"v": 1})
    await store.create(T, "t1", "gone", {"v": 1})
    out = await store.batch(
        T,
        "t1",
        [
            WriteOp("create", "new", {"v": "created"}),
            WriteOp("replace", "a", {"v": "replaced"}, if_match=a.etag),
            WriteOp("upsert", "b", {"v": "upserted"}),
            WriteOp("upsert", "c", {"v": "upsert-created"}),
            WriteOp("delete", "gone"),
        ],
    )
    # one Document per non-delete op, in order, each as it is now stored
    assert ids(out) == ["new", "a", "b", "c"]
    for doc in out:
        assert doc.partition == ("t1",) and doc.body["tenantId"] == "t1"
        assert await store.read(T, "t1", doc.id) == doc
    assert [d.body["v"] for d in out] == ["created", "replaced", "upserted", "upsert-created"]
    assert await store.read(T, "t1", "gone") is None


async def test_batch_whose_first_op_fails_applies_nothing(store):
    v1 = await store.create(T, "t1", "a", {"v": 1})
    v2 = await store.replace(T, "t1", "a", {"v": 2}, if_match=v1.etag)
    b = await store.create(T, "t1", "b", {"v": 1})
    with pytest.raises(PreconditionFailed):
        await store.batch(
            T,
            "t1",
            [
                WriteOp("replace", "a", {"v": 3}, if_match=v1.etag),  # stale
                WriteOp("create", "new", {"v": 1}),
                WriteOp("upsert", "b", {"v": 2}),
                WriteOp("delete", "a"),
            ],
        )
    assert await store.read(T, "t1", "a") == v2
    assert await store.read(T, "t1", "b") == b
    assert await store.read(T, "t1", "new") is None


async def test_batch_whose_later_op_fails_raises_its_error(store):
    await store.create(T, "t1", "taken", {"v": 1})
    with pytest.raises(AlreadyExists):
        await store.batch(
            T, "t1", [WriteOp("create", "new", {"v": 1}), WriteOp("create", "taken", {"v": 2})]
        )
    assert (await store.read(T, "t1", "taken")).body["v"] == 1
    if is_cosmos(store):
        # Real Cosmos rolls "new" back (a transactional batch is atomic). The local server does
        # not: it applies operations one by one and stops at the first failure, so "new" stays
        # (it does apply nothing when the *first* operation fails: see the test above). The
        # rollback of earlier operations can only be checked on the embedded store here.
        return
    assert await store.read(T, "t1", "new") is None


@pytest.mark.parametrize(
    "op, error",
    [
        (WriteOp("create", "exists", {}), AlreadyExists),
        (WriteOp("replace", "missing", {}), NotFound),
        (WriteOp("replace", "exists", {}, if_match="stale"), PreconditionFailed),
        (WriteOp("delete", "exists", None, if_match="stale"), PreconditionFailed),
        (WriteOp("delete", "missing", None, if_match="stale"), NotFound),
    ],
    ids=["create-existing", "replace-missing", "replace-stale", "delete-stale", "delete-missing"],
)
async def test_batch_maps_the_failing_op_to_our_errors(store, op, error):
    exists = await store.create(T, "t1", "exists", {"v": 1})
    with pytest.raises(error):
        await store.batch(T, "t1", [op, WriteOp("upsert", "other", {"v": 1})])
    assert await store.read(T, "t1", "exists") == exists
    assert await store.read(T, "t1", "other") is None


async def test_batch_delete_of_a_missing_item_without_etag_is_a_no_op(store):
    # first in the batch, so that the local server (not atomic) shows real-Cosmos behaviour
    out = await store.batch(
        T, "t1", [WriteOp("delete", "missing"), WriteOp("upsert", "a", {"v": 1})]
    )
    assert ids(out) == ["a"]
    assert (await store.read(T, "t1", "a")).body["v"] == 1


async def test_empty_batch(store):
    assert await store.batch(T, "t1", []) == []


# -- stats --------------------------------------------------------------------------------------


async def test_stats_count_every_primitive_once(store):
    store.stats.reset()
    doc = await store.create(T, "t1", "a", {"v": 1})
    await store.read(T, "t1", "a")
    await store.read(T, "t1", "missing")
    doc = await store.replace(T, "t1", "a", {"v": 2}, if_match=doc.etag)
    with pytest.raises(PreconditionFailed):
        await store.replace(T, "t1", "a", {"v": 3}, if_match="stale")
    await store.upsert(T, "t1", "b", {"v": 1})
    await store.query(T, "t1", {"v": 1})
    await store.batch(T, "t1", [WriteOp("upsert", "c", {}), WriteOp("upsert", "d", {})])
    await store.delete(T, "t1", "b")
    assert store.stats.by_op == {
        "create": 1,
        "read": 2,
        "replace": 2,
        "upsert": 1,
        "query": 1,
        "batch": 1,
        "delete": 1,
    }
    assert store.stats.round_trips == 9
    if is_cosmos(store):
        # every answer of the local server carries x-ms-request-charge: 1
        assert store.stats.request_charge >= 9
    else:
        assert store.stats.request_charge == 0
    store.stats.reset()
    assert store.stats.round_trips == 0 and store.stats.by_op == {}


async def test_ping(store):
    await store.ping()


# -- Cosmos only: retries, errors, layout ---------------------------------------------------------


async def test_cosmos_store_creates_database_and_containers_as_the_layout_says(cosmos_server):
    from storage.layout import LAYOUT, cosmos_indexing_policy

    store = CosmosStore(
        cosmos_server.endpoint,
        "layout-test",
        key=cosmos_server.key,
        connection_verify=False,
        container_prefix="sb_",
    )
    await store.open()
    try:
        await store.open()  # idempotent
        for spec in LAYOUT.containers:
            if spec.lazy:
                # botbuilder Storage's container: only made when something opens it
                assert spec.name not in store._containers
                continue
            props = await store._containers[spec.name].read()
            assert props["id"] == f"sb_{spec.name}"
            assert props["partitionKey"]["paths"] == [f"/{k}" for k in spec.keys]
            assert props["partitionKey"]["kind"] == ("MultiHash" if spec.hierarchical else "Hash")
            assert props.get("defaultTtl") == (-1 if spec.ttl else None)
            policy = props["indexingPolicy"]
            wanted = cosmos_indexing_policy(spec)
            assert policy["includedPaths"] == wanted["includedPaths"]
            assert {"path": "/*"} in policy["excludedPaths"]
            assert policy.get("compositeIndexes", []) == wanted.get("compositeIndexes", [])
        assert LAYOUT["tenant_data"].keys == ("tenantId", "sessionId")
        # card bodies and typed text are never indexed
        included = {p["path"] for p in cosmos_indexing_policy(LAYOUT["tenant_data"])
                    ["includedPaths"]}
        assert not {"/text/?", "/card/?", "/metadata/?", "/value/?"} & included
        # a second store on the same database finds what the first created
        again = CosmosStore(
            cosmos_server.endpoint,
            "layout-test",
            key=cosmos_server.key,
            connection_verify=False,
            container_prefix="sb_",
        )
        await again.open()
        await again.create("tenant_data", ("t1", "s1"), "x", {})
        assert (await store.read("tenant_data", ("t1", "s1"), "x")) is not None
        await again.open_container("botstate")
        await again.upsert("botstate", "k", "k", {"v": 1})
        assert (await store._db.get_container_client("sb_botstate").read())["id"]
        await again.close()
    finally:
        await store.delete_database()
        await store.close()


async def test_cosmos_refuses_a_container_partitioned_otherwise(cosmos_server):
    import uuid

    from azure.cosmos import PartitionKey
    from azure.cosmos.aio import CosmosClient

    name = f"old-{uuid.uuid4().hex}"
    async with CosmosClient(cosmos_server.endpoint, credential=cosmos_server.key,
                            connection_verify=False) as client:
        db = await client.create_database_if_not_exists(name)
        # the layout before hierarchical keys: tenant_data by /tenantId alone
        await db.create_container("tenant_data", partition_key=PartitionKey(path="/tenantId"))
        store = CosmosStore(cosmos_server.endpoint, name, key=cosmos_server.key,
                            connection_verify=False)
        with pytest.raises(StoreUnavailable, match=r"tenant_data.*cannot change"):
            await store.open()
        await store.close()
        await client.delete_database(name)


def test_cosmos_throughput_settings():
    from storage.cosmos import throughput_options

    assert throughput_options(False, 4000) == {}
    offer = throughput_options(True, 4000)["offer_throughput"]
    assert offer.auto_scale_max_throughput == 4000
    with pytest.raises(ValueError, match="multiple of 1000"):
        CosmosStore("https://x.invalid", "db", key="k", autoscale_max=1500)
    with pytest.raises(ValueError, match="database, container or none"):
        CosmosStore("https://x.invalid", "db", key="k", throughput="shared")


# -- hierarchical partition keys ----------------------------------------------------------------


async def test_hierarchical_key_point_operations_need_the_whole_key(store):
    doc = await store.create(TREE, ("hr", "s1"), "s1", {"type": "session"})
    assert doc.partition == ("hr", "s1")
    assert doc.body["tenantId"] == "hr" and doc.body["sessionId"] == "s1"
    assert await store.read(TREE, ("hr", "s1"), "s1") == doc
    for bad in ("hr", ("hr",), ("hr", "s1", "x"), ("hr", ""), ("hr", 1)):
        with pytest.raises(ValueError):
            await store.read(TREE, bad, "s1")
        with pytest.raises(ValueError):
            await store.upsert(TREE, bad, "s1", {})
    with pytest.raises(ValueError):
        await store.batch(TREE, ("hr",), [WriteOp("upsert", "x", {})])
    (line,) = await store.batch(TREE, ("hr", "s1"), [WriteOp("upsert", "s1:t:0", {"type": "t"})])
    assert line.partition == ("hr", "s1")


async def test_hierarchical_key_queries_by_whole_key_prefix_or_nothing(store):
    for tenant, session in [("hr", "s1"), ("hr", "s2"), ("it", "s3")]:
        for seq in range(3):
            await store.create(TREE, (tenant, session), f"{session}:{seq}",
                               {"type": "line", "seq": seq})
    one = await store.query(TREE, ("hr", "s1"), {"type": "line"}, order_by="seq",
                            descending=True, limit=2)
    assert ids(one) == ["s1:2", "s1:1"]
    department = await store.query(TREE, ("hr",), {"type": "line"}, order_by="seq")
    assert sorted(ids(department)) == sorted(f"{s}:{q}" for s in ("s1", "s2") for q in range(3))
    assert {d.partition for d in department} == {("hr", "s1"), ("hr", "s2")}
    assert len(await store.query(TREE, None, {"type": "line"})) == 9
    with pytest.raises(ValueError):
        await store.query(TREE, ("hr", "s1", "x"), {})


async def test_the_sdk_sends_the_whole_hierarchical_key(suite_cosmos_store, cosmos_server):
    """The local server keeps only the first level of a hierarchical key, so only the
    partition-key headers it received show that real Cosmos would get the whole key."""
    store = suite_cosmos_store
    offset = cosmos_server.record_size()
    doc = await store.create(TREE, ("hr", "s9"), "s9", {"type": "session"})
    await store.read(TREE, ("hr", "s9"), "s9")
    await store.replace(TREE, ("hr", "s9"), "s9", {"type": "session"}, doc.etag)
    await store.upsert(TREE, ("hr", "s9"), "s9:t:0", {"type": "line"})
    await store.batch(TREE, ("hr", "s9"), [WriteOp("upsert", "s9:t:1", {"type": "line"})])
    await store.delete(TREE, ("hr", "s9"), "s9:t:0")
    await store.query(TREE, ("hr", "s9"), {"type": "line"})
    sent = [r for r in cosmos_server.requests_since(offset) if "/docs" in r["path"]]
    writes = [r for r in sent if not r["query"]]
    assert len(writes) >= 6, sent
    for request in writes:
        assert request["partitionKey"] == '["hr","s9"]', request
    assert any(r["batch"] for r in writes)
    # a query scoped to the whole key is routed by it as well
    assert any(r["query"] and r["partitionKey"] == '["hr","s9"]' for r in sent), sent


# -- expiry -------------------------------------------------------------------------------------


async def test_ttl_is_refused_where_nothing_expires(store):
    with pytest.raises(ValueError, match="do not expire"):
        await store.upsert("plain", "p", "x", {"ttl": 60})
    for bad in (0, -5, 1.5, "60", True):
        with pytest.raises(ValueError, match="ttl"):
            await store.upsert(T, "t1", "x", {"ttl": bad})
    # -1 and None mean "never", as in Cosmos
    await store.upsert(T, "t1", "x", {"ttl": -1})
    await store.upsert(T, "t1", "y", {"ttl": None})


async def test_embedded_documents_expire_and_are_purged(tmp_path):
    now = [1_000_000.0]
    store = EmbeddedStore(tmp_path / "ttl.sqlite3", layout=SUITE, clock=lambda: now[0])
    await store.open()
    try:
        await store.create(T, "t1", "short", {"state": "x", "n": 1, "ttl": 60})
        await store.create(T, "t1", "long", {"state": "x", "n": 2, "ttl": 3600})
        await store.create(T, "t1", "never", {"state": "x", "n": 3})
        for i in range(30):
            await store.create(TREE, ("t1", f"s{i}"), "line", {"type": "l", "seq": i, "ttl": 60})
        now[0] += 61
        assert await store.read(T, "t1", "short") is None
        assert ids(await store.query(T, "t1", {"state": "x"}, order_by="n")) == ["long", "never"]
        # an expired id is free again
        await store.create(T, "t1", "short", {"state": "y"})
        assert await store.purge_expired(limit=10) == 10
        assert await store.purge_expired(limit=100) == 20
        assert await store.purge_expired() == 0
        now[0] += 3600
        assert await store.purge_expired() == 1
        assert ids(await store.query(T, "t1", {})) == ["never", "short"]
    finally:
        await store.close()


async def test_embedded_file_does_not_grow_when_expired_documents_are_replaced(tmp_path):
    now = [1_000_000.0]
    path = tmp_path / "grow.sqlite3"
    store = EmbeddedStore(path, layout=SUITE, clock=lambda: now[0])
    await store.open()
    try:
        async def fill(round: int) -> None:
            for i in range(300):
                await store.create(TREE, (f"t{round}", f"s{i}"), "line",
                                   {"type": "l", "seq": i, "text": "x" * 2000, "ttl": 60})

        await fill(0)
        now[0] += 61
        while await store.purge_expired():
            pass
        size = path.stat().st_size + (path.with_name(path.name + "-wal").stat().st_size)
        for round in range(1, 4):
            await fill(round)
            now[0] += 61
            while await store.purge_expired():
                pass
        after = path.stat().st_size + (path.with_name(path.name + "-wal").stat().st_size)
        assert after < size * 1.5, (size, after)
    finally:
        await store.close()


async def test_lazy_containers_open_only_when_asked(suite_cosmos_store):
    store = suite_cosmos_store
    with pytest.raises(StoreUnavailable, match="open_container"):
        await store.upsert("lazy", "k", "x", {})
    await store.open_container("lazy")
    await store.open_container("lazy")  # idempotent
    await store.upsert("lazy", "k", "x", {"v": 1})
    assert (await store.read("lazy", "k", "x")).body["v"] == 1


async def test_cosmos_store_not_open_is_unavailable(cosmos_server):
    store = CosmosStore(cosmos_server.endpoint, "x", key=cosmos_server.key, layout=SUITE)
    with pytest.raises(StoreUnavailable):
        await store.read(T, "t1", "a")
    with pytest.raises(StoreUnavailable):
        await store.ping()


async def test_cosmos_unreachable_endpoint_is_unavailable():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = CosmosStore(
        f"https://127.0.0.1:{port}/", "x", key="a2V5", connection_verify=False, max_retry_seconds=2
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    assert time.monotonic() - started < 8
    await store.close()


class FakeCosmos:
    """An HTTP server that answers the account probe like Cosmos, and `status` to the rest."""

    def __init__(self, status: int, retry_after_ms: int = 50) -> None:
        self.status = status
        self.retry_after_ms = retry_after_ms
        self.hits = 0
        self.runner: web.AppRunner | None = None
        self.endpoint = ""

    async def start(self) -> FakeCosmos:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}/"
        return self

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "GET" and request.path == "/":
            location = [{"name": "Local", "databaseAccountEndpoint": self.endpoint}]
            return web.json_response(
                {
                    "id": "local",
                    "writableLocations": location,
                    "readableLocations": location,
                    "enableMultipleWriteLocations": False,
                    "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
                }
            )
        self.hits += 1
        return web.json_response(
            {"code": "TooManyRequests" if self.status == 429 else "ServiceUnavailable"},
            status=self.status,
            headers={"x-ms-retry-after-ms": str(self.retry_after_ms), "x-ms-request-charge": "0"},
        )

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.mark.parametrize(
    "status, retry_after_ms, budget, limit",
    [
        (429, 50, 1.5, 3.0),
        (503, 50, 1.5, 3.0),
        # a Retry-After longer than the whole budget: the call must not sleep it out
        (429, 5000, 1.0, 2.6),
    ],
    ids=["429", "503", "429-long-retry-after"],
)
async def test_cosmos_throttling_and_unavailability_are_retried_within_the_budget(
    status, retry_after_ms, budget, limit
):
    fake = await FakeCosmos(status, retry_after_ms).start()
    try:
        store = CosmosStore(fake.endpoint, "db", key="a2V5", max_retry_seconds=budget)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.open()
        elapsed = time.monotonic() - started
        await store.close()
    finally:
        await fake.stop()
    assert fake.hits >= (1 if retry_after_ms > budget * 1000 else 2), "no retry"
    assert elapsed < limit, f"retries went on for {elapsed:.1f}s with a {budget}s budget"
    if status == 429 and retry_after_ms < 1000:
        # retried until the time budget ran out, not stopped early by an attempt count
        assert elapsed >= budget * 0.8 and fake.hits > 10


# -- botbuilder Storage -------------------------------------------------------------------------


@pytest.fixture
def bot_storage(docs) -> DocumentBotStorage:
    return DocumentBotStorage(docs)


@pytest.mark.parametrize(
    "key",
    [
        "plain",
        "msteams/conversations/19:abc@thread.v2",
        "a\\b?c#d%e/f",
        "%2F",
        "%",
        "ünïcödé/ключ",
        "x" * 2000,
    ],
)
def test_key_encoding_is_safe_and_reversible(key):
    encoded = encode_key(key)
    assert not set("/\\?#") & set(encoded)
    assert len(encoded.encode()) <= 1023
    if len(key) < 1000:
        assert decode_key(encoded) == key
    assert encode_key(key) == encoded  # deterministic


def test_distinct_keys_get_distinct_ids():
    keys = ["a/b", "a%2Fb", "a%252Fb", "a\\b", "a%5Cb", "x" * 2000, "x" * 2001]
    assert len({encode_key(k) for k in keys}) == len(keys)


async def test_bot_storage_read_of_nothing(bot_storage):
    assert await bot_storage.read([]) == {}
    assert await bot_storage.read(["missing"]) == {}


async def test_bot_storage_round_trips_dicts_and_store_items(bot_storage):
    await bot_storage.write(
        {
            "msteams/conversations/a:1?x#y": {"count": 1, "nested": {"list": [1, "two"]}},
            "item": StoreItem(name="ada", score=3),
        }
    )
    data = await bot_storage.read(["msteams/conversations/a:1?x#y", "item", "missing"])
    assert set(data) == {"msteams/conversations/a:1?x#y", "item"}
    convo = data["msteams/conversations/a:1?x#y"]
    assert isinstance(convo, dict)
    assert convo["count"] == 1 and convo["nested"] == {"list": [1, "two"]}
    assert convo["e_tag"]
    item = data["item"]
    assert isinstance(item, StoreItem)
    assert item.name == "ada" and item.score == 3 and item.e_tag

    # one document per key in the botstate container, partitioned by the (encoded) key itself
    doc_id = encode_key("msteams/conversations/a:1?x#y")
    doc = await bot_storage.store.read("botstate", doc_id, doc_id)
    assert doc.body["stateKey"] == doc_id and doc.body["key"] == "msteams/conversations/a:1?x#y"
    assert doc.etag == convo["e_tag"]


async def test_bot_storage_etag_rules(bot_storage):
    await bot_storage.write({"k": {"v": 1}})
    first = (await bot_storage.read(["k"]))["k"]
    stale = dict(first)

    # the current e_tag: written
    first["v"] = 2
    await bot_storage.write({"k": first})
    current = (await bot_storage.read(["k"]))["k"]
    assert current["v"] == 2 and current["e_tag"] != stale["e_tag"]
    # the write updated the caller's e_tag, so saving the same dict again is not a conflict
    assert first["e_tag"] == current["e_tag"]
    first["v"] = 3
    await bot_storage.write({"k": first})

    # a stale e_tag: refused, as MemoryStorage refuses it, and nothing is written
    stale["v"] = 99
    with pytest.raises(KeyError, match="Etag conflict"):
        await bot_storage.write({"k": stale})
    assert (await bot_storage.read(["k"]))["k"]["v"] == 3

    # "*" and None: written whatever is stored
    await bot_storage.write({"k": {"v": 4, "e_tag": "*"}})
    assert (await bot_storage.read(["k"]))["k"]["v"] == 4
    await bot_storage.write({"k": {"v": 5, "e_tag": None}})
    assert (await bot_storage.read(["k"]))["k"]["v"] == 5
    await bot_storage.write({"k": StoreItem(v=6)})
    assert (await bot_storage.read(["k"]))["k"].v == 6

    # "": an error, as in MemoryStorage
    with pytest.raises(Exception, match="etag missing"):
        await bot_storage.write({"k": {"v": 7, "e_tag": ""}})
    assert (await bot_storage.read(["k"]))["k"].v == 6


async def test_bot_storage_stale_store_item_conflicts(bot_storage):
    await bot_storage.write({"k": StoreItem(v=1)})
    a = (await bot_storage.read(["k"]))["k"]
    b = (await bot_storage.read(["k"]))["k"]
    a.v = 2
    await bot_storage.write({"k": a})
    b.v = 3
    with pytest.raises(KeyError, match="Etag conflict"):
        await bot_storage.write({"k": b})
    assert (await bot_storage.read(["k"]))["k"].v == 2


async def test_bot_storage_write_rejects_none_and_ignores_empty(bot_storage):
    with pytest.raises(Exception, match="Changes are required"):
        await bot_storage.write(None)
    await bot_storage.write({})


async def test_bot_storage_delete(bot_storage):
    await bot_storage.write({"a/1": {"v": 1}, "b": {"v": 2}})
    await bot_storage.delete(["a/1", "missing"])
    assert set(await bot_storage.read(["a/1", "b"])) == {"b"}
    await bot_storage.delete({"b"})
    assert await bot_storage.read(["b"]) == {}


def make_turn(adapter: TestAdapter, conversation_id: str, text: str = "hi") -> TurnContext:
    activity = Activity(
        type="message",
        text=text,
        channel_id="msteams",
        conversation=ConversationAccount(id=conversation_id),
        from_property=ChannelAccount(id="guest"),
        recipient=ChannelAccount(id="bot"),
        service_url="https://test.invalid",
    )
    return TurnContext(adapter, activity)


def counting_bot(state: ConversationState):
    count = state.create_property("count")

    async def logic(turn: TurnContext) -> None:
        await state.load(turn)
        value = await count.get(turn, lambda: 0) + 1
        await count.set(turn, value)
        await state.save_changes(turn)
        await turn.send_activity(f"turn {value}")

    return logic


async def test_conversation_state_survives_across_turns_and_bot_instances(docs):
    template = Activity(
        channel_id="msteams",
        service_url="https://test.invalid",
        conversation=ConversationAccount(id="a:1/x?y#z"),
        from_property=ChannelAccount(id="guest"),
        recipient=ChannelAccount(id="bot"),
    )
    first = TestAdapter(
        counting_bot(ConversationState(DocumentBotStorage(docs))),
        template_or_conversation=template,
    )
    await (await first.test("hi", "turn 1")).test("again", "turn 2")

    # another bot instance (its own state objects) over the same store carries on
    second = TestAdapter(
        counting_bot(ConversationState(DocumentBotStorage(docs))),
        template_or_conversation=template,
    )
    await second.test("hello", "turn 3")

    data = await DocumentBotStorage(docs).read(["msteams/conversations/a:1/x?y#z"])
    assert data["msteams/conversations/a:1/x?y#z"]["count"] == 3


async def test_conversation_state_saved_twice_in_one_turn(docs):
    state = ConversationState(DocumentBotStorage(docs))
    prop = state.create_property("step")
    turn = make_turn(TestAdapter(), "c1")
    await state.load(turn)
    await prop.set(turn, "one")
    await state.save_changes(turn)
    await prop.set(turn, "two")
    await state.save_changes(turn)

    later = make_turn(TestAdapter(), "c1")
    await state.load(later)
    assert await prop.get(later) == "two"


async def test_conversation_state_concurrent_turns_conflict(docs):
    storage = DocumentBotStorage(docs)
    state_a = ConversationState(storage)
    state_b = ConversationState(DocumentBotStorage(docs))
    prop_a, prop_b = state_a.create_property("agent"), state_b.create_property("agent")

    seed = make_turn(TestAdapter(), "chat-7")
    await state_a.load(seed)
    await prop_a.set(seed, None)
    await state_a.save_changes(seed)

    # two instances handle a turn of the same conversation at the same time
    turn_a, turn_b = make_turn(TestAdapter(), "chat-7"), make_turn(TestAdapter(), "chat-7")
    await state_a.load(turn_a)
    await state_b.load(turn_b)
    await prop_a.set(turn_a, "alice")
    await prop_b.set(turn_b, "bob")
    await state_a.save_changes(turn_a)
    with pytest.raises(KeyError, match="Etag conflict"):
        await state_b.save_changes(turn_b)

    check = make_turn(TestAdapter(), "chat-7")
    await state_b.load(check, force=True)
    assert await prop_b.get(check) == "alice"


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.text(max_size=6), min_size=2, max_size=3))
def test_a_hierarchical_key_is_stored_as_its_json_array(parts: list[str]) -> None:
    """The embedded store's key column is the key's JSON array, whatever the characters
    (its fast path for plain ASCII must write exactly what json.dumps writes)."""
    from storage.embedded import _pk
    assert _pk(tuple(parts)) == json.dumps(parts, separators=(",", ":"))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=2, max_size=3))
def test_a_hierarchical_key_reads_back_as_written(parts: list[str]) -> None:
    """What the key column holds reads back to the same key (its fast path splits what has
    no escape in it)."""
    from storage.embedded import _pk, _unpk
    from storage.layout import LAYOUT

    container = next(c for c in LAYOUT.containers if c.hierarchical)
    assert _unpk(container, _pk(tuple(parts))) == tuple(parts)
    assert _unpk(container, '["a\\"b","c"]') == ('a"b', "c")
