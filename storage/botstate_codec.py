"""Allowlisted JSON for botbuilder state: how `DocumentBotStorage` stores objects safely.

Why not jsonpickle (what botbuilder-azure's storages use): its Unpickler builds whatever class
the stored data names, so whoever can write the database can make the bot import modules and
call constructors. Here stored data can only name a class on the allowlist: botbuilder's own
state classes (below) and the ones the application registers with `register_state_class`.
A name that is not on it is refused (`NotAllowedClass`) and nothing is imported or built.

The encoding is plain JSON. A dict whose keys are all strings not starting with `$` is stored
as itself; everything else is a small tagged object:

    {"$type": "botbuilder.dialogs.DialogState", "$state": {...the instance's attributes...}}
    {"$enum": "botbuilder.dialogs.choices.ListStyle", "$value": "hero_card"}
    {"$dict": [[key, value], ...]}   a dict with non-string or `$` keys
    {"$tuple": [...]}  {"$set": [...]}  {"$frozenset": [...]}  {"$bytes": "base64"}
    {"$datetime": "iso"}  {"$date": "iso"}  {"$time": "iso"}  {"$timedelta": [d, s, us]}
    {"$float": "nan"}  (and "inf", "-inf")

An allowed instance is rebuilt without calling its `__init__` (`cls.__new__` and its attribute
dict, as jsonpickle does, which is what botbuilder's classes expect); a pydantic model through
`model_validate`.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import importlib
import inspect
import math
import threading
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["NotAllowedClass", "allowed_class_names", "decode", "encode", "register_state_class"]

MAX_DEPTH = 100

# botbuilder's own state classes, by the public module that exports them. Dialogs keep
# DialogState/DialogInstance, PromptOptions (with Activity, Choice, ListStyle), OAuthPrompt's
# CallerInfo; the choice and date-time results a bot may keep in a waterfall's values.
_BOTBUILDER_CLASSES: dict[str, tuple[str, ...]] = {
    "botbuilder.core": ("StoreItem",),
    "botbuilder.dialogs": ("DialogInstance", "DialogReason", "DialogState", "DialogTurnStatus"),
    "botbuilder.dialogs.choices": (
        "Choice", "ChoiceFactoryOptions", "FindChoicesOptions", "FindValuesOptions",
        "FoundChoice", "FoundValue", "ListStyle", "ModelResult", "SortedValue", "Token",
    ),
    "botbuilder.dialogs.prompts": ("DateTimeResolution", "PromptOptions"),
    "botbuilder.dialogs.prompts.oauth_prompt": ("CallerInfo",),
    "botframework.connector": ("Channels",),  # an activity's channel_id may be one
}
# every msrest Model and enum these modules export (Activity, CardAction, TokenResponse...)
_SCHEMA_MODULES = ("botbuilder.schema", "botbuilder.schema.teams")

T = TypeVar("T", bound=type)


class NotAllowedClass(TypeError):
    """A class that is not on the allowlist: refused when writing and when reading."""


class _Allowlist:
    def __init__(self) -> None:
        self.by_name: dict[str, type] = {}
        self.names: dict[type, str] = {}
        self._builtins_loaded = False
        self._lock = threading.Lock()

    def add(self, cls: type, name: str) -> None:
        known = self.by_name.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"the state class name {name!r} is already taken by {known!r}")
        if self.names.get(cls, name) != name:
            raise ValueError(f"{cls!r} is already registered as {self.names[cls]!r}")
        self.by_name[name] = cls
        self.names[cls] = name

    def load_builtins(self) -> None:
        """Import botbuilder's modules once (only these fixed ones) and allow their classes."""
        if self._builtins_loaded:
            return
        with self._lock:
            if self._builtins_loaded:
                return
            for module_name, names in _BOTBUILDER_CLASSES.items():
                module = _import(module_name)
                for name in names if module else ():
                    self._add_builtin(getattr(module, name), f"{module_name}.{name}")
            from msrest.serialization import Model

            for module_name in _SCHEMA_MODULES:
                module = _import(module_name)
                for name, value in vars(module).items() if module else ():
                    if inspect.isclass(value) and issubclass(value, Model | enum.Enum):
                        self._add_builtin(value, f"{module_name}.{name}")
            self._builtins_loaded = True

    def _add_builtin(self, cls: type, name: str) -> None:
        if cls not in self.names and name not in self.by_name:
            self.add(cls, name)

    def name_of(self, cls: type) -> str | None:
        if cls not in self.names:
            self.load_builtins()
        return self.names.get(cls)

    def class_named(self, name: str) -> type | None:
        if name not in self.by_name:
            self.load_builtins()
        return self.by_name.get(name)


def _import(module_name: str) -> Any:
    """One of the fixed botbuilder modules above; None when it is not installed."""
    try:
        return importlib.import_module(module_name)
    except ImportError:  # botbuilder-dialogs is optional: without it, no dialog state exists
        return None


_ALLOWED = _Allowlist()


def register_state_class(cls: T, name: str | None = None) -> T:
    """Allow `cls` in stored state (a class decorator too). `name` is what documents store.

    Register every class of your own that you keep in ConversationState, UserState or a
    dialog's values, before the first read. Rebuilt without `__init__`; pydantic models are
    validated. The name defaults to `module.QualName`; give one to survive a rename.
    """
    if not inspect.isclass(cls):
        raise TypeError(f"register_state_class takes a class, not {cls!r}")
    if cls.__module__ == "builtins":
        raise TypeError(f"{cls.__name__} is a built-in type: it is stored as plain JSON already")
    _ALLOWED.add(cls, name or f"{cls.__module__}.{cls.__qualname__}")
    return cls


