"""How a system API call failed, as the process layer classifies it (published for the gateway's error mapping).

`TransientFailure`: retry later (429/502/503/504, transport errors), honouring `Retry-After`.
`BusinessFailure`: the system API refused the call with a 4xx problem; retrying cannot help.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BusinessFailure", "TransientFailure"]


class TransientFailure(Exception):
    """Retry later. Arguments stay in `args` so the exception survives DBOS's pickling."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return str(self.args[0])


class BusinessFailure(Exception):
    """A system API refused the call with a 4xx problem; retrying cannot help."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(status, problem)
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code") or problem.get("type", "")).rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.status}: {self.problem.get('detail') or self.problem.get('title')}"
