"""Who is calling: the principal the gateway's authentication policy put on the request.

The operations console calls the experience APIs with its own service identity on
behalf of a signed-in person. Only a principal holding `experience.console:write` may
name that person (`X-On-Behalf-Of`); the audit then records both, never a bare claim.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from foundation.identity import principal_of

__all__ = ["DELEGATE_SCOPE", "actor_of"]

DELEGATE_SCOPE = "experience.console:write"
_PERSON = re.compile(r"^[^\s@,;]{1,64}@[^\s@,;]{1,190}$")


def actor_of(request: Request[Any, Any, Any]) -> str:
    principal = principal_of(request)
    if principal is None:
        return "anonymous"
    person = request.headers.get("x-on-behalf-of", "")
    if person and DELEGATE_SCOPE in principal.scopes and _PERSON.match(person):
        return f"{person} via {principal.subject}"
    return principal.subject
