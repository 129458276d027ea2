"""The REST API's interactive page: Swagger UI at /api/v1/docs for the
generated document, its assets served from the swagger-ui-py package (no
CDN: many deployments reach nothing beyond their own network).

The package (and jinja2, which renders its page) is imported on the first
request for the page: a process nobody browses does not carry its ~14 MiB.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path

from aiohttp import web

PATH = "/api/v1/docs"
ASSETS = f"{PATH}/static"
PACKAGE = "swagger_ui"


@cache
def _html(document_url: str) -> str:
    from swagger_ui.core import ApplicationDocument  # noqa: PLC0415 - see the module docstring

    page = ApplicationDocument(None, url_prefix=PATH, title="csms API", config_rel_url="/")
    page.parameters["url"] = json.dumps(document_url)  # our own document, not the package's
    return str(page.doc_html)


def page(document_url: str) -> web.Response:
    """The page, which loads ``document_url`` and its assets under ASSETS."""
    return web.Response(text=_html(document_url), content_type="text/html")


def assets() -> web.StaticDef:
    """Swagger UI's scripts and styles as the package ships them (found, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {PACKAGE} package (swagger-ui-py) is not installed")
    return web.static(ASSETS, Path(spec.submodule_search_locations[0]) / "static")
