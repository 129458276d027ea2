"""The REST API's interactive page: Swagger UI at /api/v1/docs for the
generated document, its assets served from the swagger-ui-py package (no
CDN: many deployments reach nothing beyond their own network)."""

from __future__ import annotations

import json
from functools import cache

from aiohttp import web
from swagger_ui.core import ApplicationDocument

PATH = "/api/v1/docs"
ASSETS = f"{PATH}/static"


@cache
def _html(document_url: str) -> str:
    page = ApplicationDocument(None, url_prefix=PATH, title="csms API", config_rel_url="/")
    page.parameters["url"] = json.dumps(document_url)  # our own document, not the package's
    return str(page.doc_html)


def page(document_url: str) -> web.Response:
    """The page, which loads ``document_url`` and its assets under ASSETS."""
    return web.Response(text=_html(document_url), content_type="text/html")


def assets() -> web.StaticDef:
    """Swagger UI's scripts and styles, as the package ships them."""
    static_dir = ApplicationDocument(None, url_prefix=PATH, config_rel_url="/").static_dir
    return web.static(ASSETS, static_dir)
