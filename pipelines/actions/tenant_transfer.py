"""`tenant_transfer`: move the chat to another department's primary pipeline.

The engine carries it out (it owns the store and the hop limit); this module holds the
settings and their load-time checks: the target must exist, be enabled, and not be the
stage's own tenant.
"""

from __future__ import annotations

from typing import Literal

from pipelines.actions.base import Action, LoadCheck, Outcome, StageContext, Transfer
from pipelines.config import StageConfig, TemplateRef

DEFAULT_TEMPLATE = "builtin:transfer"


class TenantTransferStage(StageConfig):
    action: Literal["tenant_transfer"] = "tenant_transfer"
    tenant: str
    # the card the guest gets; binds Session.TransferredFrom.* / Session.TransferredTo.*
    template: TemplateRef = DEFAULT_TEMPLATE
    # where to go if the chat has already been transferred too often (None: end it)
    on_hop_limit: str | None = None

    def targets(self) -> dict[str, str]:
        return {"on_hop_limit": self.on_hop_limit} if self.on_hop_limit else {}

    def template_refs(self) -> dict[str, TemplateRef]:
        return {"template": self.template}


class TenantTransferAction(Action[TenantTransferStage]):
    name = "tenant_transfer"
    settings = TenantTransferStage

    async def enter(self, ctx: StageContext, stage: TenantTransferStage) -> Outcome:
        return Transfer(stage.tenant, "template", stage.on_hop_limit)

    def check(self, stage: TenantTransferStage, load: LoadCheck) -> list[str]:
        if stage.tenant in load.broken_tenants:
            return []
        known = {t.id: t for t in load.config.tenants}
        target = known.get(stage.tenant)
        if target is None:
            return [
                f"transfer to unknown tenant {stage.tenant!r}: use one of "
                + ", ".join(sorted(known))
            ]
        if not target.enabled:
            return [f"transfer to disabled tenant {stage.tenant!r}: enable it or pick another"]
        if target.id == load.tenant.id:
            return [f"transfer to its own tenant {stage.tenant!r}: use `next` to move within it"]
        if stage.next:
            return ["`tenant_transfer` cannot have `next`: the target's pipeline runs next"]
        return []


ACTION = TenantTransferAction()
