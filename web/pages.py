"""Server-rendered pages for the portal and the console.

Jinja2 with autoescaping, and a Content-Security-Policy of `default-src 'self'` on
every page, so nothing can load from anywhere but the gateway — the machines have no
internet, and a page that reaches for a CDN renders blank there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from litestar import Response
from litestar.datastructures import Cookie
from litestar.enums import MediaType

__all__ = ["CSP", "render"]

WEB = Path(__file__).resolve().parent
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader([WEB / "portal" / "templates", WEB / "console" / "templates"]),
    autoescape=True, undefined=jinja2.StrictUndefined)


def render(template: str, status: int = 200, cookies: list[Cookie] | None = None, **context: Any) -> Response[str]:
    context.setdefault("notice", None)
    context.setdefault("error", None)
    context.setdefault("session", None)
    html = _env.get_template(template).render(**context)
    return Response(html, status_code=status, media_type=MediaType.HTML, cookies=cookies or [],
                    headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                             "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})
