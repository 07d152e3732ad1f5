"""``/docs``: Swagger UI over the router's own OpenAPI document, served from the package.

No CDN: the page's script and stylesheet are the Swagger UI build that Powertools (a
dependency of the Lambda already) ships inside its wheel, so the page works offline and the
bundle gains no package. Every URL the page uses is relative to the page (``openapi.json``,
``docs/…``), so it works wherever the API is mounted: at the root locally, under the stage
(``/dev/docs``) or a custom domain's base path behind API Gateway.

The page and the document need no key: they describe the API, which is the same for every
caller and holds nothing of a tenant's. Trying a route from the page asks for a key
(*Authorize*: the ``x-api-key`` security scheme) and goes through the usual checks.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from functions.core.exceptions import NotFound

router = APIRouter(include_in_schema=False)

DOCS_PATH = "/docs"
# Where Powertools keeps its Swagger UI build (its own docs feature serves it from there).
_ASSET_DIR = ("event_handler", "openapi", "swagger_ui")
ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.min.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui.min.css", "text/css; charset=utf-8"),
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modelway API</title>
<link rel="stylesheet" href="docs/swagger-ui.css?v={v}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js?v={v}"></script>
<script>
// Absolute from the page's own address: behind API Gateway that keeps the stage prefix.
window.ui = SwaggerUIBundle({{
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
}});
</script>
</body>
</html>
"""


def _assets_version() -> str:
    """Changes when the assets do (a Powertools upgrade), so browsers may cache them long."""
    try:
        return version("aws-lambda-powertools")
    except PackageNotFoundError:  # pragma: no cover - a dependency of functions/
        return "0"


@lru_cache(maxsize=len(ASSETS))
def _asset(name: str) -> bytes:
    filename, _ = ASSETS[name]
    return resources.files("aws_lambda_powertools").joinpath(*_ASSET_DIR, filename).read_bytes()


@router.get(DOCS_PATH)
async def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE.format(v=_assets_version()))


@router.get(f"{DOCS_PATH}/")
async def docs_slash() -> RedirectResponse:
    # Relative, so a stage prefix survives: from /dev/docs/ this is /dev/docs.
    return RedirectResponse("../docs", status_code=308)


@router.get(DOCS_PATH + "/{name}")
async def docs_asset(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound(f"no docs asset {name!r}")
    return Response(
        _asset(name),
        media_type=ASSETS[name][1],
        headers={"cache-control": "public, max-age=86400, immutable"},
    )
