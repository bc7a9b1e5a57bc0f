"""The refusal every part of the NetSuite simulator raises; the app renders it as NetSuite's error body."""

from __future__ import annotations

__all__ = ["NsError"]


class NsError(Exception):
    """A refusal the simulator renders as NetSuite's error body."""

    def __init__(self, status: int, code: str, detail: str, path: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.path = path
