"""The action registry: every module here that defines `ACTION` is an action.

A new action is one new file in this package.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from pipelines.actions.base import Action


@cache
def registry() -> dict[str, Action]:
    found: dict[str, Action] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        action = getattr(module, "ACTION", None)
        if isinstance(action, Action):
            found[action.name] = action
    return found


def get_action(name: str) -> Action:
    return registry()[name]
