"""The automatic `OPTIONS` answer names every method of its path (`Allow`, RFC 9110 §10.2.1).

Litestar builds one route per path and gives it an `OPTIONS` handler whose `Allow` lists
that route's methods. When a second router adds methods to an existing path (a process's
`POST /runs` beside the shared `GET /runs` of `process_apis/_internal/routes.py`), Litestar
builds a new route but keeps the first route's `OPTIONS` handler, which still answers
with the first route's methods only (`Allow: OPTIONS, POST` on a path that also serves
GET). `repair_options_allow` gives every such route an `OPTIONS` handler of its own.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.routes import HTTPRoute

__all__ = ["repair_options_allow"]

_AUTOMATIC = "options_handler"  # the name Litestar gives the handler it creates itself


def repair_options_allow(app: Litestar) -> None:
    """Replace each automatic `OPTIONS` handler with one built for its own route."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        old, _ = route.route_handler_map["OPTIONS"]
        if old.handler_name != _AUTOMATIC:
            continue  # an application's own OPTIONS handler answers as it was written
        fresh = route.create_options_handler(route.path)
        fresh.owner = old.owner
        fresh.on_registration(app)
        route.route_handlers = [fresh if handler is old else handler for handler in route.route_handlers]
        route.route_handler_map["OPTIONS"] = (fresh, fresh.create_kwargs_model(path_parameters=route.path_parameters))
