"""botbuilder `Storage` (ConversationState, UserState...) on any `DocumentStore`.

One document per storage key in the `botstate` container, partitioned by the key itself, so a
read or write is one point operation whichever backend is behind it.

e_tag rules are botbuilder's `MemoryStorage` ones (botbuilder/core/memory_storage.py):
- `read(keys)` returns `{key: item}` for the keys that exist (missing keys are left out, no
  keys gives `{}`); a dict written comes back as a dict, an object as an object of its class
  (see below), each with its current `e_tag`.
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
- Values are stored as allowlisted JSON (`storage/botstate_codec.py`): a dict comes back as a
  dict and an object as its own class (DialogState, PromptOptions, Activity, StoreItem, and
  the application's classes registered with `register_state_class`). Stored data never names
  an arbitrary class to build: a class that is not on the allowlist is refused when written
  and when read (`NotAllowedClass`); botbuilder-azure's storages use jsonpickle's Unpickler,
  which lets whoever can write the database run code here. Documents written before this
  encoding (no `format`) are read as plain JSON, as they were written.
- `read(None)` raises `Exception("Keys are required when reading")`, as botbuilder's
  `StorageBaseTests` expect of every storage but MemoryStorage and CosmosDbPartitionedStorage.

Keys: Cosmos ids may not contain `/`, `\\`, `?` or `#`, and botbuilder keys do
(`msteams/conversations/19:...`). `encode_key` escapes them (and `%`) as `%XX`, which
`decode_key` reverses. A key whose escaped form exceeds Cosmos's id limit (1023 bytes) is
stored under a SHA-256 digest instead; the original key is kept in every document's body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterable
from typing import Any

from botbuilder.core import Storage, StoreItem

from storage.botstate_codec import (
    NotAllowedClass,
    allowed_class_names,
    decode,
    encode,
    register_state_class,
)
from storage.documents import AlreadyExists, Document, DocumentStore, NotFound, PreconditionFailed

__all__ = [
    "DocumentBotStorage",
    "NotAllowedClass",
    "allowed_class_names",
    "decode_key",
    "encode_key",
    "register_state_class",
]

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


def _get_etag(item: Any) -> str | None:
    if isinstance(item, dict):
        return item.get("e_tag")
    return getattr(item, "e_tag", None)


def _set_etag(item: Any, etag: str) -> None:
    if isinstance(item, dict):
        item["e_tag"] = etag
    else:
        # an immutable value (str, an enum, a pydantic model without e_tag) has nothing to update
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            item.e_tag = etag


FORMAT = 2  # allowlisted encoding; documents without `format` hold plain JSON


def _body(key: str, item: Any) -> dict[str, Any]:
    """The document for `item`: its encoding, without the e_tag (the document's ETag is it)."""
    if isinstance(item, dict):
        content = encode({k: v for k, v in item.items() if k != "e_tag"}, key)
    else:
        content = encode(item, key)
        if isinstance(content, dict) and "$type" in content:
            content["$state"].pop("e_tag", None)
    return {"key": key, "format": FORMAT, "document": content}


def _item(key: str, doc: Document) -> Any:
    if doc.body.get("format") != FORMAT:
        return _legacy_item(doc)
    try:
        item = decode(doc.body.get("document"))
    except (NotAllowedClass, ValueError) as e:
        raise type(e)(f"botstate key {key!r}: {e}") from None
    if isinstance(item, dict):
        item["e_tag"] = doc.etag
    elif not isinstance(item, str | int | float | bool | list | tuple | set | frozenset) \
            and item is not None:
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            item.e_tag = doc.etag
    return item


def _legacy_item(doc: Document) -> Any:
    """A document of the first encoding: plain JSON, objects kept as StoreItem attributes."""
    kind = doc.body.get("kind")
    content = doc.body.get("document")
    if kind == "value":
        return content
    content = dict(content or {})
    content["e_tag"] = doc.etag
    return StoreItem(**content) if kind == "store_item" else content


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
        if keys is None:
            raise Exception("Keys are required when reading")  # botbuilder's exact error
        data: dict[str, Any] = {}
        if not keys:
            return data
        await self._open()
        keys = list(dict.fromkeys(keys))
        ids = [encode_key(key) for key in keys]
        docs = await asyncio.gather(*(self.store.read(CONTAINER, i, i) for i in ids))
        for key, doc in zip(keys, docs, strict=True):
            if doc is not None:
                data[key] = _item(key, doc)
        return data

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise Exception("Changes are required when writing")
        if not changes:
            return
        await self._open()
        # everything encoded first: a value that cannot be stored stops the write before any
        bodies = {key: _body(key, change) for key, change in changes.items()}
        for key, change in changes.items():
            doc_id = encode_key(key)
            e_tag = _get_etag(change)
            if e_tag == "":
                raise Exception("DocumentBotStorage.write(): etag missing")
            body = bodies[key]
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
