"""Who is calling: the principal the gateway's authentication policy put on the request.

The operations console calls the experience APIs with its own service identity on
behalf of a signed-in person. Only a principal holding `experience.console:write` may
name that person (`X-On-Behalf-Of`); the audit then records both, never a bare claim.
The rule itself lives in `foundation.audit` (the audit policy applies it too).
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from foundation.audit import DELEGATE_SCOPE, person_of
from foundation.identity import principal_of

__all__ = ["DELEGATE_SCOPE", "actor_of"]


def actor_of(request: Request[Any, Any, Any]) -> str:
    principal = principal_of(request)
    if principal is None:
        return "anonymous"
    person = person_of(principal, request.headers.get("x-on-behalf-of"))
    return f"{person} via {principal.subject}" if person else principal.subject
