"""botbuilder `Storage` (ConversationState, UserState...) on any `DocumentStore`.

One document per storage key in the `botstate` container, partitioned by the key itself, so a
read or write is one point operation whichever backend is behind it.

e_tag rules are botbuilder's `MemoryStorage` ones (botbuilder/core/memory_storage.py):
- `read(keys)` returns `{key: item}` for the keys that exist (missing keys are left out, no
  keys gives `{}`); a dict written comes back as a dict, a `StoreItem` (or any object with
  attributes) as a `StoreItem`, each with its current `e_tag`.
- `write(changes)`: an item whose `e_tag` is absent, None or `"*"` is written whatever is
  stored; an `e_tag` of `""` raises `Exception("...etag missing")`; any other `e_tag` must be
  the stored one, else `KeyError("Etag conflict.\\nOriginal: ...\\r\\nCurrent: ...")`, as
  MemoryStorage raises. Changes are applied in order and the first failure stops the rest.
  An item with an e_tag whose key does not exist (any more) is created, as in MemoryStorage.
- `delete(keys)`: missing keys are ignored; no e_tag check.

Where a store cannot be a dict in memory, and what was decided:
- Every stored item has an e_tag (the document's ETag), so a read always returns one, and a
  stale one is always refused. (MemoryStorage gives an e_tag only to items first written with
  one, so for it a plain ConversationState is last-writer-wins; here two bot instances that
  save the same conversation state from the same read cannot both win.)
- After a successful write the item's `e_tag` is updated in place to the new ETag, so that
  saving the same state twice in one turn (BotState keeps the dict it read) does not
  conflict with itself. MemoryStorage leaves the caller's object alone, but there the second
  save cannot conflict because such items carry no e_tag.
- Values are stored as JSON and come back as plain JSON data (dict, list, str, numbers,
  bool, None): pydantic models as `model_dump(mode="json")`, botbuilder schema objects
  (Activity...) in their wire form (`serialize()`), other objects through jsonpickle's
  non-restoring `flatten`. Classes are never re-instantiated from stored data (botbuilder-azure
  uses jsonpickle's Unpickler, which lets whoever can write the database run code here); only
  the top-level `StoreItem` shape is kept.

Keys: Cosmos ids may not contain `/`, `\\`, `?` or `#`, and botbuilder keys do
(`msteams/conversations/19:...`). `encode_key` escapes them (and `%`) as `%XX`, which
`decode_key` reverses. A key whose escaped form exceeds Cosmos's id limit (1023 bytes) is
stored under a SHA-256 digest instead; the original key is kept in every document's body.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import Iterable
from typing import Any

from botbuilder.core import Storage, StoreItem
from jsonpickle.pickler import Pickler
from msrest.serialization import Model as MsrestModel
from pydantic import BaseModel

from storage.documents import AlreadyExists, Document, DocumentStore, NotFound, PreconditionFailed

CONTAINER = "botstate"
MAX_ID_BYTES = 1023  # Cosmos DB's limit for an item id

_ESCAPES = {"%": "%25", "/": "%2F", "\\": "%5C", "?": "%3F", "#": "%23"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_HASHED_PREFIX = "%H"  # never produced by escaping: `%` is always followed by two hex digits


def encode_key(key: str) -> str:
    """A Cosmos-safe document id for a botbuilder storage key."""
    if not isinstance(key, str):
        raise TypeError(f"storage keys are strings, not {type(key).__name__}")
    if not key:
        raise ValueError("storage keys must not be empty")
    escaped = "".join(_ESCAPES.get(ch, ch) for ch in key)
    if len(escaped.encode("utf-8")) > MAX_ID_BYTES:
        return _HASHED_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return escaped


def decode_key(doc_id: str) -> str:
    """The storage key of a document id made by `encode_key` (not of a hashed one)."""
    if doc_id.startswith(_HASHED_PREFIX):
        raise ValueError("a hashed id cannot be decoded: read the key from the document body")
    out: list[str] = []
    i = 0
    while i < len(doc_id):
        ch = doc_id[i]
        if ch == "%":
            code = doc_id[i : i + 3].upper()
            if code not in _UNESCAPES:
                raise ValueError(f"not an encoded storage key: {doc_id!r}")
            out.append(_UNESCAPES[code])
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _plain(value: Any) -> Any:
    """`value` as JSON data (see the module docstring)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, MsrestModel):
        return _plain(value.serialize())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    return _plain(Pickler(unpicklable=False, make_refs=False).flatten(value))


