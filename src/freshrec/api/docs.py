"""``/docs`` (Swagger UI) and GraphiQL with their JavaScript served by this server, so they work offline.

The assets come from installed packages: Swagger UI from ``fastapi-offline``, GraphiQL (with React and the
explorer plugin) from ``graphene-django-graphiql-static``; nothing is loaded from a CDN. There is no
``/redoc``: ReDoc's bundle fetches its logo from its vendor's CDN.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_ASSETS = "/static/docs"
GRAPHIQL_ASSETS = "/static/graphiql"


def _package_dir(package: str, *parts: str) -> Path:
    return Path(str(files(package).joinpath(*parts)))


def add_offline_docs(app: FastAPI) -> None:
    """Mount the assets and add ``/docs`` pointing at them."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_package_dir("fastapi_offline", "static")), name="docs")
    graphiql = _package_dir("graphene_django_graphiql_static", "static", "graphene_django_graphiql_static")
    app.mount(GRAPHIQL_ASSETS, StaticFiles(directory=graphiql), name="graphiql")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} — API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        )


def graphiql_html(root: str = "") -> str:
    """The GraphiQL page of ``/graphql`` (a browser asking for HTML), with its assets from this server."""
    assets = f"{root}{GRAPHIQL_ASSETS}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>freshrec — GraphiQL</title>
  <link rel="icon" href="{root}{DOCS_ASSETS}/favicon.png">
  <link rel="stylesheet" href="{assets}/graphiql.min.css">
  <link rel="stylesheet" href="{assets}/style.css">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; overflow: hidden; width: 100%; }}</style>
  <script src="{assets}/react.production.min.js"></script>
  <script src="{assets}/react-dom.production.min.js"></script>
  <script src="{assets}/graphiql.min.js"></script>
  <script src="{assets}/graphiql-plugin-explorer.umd.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script>
    const fetcher = GraphiQL.createFetcher({{ url: window.location.pathname }});
    function FreshrecGraphiQL() {{
      const [query, setQuery] = React.useState(
        '{{ SimilarContent(userid: "user-1", limit: 5) {{ url title similarity }} }}'
      );
      const explorer = GraphiQLPluginExplorer.useExplorerPlugin({{ query: query, onEdit: setQuery }});
      return React.createElement(GraphiQL, {{
        fetcher: fetcher,
        query: query,
        onEditQuery: setQuery,
        defaultEditorToolsVisibility: true,
        plugins: [explorer],
      }});
    }}
    ReactDOM.render(React.createElement(FreshrecGraphiQL), document.getElementById("graphiql"));
  </script>
</body>
</html>
"""
