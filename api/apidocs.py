"""The browsable API documentation under ``/schema``: Swagger UI (``/schema``, ``/schema/swagger``)
and Scalar (``/schema/scalar``), loading their JavaScript and CSS from this app, never from a CDN,
so the pages work on a network that reaches nothing else.

The copies are pinned in ``api/static/assets.lock.json`` and fetched by ``scripts/fetch-api-assets``
into ``api/static/assets/<ui>-<version>/``, served at ``/schema/assets/<ui>-<version>/<file>``.
A URL names one version, so its content never changes: it is cached for a year. Every other
unknown path under ``/schema`` answers the ``not-found`` problem document.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Final

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_404_NOT_FOUND
from litestar.types import ASGIApp

__all__ = ["ASSETS_PATH", "SCHEMA_PATH", "asset_url", "openapi_router", "render_plugins"]

SCHEMA_PATH: Final = "/schema"
ASSETS_PATH: Final = f"{SCHEMA_PATH}/assets"
STATIC: Final = Path(__file__).parent / "static"
ASSETS: Final = STATIC / "assets"
LOCK: Final = STATIC / "assets.lock.json"
# No icon rather than the plugins' default one, which a CDN serves.
NO_FAVICON: Final = "<link rel='icon' href='data:,'>"
SCALAR_OPTIONS: Final[dict[str, Any]] = {
    # By default Scalar fetches its fonts from fonts.scalar.com, sends "Test Request" calls through
    # proxy.scalar.com, and on a local host adds an assistant and a toolbar ("Share", "Deploy
    # API") backed by scalar.com services. None of that here.
    "withDefaultFonts": False,
    "proxyUrl": "",
    "agent": {"disabled": True},
    "showDeveloperTools": "never",
    # Every tag's operations listed at once, as Swagger UI does; the document is small.
    "defaultOpenAllTags": True,
}


@functools.cache
def _pins() -> dict[str, Any]:
    return dict(json.loads(LOCK.read_text()))


def asset_url(ui: str, file: str) -> str:
    """The URL of a pinned file of ``ui`` (a name in the lock file); a file missing from the
    installation is an error here, not a blank page in the browser."""
    pin = _pins()[ui]
    directory = f"{ui}-{pin['version']}"
    if not (ASSETS / directory / file).is_file():
        raise FileNotFoundError(
            f"{ASSETS / directory / file} is missing: run scripts/fetch-api-assets"
        )
    return f"{ASSETS_PATH}/{directory}/{file}"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI first (so it is also the page at ``/schema``), then Scalar."""
    return [
        SwaggerRenderPlugin(
            js_url=asset_url("swagger-ui", "swagger-ui-bundle.js"),
            css_url=asset_url("swagger-ui", "swagger-ui.css"),
            standalone_preset_js_url=asset_url("swagger-ui", "swagger-ui-standalone-preset.js"),
            favicon=NO_FAVICON,
        ),
        ScalarRenderPlugin(
            path="/scalar",
            js_url=asset_url("scalar", "standalone.js"),
            # The bundle carries its own styles; the page's stylesheet link gets an empty one.
            css_url="data:text/css,",
            options=SCALAR_OPTIONS,
            favicon=NO_FAVICON,
        ),
    ]


async def _problem_for_not_found(response: ASGIApp) -> ASGIApp:
    """Litestar answers an unknown ``/schema/<name>`` with an HTML page of its own; raising
    instead sends it through the app's exception handler, like every other 404."""
    if getattr(response, "status_code", None) == HTTP_404_NOT_FOUND:
        raise NotFoundException
    return response


def openapi_router() -> Router:
    """The router Litestar completes with the render plugins' pages and ``openapi.json``."""
    assets = create_static_files_router(
        path="/assets",
        directories=[ASSETS],
        name="apidocs-assets",
        cache_control=CacheControlHeader(max_age=365 * 24 * 3600, public=True, immutable=True),
        include_in_schema=False,
    )
    return Router(
        SCHEMA_PATH,
        route_handlers=[assets],
        include_in_schema=False,
        after_request=_problem_for_not_found,
    )
