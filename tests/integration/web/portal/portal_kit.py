"""What the portal tests share: a browser-like client, the mail the server logged, and the server's own command.

The portal writes its mail (the confirmation link) to the server log when no SMTP is
configured; `MAILBOX` is a logging handler on that logger, so a test reads the link as an
operator would read the log. `psconnect(...)` runs the real `psconnect` command in-process
against the stack's home directory, as an operator on the server would.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from typing import Any

import httpx

from cli.main import main
from tests.stack import Stack

__all__ = ["MAILBOX", "PASSWORD", "browser", "csrf", "psconnect", "sign_up", "sign_up_confirmed"]

PASSWORD = "correct horse battery staple"


class Mailbox(logging.Handler):
    """Every `portal_email` line the server logged, in order."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.mail: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if fields.get("event") == "portal_email":
            self.mail.append(dict(fields))

    def link(self, to: str, purpose: str = "confirm_email") -> str:
        found = [m["link"] for m in self.mail if m["to"] == to and m["purpose"] == purpose]
        assert found, f"no {purpose} mail to {to} in the server log"
        return str(found[-1])


MAILBOX = Mailbox()
logging.getLogger("psconnect.portal.mail").addHandler(MAILBOX)


def browser(stack: Stack) -> httpx.AsyncClient:
    """A cookie-keeping client on https, as a browser would be (session cookies are Secure)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=stack.gateway.app),  # type: ignore[arg-type]
                             base_url="https://portal.test", follow_redirects=True,
                             headers={"Origin": "https://portal.test"})


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "page has no CSRF token"
    return match.group(1)


async def sign_up(client: httpx.AsyncClient, email: str = "dev@example.com") -> httpx.Response:
    return await client.post("/portal/signup", data={"email": email, "name": "Dev", "password": PASSWORD})


async def sign_up_confirmed(client: httpx.AsyncClient, email: str = "dev@example.com") -> httpx.Response:
    """Sign up, then open the confirmation link the server logged, as its owner would from the mail."""
    answer = await sign_up(client, email)
    assert answer.status_code == 200, answer.text
    link = httpx.URL(MAILBOX.link(email))
    confirmed = await client.get(link.raw_path.decode())
    assert confirmed.status_code == 200 and "Email confirmed" in confirmed.text, confirmed.text
    return answer


def psconnect(stack: Stack, *argv: str) -> tuple[int, str, str]:
    """Run `psconnect …` against the stack's database; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.pop("DATABASE_URL", None)
    os.environ.update({"PSCONNECT_HOME": stack.gateway.settings.home_dir, "PSCONNECT_SEED_DEMO": "0"})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()
