"""The API explorer (Swagger UI) from this server: the assets are vendored under
static/vendor/swagger-ui (scripts/vendor-static.sh), so no page loads code from a CDN, and the
page has no inline script (static/swagger-init.js starts it), so it works under the
Content-Security-Policy of app/http/security_headers.py."""

from __future__ import annotations

import html
from typing import Any

from litestar import Request, Router
from litestar.openapi.plugins import SwaggerRenderPlugin

ASSETS = "/static/vendor/swagger-ui"


class VendoredSwagger(SwaggerRenderPlugin):
    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec_url = html.escape(request.url.path.rsplit("/", 1)[0] + "/openapi.json")
        csrf = request.app.csrf_config
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{self.css_url}">
  <script src="{self.js_url}" defer></script>
  <script src="{self.standalone_preset_js_url}" defer></script>
  <script src="/static/swagger-init.js" defer></script>
</head>
<body>
  <div id="swagger-container" data-spec-url="{spec_url}"
       data-csrf-cookie="{html.escape(csrf.cookie_name if csrf else "")}"
       data-csrf-header="{html.escape(csrf.header_name if csrf else "")}"></div>
</body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        """No OAuth2 redirect page (Litestar's has an inline script): logins here are bearer tokens."""
        return