def allowed_class_names() -> list[str]:
    """Every class name stored data may use, botbuilder's and the registered ones."""
    _ALLOWED.load_builtins()
    return sorted(_ALLOWED.by_name)


# ---------------------------------------------------------------------------- encode


def encode(value: Any, where: str = "", depth: int = 0) -> Any:
    """`value` as JSON data; NotAllowedClass for an object whose class is not allowed."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where or 'the value'}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, enum.Enum):  # before str and int: str-valued enums are str
        return {"$enum": _allowed_name(type(value), where), "$value": value.value}
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, dict):
        return _encode_dict(value, where, depth)
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, tuple | set | frozenset):
        tag = {tuple: "$tuple", set: "$set", frozenset: "$frozenset"}[_base(value)]
        return {tag: [encode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    return _encode_object(value, where, depth)


def _base(value: Any) -> type:
    return next(t for t in (tuple, frozenset, set) if isinstance(value, t))


def _encode_dict(value: dict[Any, Any], where: str, depth: int) -> Any:
    if all(isinstance(k, str) and not k.startswith("$") for k in value):
        return {k: encode(v, f"{where}.{k}" if where else k, depth + 1) for k, v in value.items()}
    return {"$dict": [[encode(k, where, depth + 1), encode(v, f"{where}[{k!r}]", depth + 1)]
                      for k, v in value.items()]}


def _encode_object(value: Any, where: str, depth: int) -> Any:
    name = _allowed_name(type(value), where)
    if isinstance(value, BaseModel):
        state: Any = value.model_dump(mode="python")
    elif hasattr(value, "__dict__"):
        state = vars(value)
    else:
        raise NotAllowedClass(f"{where or 'the value'}: a {name} has no attribute dict to store")
    return {"$type": name, "$state": _encode_dict(state, where, depth + 1)}


def _allowed_name(cls: type, where: str) -> str:
    name = _ALLOWED.name_of(cls)
    if name is None:
        raise NotAllowedClass(
            f"{where or 'the value'}: a {cls.__module__}.{cls.__qualname__} is not an allowed "
            f"state class. Store plain data, or register it first: "
            f"storage.botstate.register_state_class({cls.__qualname__})"
        )
    return name


# ---------------------------------------------------------------------------- decode


_SCALAR_TAGS = {
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$bytes": lambda text: base64.b64decode(text.encode("ascii"), validate=True),
    "$float": lambda text: float({"nan": "nan", "inf": "inf", "-inf": "-inf"}[text]),
}
_SEQUENCE_TAGS = {"$tuple": tuple, "$set": set, "$frozenset": frozenset}


def decode(data: Any, depth: int = 0) -> Any:
    """What `encode` stored. NotAllowedClass names a class that is not on the allowlist,
    ValueError a document that is not in this encoding; nothing is built in either case."""
    if depth > MAX_DEPTH:
        raise ValueError(f"stored state nested deeper than {MAX_DEPTH} levels")
    if isinstance(data, list):
        return [decode(v, depth + 1) for v in data]
    if not isinstance(data, dict):
        return data
    tags = [k for k in data if k.startswith("$")]
    if not tags:
        return {k: decode(v, depth + 1) for k, v in data.items()}
    return _decode_tagged(data, tags, depth)


def _decode_tagged(data: dict[str, Any], tags: list[str], depth: int) -> Any:
    tag = tags[0]
    try:
        if tag == "$type" and set(data) == {"$type", "$state"}:
            return _build(_class_named(data["$type"]), decode(data["$state"], depth + 1))
        if tag == "$enum" and set(data) == {"$enum", "$value"}:
            cls = _class_named(data["$enum"])
            if not issubclass(cls, enum.Enum):
                raise ValueError(f"{data['$enum']} is not an enum")
            return cls(data["$value"])
        if len(data) == 1 and tag in _SCALAR_TAGS and isinstance(data[tag], str):
            return _SCALAR_TAGS[tag](data[tag])
        if len(data) == 1 and tag in _SEQUENCE_TAGS and isinstance(data[tag], list):
            return _SEQUENCE_TAGS[tag](decode(data[tag], depth + 1))
        if data.keys() == {"$timedelta"}:
            days, seconds, micro = data["$timedelta"]
            return dt.timedelta(days=days, seconds=seconds, microseconds=micro)
        if data.keys() == {"$dict"}:
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in data["$dict"]}
    except NotAllowedClass:
        raise
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"stored state has a malformed {tag} value: {e}") from None
    raise ValueError(f"stored state has an unknown tag {tag!r} (keys {sorted(data)[:5]})")


def _class_named(name: Any) -> type:
    cls = _ALLOWED.class_named(name) if isinstance(name, str) else None
    if cls is None:
        raise NotAllowedClass(
            f"stored state names the class {str(name)[:200]!r}, which is not on the allowlist: "
            "nothing was built. If it is one of your state classes, register it with "
            "storage.botstate.register_state_class before reading."
        )
    return cls


def _build(cls: type, state: Any) -> Any:
    if not isinstance(state, dict):
        raise ValueError(f"the attributes of a {cls.__name__} must be an object")
    if issubclass(cls, BaseModel):
        return cls.model_validate(state)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj
