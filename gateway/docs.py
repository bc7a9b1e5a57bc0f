"""The API catalog and reference docs the gateway serves: `/apis`, `/docs`, Swagger UI.

Every byte a browser needs comes from this process — Swagger UI's script, styles and
favicon are served from the installed `swagger_ui_bundle` package at
`/docs/assets/` — because the machines that run the gateway have no internet, and
a portal loading from a CDN renders blank there. The documents are generated from
the running app with `gateway.openapi.generate` (once per app, then cached), so the
reference always describes what this process serves; the checked-in files under
`contracts/openapi/` are the same bytes while `tests/contract/test_published.py`
passes. These routes are ungoverned and not part of any contract.
"""

from __future__ import annotations

import html
import json
from typing import Any, Final

import msgspec
from litestar import Litestar, Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from gateway.openapi import DEFAULT_ORIGIN, PUBLISHED_DIR, ApiEntry, catalog, generate, render, server_object
from policies.bindings import Bindings

__all__ = ["ASSETS", "RELEASES_DIR", "CatalogEntry", "CatalogLinks", "docs_router"]

ASSETS: Final = "/docs/assets"
# The last released contracts (governance baseline); the changelog compares the served documents with them.
RELEASES_DIR: Final = PUBLISHED_DIR.parent / "releases"
_LAYERS: Final = ("experience", "process", "system", "gateway")
_LAYER_TITLES: Final = {"experience": "Experience APIs", "process": "Process APIs", "system": "System APIs",
                        "gateway": "Gateway"}


class CatalogLinks(msgspec.Struct, frozen=True, kw_only=True):
    openapi: str
    docs: str


class CatalogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One API version as the catalog lists it."""

    name: str
    version: str
    title: str
    layer: str
    lifecycle: str
    owner: str
    description: str
    scopes: tuple[str, ...]
    links: CatalogLinks
    deprecated_since: str | None = None
    sunset: str | None = None
    successor: str | None = None


class _Published:
    """The documents and catalog of one app, generated on first use."""

    def __init__(self, app: Litestar, bindings: Bindings) -> None:
        self.entries: list[ApiEntry] = catalog(app, bindings)
        self.documents = generate(app, bindings)
        self.texts = {key: render(doc).encode() for key, doc in self.documents.items()}

    def entry(self, name: str, version: str) -> ApiEntry:
        for entry in self.entries:
            if entry.name == name and entry.version == version:
                return entry
        raise NotFoundException(f"No published API {name!r} version {version!r}.")


def _links(entry: ApiEntry) -> CatalogLinks:
    return CatalogLinks(openapi=f"/apis/{entry.name}/{entry.version}/openapi.json",
                        docs=f"/docs/{entry.name}/{entry.version}")


def _catalog_entry(entry: ApiEntry) -> CatalogEntry:
    dep = entry.deprecation
    return CatalogEntry(name=entry.name, version=entry.version, title=entry.title, layer=entry.layer,
                        lifecycle=entry.lifecycle, owner=entry.owner, description=entry.description,
                        scopes=entry.scopes, links=_links(entry),
                        deprecated_since=dep.since.isoformat() if dep else None,
                        sunset=dep.sunset.isoformat() if dep else None, successor=dep.successor if dep else None)


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 2rem;
color:#1b1f24}
h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
ul{list-style:none;padding:0}li{margin:.9rem 0}a{color:#0550ae}.meta{color:#57606a;font-size:.85rem}
.badge{display:inline-block;border-radius:1rem;padding:0 .55rem;font-size:.75rem;font-weight:600;margin-left:.4rem;
vertical-align:middle}
.badge-stable{background:#dafbe1;color:#116329}.badge-beta{background:#fff8c5;color:#7d4e00}
.badge-deprecated{background:#ffebe9;color:#a40e26}
"""


def _index_html(entries: list[ApiEntry]) -> str:
    sections = []
    for layer in sorted({e.layer for e in entries}, key=lambda x: (_LAYERS.index(x) if x in _LAYERS else 99, x)):
        items = []
        for e in (e for e in entries if e.layer == layer):
            links = _links(e)
            sunset = f" · sunset {e.deprecation.sunset.isoformat()}" if e.deprecation else ""
            items.append(
                f'<li><a href="{links.docs}">{html.escape(e.title)}</a> <code>{html.escape(e.name)}</code> '
                f"{html.escape(e.version)}"
                f'<span class="badge badge-{html.escape(e.lifecycle)}">{html.escape(e.lifecycle)}</span>'
                f"<div>{html.escape(e.description)}</div>"
                f'<div class="meta">owner {html.escape(e.owner)}{sunset} · '
                f'<a href="{links.openapi}">OpenAPI document</a> · '
                f'<a href="/apis/{html.escape(e.name)}/changelog">changelog</a></div></li>')
        sections.append(f"<h2>{html.escape(_LAYER_TITLES.get(layer, layer.title()))}</h2><ul>{''.join(items)}</ul>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>psconnect APIs</title>'
        f'<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png"><style>{_STYLE}</style></head>'
        "<body><h1>psconnect APIs</h1><p>Published contracts of the gateway, by layer. Calls need an OAuth2 "
        f"client-credentials token from <code>/oauth2/token</code>; the catalog is also at "
        f'<a href="/apis">/apis</a>.</p>{"".join(sections)}</body></html>'
    )


