"""`condition`: branch on metadata with the safe expression language of `cards.expressions`.

    - key: route
      action: condition
      branches:
        - {when: "Answers.Urgency == 'Blocking'", next: call_now}
        - {when: "contains(['Laptop', 'Phone'], Answers.Device)", next: hardware}
      otherwise: queue

Branches are tried in order; the first whose `when` is true (the boolean, as for a card's
`$when`: text or a number is not) wins, else `otherwise`. Each
expression is parsed when the config loads (a bad one is a config error naming the stage) and
every name it reads must be one a stage or the bot provides, as in templates. No `eval`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cards.expressions import Expression, ExpressionError, is_true, parse
from pipelines.actions.base import Action, Goto, LoadCheck, Outcome, StageContext
from pipelines.config import StageConfig


def expression_text(text: str) -> str:
    """The expression itself: `${...}` around the whole of it is allowed and dropped."""
    stripped = text.strip()
    if stripped.startswith("${") and stripped.endswith("}") and "${" not in stripped[2:]:
        return stripped[2:-1]
    return text


class Branch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: str = Field(min_length=1, max_length=2000)
    next: str

    @field_validator("when")
    @classmethod
    def _parses(cls, value: str) -> str:
        text = expression_text(value)
        if "${" in text:
            raise ValueError(
                "write the expression itself, without ${...} inside, like "
                "Answers.Urgency == 'Blocking' && exists(Guest.Name)"
            )
        try:
            parse(text)
        except ExpressionError as exc:
            raise ValueError(f"not a valid expression: {exc}") from None
        return value

    @property
    def expression(self) -> Expression:
        return parse(expression_text(self.when))


class ConditionStage(StageConfig):
    action: Literal["condition"] = "condition"
    branches: list[Branch] = Field(min_length=1, max_length=50)
    # where to go when no branch is true
    otherwise: str

    def targets(self) -> dict[str, str]:
        out = {f"branches.{i}.next": b.next for i, b in enumerate(self.branches)}
        out["otherwise"] = self.otherwise
        return out

    def metadata_read(self) -> dict[str, list[str]]:
        return {
            f"branches.{i}.when": sorted(b.expression.paths())
            for i, b in enumerate(self.branches)
        }


class ConditionAction(Action[ConditionStage]):
    name = "condition"
    settings = ConditionStage

    async def enter(self, ctx: StageContext, stage: ConditionStage) -> Outcome:
        values = {
            **ctx.session.metadata,
            "Tenant.Id": ctx.tenant.id,
            "Tenant.Name": ctx.tenant.name,
        }
        for branch in stage.branches:
            if is_true(branch.expression.evaluate(values)):
                return Goto(branch.next)
        return Goto(stage.otherwise)

    def check(self, stage: ConditionStage, load: LoadCheck) -> list[str]:
        problems = []
        if stage.next:
            problems.append("`condition` has no `next`: use `branches` and `otherwise`")
        if stage.key in stage.targets().values():
            problems.append("a branch leads back to this stage: that would loop; pick another")
        return problems


ACTION = ConditionAction()
