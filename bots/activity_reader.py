"""Activities read from a request's JSON with msrest's exact rules, without its generic cost.

`Activity().deserialize(body)` rebuilds msrest's registry of every schema model and re-derives
each attribute's key, type and key extractors on every call: a fifth of a guest turn's CPU. The
same `_attribute_map`s are read here once per model class into a plan. The rules kept are
msrest's for JSON input (`Deserializer.deserialize_data` and friends): `str` fields take
`str(value)`, `bool` takes True/False/1/0 and "true"/"false"/"1"/"0", `int`/`float` convert,
`iso-8601` goes through msrest's own parser, `object` values are kept as parsed (JSON only
holds dicts, lists and scalars, which msrest copies unchanged), unknown keys become the model's
`additional_properties`. Anything else, and every input the plan refuses, goes to msrest itself,
so the outcome (the model, or msrest's error) is msrest's; `tests/test_activity_reader.py`
checks that the two agree on generated hostile input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from botbuilder.schema import Activity
from msrest.serialization import Deserializer, Model

M = TypeVar("M", bound=Model)

_BASIC = ("str", "bool", "int", "float")


class _Refused(Exception):
    """The plan does not cover this input: msrest decides."""


Reader = Callable[[Any], Any]


def _basic(kind: str) -> Reader:
    if kind == "str":
        return str  # msrest: str(value) for anything but an Enum, which JSON never holds
    if kind == "bool":
        def to_bool(value: Any) -> bool:
            if value in (True, False, 1, 0):
                return bool(value)
            if isinstance(value, str):
                lowered = value.lower()
                if lowered in ("true", "1"):
                    return True
                if lowered in ("false", "0"):
                    return False
            raise _Refused
        return to_bool
    return int if kind == "int" else float


def _iso(value: Any) -> Any:
    return Deserializer.deserialize_iso(value)


def _kept(value: Any) -> Any:
    return value


class _Plans:
    def __init__(self) -> None:
        self._plans: dict[type[Model], tuple[list[tuple[str, str, Reader]], frozenset[str]]] = {}
        self._models: dict[str, type[Model]] = {}

    def reader(self, type_name: str, models: dict[str, Any]) -> Reader:
        if type_name in _BASIC:
            convert = _basic(type_name)
            return lambda value: None if value is None else convert(value)
        if type_name == "iso-8601":
            return lambda value: None if value is None else _iso(value)
        if type_name == "object":
            return _kept
        if len(type_name) > 2 and type_name[0] + type_name[-1] in ("[]", "{}"):
            inner = self.reader(type_name[1:-1], models)
            if type_name[0] == "[":
                def many(value: Any) -> Any:
                    if value is None:
                        return None
                    if not isinstance(value, list):
                        raise _Refused
                    return [inner(item) for item in value]
                return many

            def mapping(value: Any) -> Any:
                if value is None:
                    return None
                if not isinstance(value, dict):
                    raise _Refused  # msrest also takes a list of key/value pairs: let it
                return {key: inner(item) for key, item in value.items()}
            return mapping
        target = models.get(type_name)
        if isinstance(target, type) and issubclass(target, Model):
            return lambda value: None if value is None else self.read(target, value)
        raise _Refused  # an enum or a type this plan does not know

    def plan(self, cls: type[Model]) -> tuple[list[tuple[str, str, Reader]], frozenset[str]]:
        found = self._plans.get(cls)
        if found is not None:
            return found
        if getattr(cls, "_subtype_map", None) or getattr(cls, "_validation", None):
            raise _Refused
        models = cls._infer_class_models()
        fields: list[tuple[str, str, Reader]] = []
        # placeholder first: models that refer to themselves (ConversationReference) resolve
        self._plans[cls] = (fields, frozenset())
        try:
            for attr, desc in cls._attribute_map.items():
                key = desc["key"]
                if not key or "." in key or "\\" in key:
                    raise _Refused
                fields.append((attr, key, self.reader(desc["type"], models)))
        except _Refused:
            del self._plans[cls]
            raise
        plan = (fields, frozenset(key for _, key, _ in fields))
        self._plans[cls] = plan
        return plan

    def read(self, cls: type[M], data: Any) -> M:
        if not isinstance(data, dict):
            raise _Refused
        fields, known = self.plan(cls)
        values = {attr: read(data.get(key)) for attr, key, read in fields}
        model = cls(**values)
        extra = {key: data[key] for key in data.keys() - known}
        if extra:
            model.additional_properties = extra
        return model


_PLANS = _Plans()


def read_model(cls: type[M], data: Any) -> M:
    """`cls().deserialize(data)`, the same result, at a fraction of the cost."""
    try:
        return _PLANS.read(cls, data)
    except Exception:
        return cls.deserialize(data)


def read_activity(data: Any) -> Activity:
    return read_model(Activity, data)
