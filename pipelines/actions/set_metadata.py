"""`set_metadata`: set metadata from literals or bound values, then go on.

    - key: tag
      action: set_metadata
      values:
        Answers.Source: faq
        Answers.Priority: 2
        Guest.Greeting: "Hi ${Guest.Name}"
      next: department

A string is bound like a template text (`${...}`, checked when the config loads); a string that
is one `${...}` keeps the value's type. What a guest typed is inserted as data, never read as a
template. Keys must be metadata names, and the bot's own (`Session.*`, `Tenant.*`, `Agent.*`
and the built-in `Guest.*` keys) cannot be overwritten.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from pipelines.actions.base import Action, Goto, Outcome, StageContext
from pipelines.config import METADATA_KEY_PATTERN, StageConfig
from storage.models import MetadataValue

RESERVED_NAMESPACES = ("Session.", "Tenant.", "Agent.")
MAX_VALUE_LENGTH = 4000


class SetMetadataStage(StageConfig):
    action: Literal["set_metadata"] = "set_metadata"
    values: dict[str, MetadataValue] = Field(min_length=1, max_length=50)

    @field_validator("values", mode="before")
    @classmethod
    def _scalars(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for key, value in values.items():
                if value is not None and not isinstance(value, str | int | float | bool):
                    raise ValueError(
                        f"the value of {key!r} must be text, a number, true/false or null"
                    )
        return values
    next: str

    @field_validator("values")
    @classmethod
    def _keys(cls, values: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        from pipelines.loader import GUEST_KEYS

        for key, value in values.items():
            if not re.match(METADATA_KEY_PATTERN, key):
                raise ValueError(
                    f"{key!r} is not a metadata name: use dotted names like Answers.Source"
                )
            if key.startswith(RESERVED_NAMESPACES) or key in GUEST_KEYS:
                raise ValueError(
                    f"{key!r} is the bot's own metadata and cannot be set: use another name, "
                    "like Answers.Source"
                )
            if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
                raise ValueError(f"the value of {key!r} is over {MAX_VALUE_LENGTH} characters")
        return values

    def metadata_written(self) -> list[str]:
        return list(self.values)

    def text_templates(self) -> dict[str, str]:
        return {f"values.{k}": v for k, v in self.values.items() if isinstance(v, str)}


class SetMetadataAction(Action[SetMetadataStage]):
    name = "set_metadata"
    settings = SetMetadataStage

    async def enter(self, ctx: StageContext, stage: SetMetadataStage) -> Outcome:
        # every value is bound against the metadata as it was when the stage began
        bound = {
            key: ctx.bind_text(value) if isinstance(value, str) else value
            for key, value in stage.values.items()
        }
        for key, value in bound.items():
            ctx.set_metadata(key, value)
        return Goto(stage.next)


ACTION = SetMetadataAction()