def _get_etag(item: Any) -> str | None:
    if isinstance(item, dict):
        return item.get("e_tag")
    return getattr(item, "e_tag", None)


def _set_etag(item: Any, etag: str) -> None:
    if isinstance(item, dict):
        item["e_tag"] = etag
    else:
        # an immutable value (str, tuple...) has nothing to update
        with contextlib.suppress(AttributeError):
            item.e_tag = etag


def _body(key: str, item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        kind = "dict"
        content: Any = {k: v for k, v in item.items() if k != "e_tag"}
    elif isinstance(item, (str, bool, int, float, list, tuple, set, frozenset)) or item is None:
        kind, content = "value", item
    else:
        attributes = _plain(item)
        if isinstance(attributes, dict):
            kind = "store_item"
            content = {k: v for k, v in attributes.items() if k != "e_tag"}
        else:
            kind, content = "value", attributes
    return {"key": key, "kind": kind, "document": _plain(content)}


def _item(doc: Document) -> Any:
    kind = doc.body.get("kind")
    content = doc.body.get("document")
    if kind == "value":
        return content
    content = dict(content or {})
    content["e_tag"] = doc.etag
    if kind == "store_item":
        return StoreItem(**content)
    return content


class DocumentBotStorage(Storage):
    """botbuilder Storage over a DocumentStore, with MemoryStorage's e_tag semantics."""

    def __init__(self, store: DocumentStore) -> None:
        super().__init__()
        self.store = store
        self._opened = False

    async def _open(self) -> None:
        """The container exists only for bots that use this Storage: made on first use."""
        if not self._opened:
            await self.store.open_container(CONTAINER)
            self._opened = True

    async def read(self, keys: Iterable[str]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if not keys:
            return data
        await self._open()
        keys = list(dict.fromkeys(keys))
        ids = [encode_key(key) for key in keys]
        docs = await asyncio.gather(*(self.store.read(CONTAINER, i, i) for i in ids))
        for key, doc in zip(keys, docs, strict=True):
            if doc is not None:
                data[key] = _item(doc)
        return data

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise Exception("Changes are required when writing")
        if not changes:
            return
        await self._open()
        for key, change in changes.items():
            doc_id = encode_key(key)
            e_tag = _get_etag(change)
            if e_tag == "":
                raise Exception("DocumentBotStorage.write(): etag missing")
            body = _body(key, change)
            if e_tag is None or e_tag == "*":
                doc = await self.store.upsert(CONTAINER, doc_id, doc_id, body)
            else:
                doc = await self._write_if_match(key, doc_id, body, e_tag)
            _set_etag(change, doc.etag)

    async def _write_if_match(
        self, key: str, doc_id: str, body: dict[str, Any], e_tag: str
    ) -> Document:
        try:
            return await self.store.replace(CONTAINER, doc_id, doc_id, body, if_match=e_tag)
        except PreconditionFailed:
            raise await self._conflict(doc_id, e_tag) from None
        except NotFound:
            pass
        # nothing stored under that key (any more): MemoryStorage writes it
        try:
            return await self.store.create(CONTAINER, doc_id, doc_id, body)
        except AlreadyExists:
            raise await self._conflict(doc_id, e_tag) from None

    async def _conflict(self, doc_id: str, e_tag: str) -> KeyError:
        """MemoryStorage's error, with the e_tag now stored."""
        current = await self.store.read(CONTAINER, doc_id, doc_id)
        current_etag = current.etag if current else None
        return KeyError(f"Etag conflict.\nOriginal: {e_tag}\r\nCurrent: {current_etag}")

    async def delete(self, keys: Iterable[str]) -> None:
        await self._open()
        for key in keys:
            doc_id = encode_key(key)
            await self.store.delete(CONTAINER, doc_id, doc_id)