def _swagger_html(entry: ApiEntry) -> str:
    config: dict[str, Any] = {
        "url": _links(entry).openapi, "dom_id": "#swagger-ui", "deepLinking": True, "validatorUrl": None,
        "layout": "BaseLayout", "persistAuthorization": False, "displayRequestDuration": True,
        "oauth2RedirectUrl": f"{ASSETS}/oauth2-redirect.html",
    }
    # Client credentials: the Authorize dialog asks for client id and secret and fetches the token itself.
    oauth = {"scopes": list(entry.scopes), "appName": entry.title}
    script = (f"window.ui = SwaggerUIBundle(Object.assign({_js(config)}, "
              "{presets: [SwaggerUIBundle.presets.apis]}));\n"
              f"window.ui.initOAuth({_js(oauth)});")
    title = html.escape(f"{entry.title} {entry.version}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} — psconnect</title>'
        f'<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">'
        f'<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">'
        '<style>body{margin:0}.back{font-family:system-ui,sans-serif;padding:.6rem 1.2rem;'
        'border-bottom:1px solid #d0d7de}</style></head><body>'
        '<div class="back"><a href="/docs">← All APIs</a></div><div id="swagger-ui"></div>'
        f'<script src="{ASSETS}/swagger-ui-bundle.js"></script><script>{script}</script></body></html>'
    )


def _js(value: Any) -> str:
    # JSON is valid JavaScript; escaping "<" keeps a value from closing the script element.
    return json.dumps(value, sort_keys=True).replace("<", "\\u003c")


def docs_router(bindings: Bindings) -> Router:
    """The catalog, documents, docs pages and their assets, for the app the router is mounted on."""
    published: dict[int, tuple[Litestar, _Published]] = {}

    def for_app(app: Litestar) -> _Published:
        hit = published.get(id(app))
        if hit is None or hit[0] is not app:
            hit = published[id(app)] = (app, _Published(app, bindings))
        return hit[1]

    @get("/apis", sync_to_thread=False)
    def list_apis(request: Request[Any, Any, Any]) -> list[CatalogEntry]:
        return [_catalog_entry(e) for e in for_app(request.app).entries]

    @get("/apis/{name:str}/{version:str}/openapi.json", sync_to_thread=False)
    def openapi_document(request: Request[Any, Any, Any], name: FromPath[str], version: FromPath[str]
                         ) -> Response[bytes]:
        pub = for_app(request.app)
        entry = pub.entry(name, version)
        origin = str(request.base_url).rstrip("/")
        if origin == DEFAULT_ORIGIN:
            return Response(pub.texts[entry.key], media_type="application/json")
        # The served document names the origin it was fetched from, so its server URL works as it is.
        document = {**pub.documents[entry.key], "servers": [server_object(origin)]}
        return Response(render(document).encode(), media_type="application/json")

    @get("/apis/{name:str}/changelog", sync_to_thread=False)
    def api_changelog(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
        from governance.changelog import changelogs
        from governance.spec import load_contracts

        pub = for_app(request.app)
        if not any(e.name == name for e in pub.entries):
            raise NotFoundException(f"No published API {name!r}.")
        released = load_contracts(RELEASES_DIR) if RELEASES_DIR.is_dir() else {}
        logs = changelogs(released, pub.documents, api=name)
        return Response(msgspec.json.encode({"api": name, "changelogs": logs}), media_type="application/json")

    @get("/docs", sync_to_thread=False)
    def docs_index(request: Request[Any, Any, Any]) -> Response[str]:
        return Response(_index_html(for_app(request.app).entries), media_type="text/html")

    @get("/docs/{name:str}/{version:str}", sync_to_thread=False)
    def docs_page(request: Request[Any, Any, Any], name: FromPath[str], version: FromPath[str]) -> Response[str]:
        return Response(_swagger_html(for_app(request.app).entry(name, version)), media_type="text/html")

    assets = create_static_files_router(path=ASSETS, directories=[str(swagger_ui_path)], name="docs-assets",
                                        include_in_schema=False)
    return Router(path="/", include_in_schema=False,
                  route_handlers=[list_apis, openapi_document, api_changelog, docs_index, docs_page, assets])
