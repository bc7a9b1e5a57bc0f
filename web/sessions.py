"""Browser sessions and forms: who is signed in, and posts that really come from our pages.

Every POST must come from this origin (the `Origin` header, which browsers send on
form posts) and, once signed in, echo the session's CSRF token; the session cookie is
HttpOnly, Secure and SameSite=Lax, scoped to the web paths.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import Cookie

from contracts.problems import ProblemError
from web.portal.accounts import Accounts, Session

__all__ = ["COOKIE", "WebSessions"]

COOKIE = "psc_session"


class WebSessions:
    def __init__(self, accounts: Accounts, *, secure_cookies: bool = True) -> None:
        self.accounts = accounts
        self.secure_cookies = secure_cookies

    def current(self, request: Request[Any, Any, Any]) -> Session | None:
        return self.accounts.session(request.cookies.get(COOKIE))

    def require(self, request: Request[Any, Any, Any]) -> Session:
        session = self.current(request)
        if session is None:
            raise ProblemError(401, "unauthorized", "Sign in first", "This page needs a portal session.",
                               code="no_session")
        return session

    def cookie(self, value: str, max_age: int) -> Cookie:
        return Cookie(key=COOKIE, value=value, path="/", httponly=True, secure=self.secure_cookies,
                      samesite="lax", max_age=max_age)

    async def form(self, request: Request[Any, Any, Any], session: Session | None) -> dict[str, list[str]]:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise ProblemError(403, "forbidden", "Cross-site form", "Forms must be posted from this site.",
                               code="bad_origin")
        data = await request.form()
        values = {k: data.getall(k) for k in data}
        if session is not None and values.get("csrf_token", [""])[0] != session.csrf_token:
            raise ProblemError(403, "forbidden", "CSRF check failed", "Reload the page and try again.",
                               code="csrf_failed")
        return values
