"""Who may act on an account: its owner, or a teller."""

from __future__ import annotations

from core.auth import Principal

__all__ = ["TELLER", "can_access"]

TELLER = "teller"


def can_access(actor: Principal, owner: str) -> bool:
    return actor.subject == owner or actor.has_role(TELLER)
