"""The model-history web page as a FastAPI app: mounted by the Airflow plugin, or run on its own.

``create_app()`` serves ``/`` (HTML: versions, metrics, gate decisions, inline SVG charts, and the
production moves: every promotion and rollback with who, when and why),
``/api/history`` (the same data as JSON) and ``/healthz``. Links are relative, so the app works
at the root (``python -m news_signals.ops.web``) and under the api-server's ``/model-history`` prefix.
Mounted in Airflow, every route needs an Airflow login (``login_required=True``, see ``auth.py``);
standalone it has no login and therefore listens on loopback only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from news_signals.ops.history import History, load_history, load_learning_curve

__all__ = ["create_app", "render_page"]


def render_page(history: History, curve: dict[str, Any] | None = None) -> str:
    """The HTML page for ``history`` (charts rendered server-side); ``curve``: the learning curve."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from news_signals.ops.web.charts import learning_curve_chart, macro_f1_chart, per_category_chart

    env = Environment(loader=PackageLoader("news_signals.ops.web", "templates"), autoescape=select_autoescape())
    prod = history.production
    latest = history.rows[-1] if history.rows else None
    return env.get_template("history.html").render(
        h=history,
        prod=prod,
        latest=latest,
        rows=list(reversed(history.rows)),  # newest first in the table
        moves=list(reversed(history.promotions)),  # newest first too
        f1_chart=macro_f1_chart(history.rows) if history.rows else "",
        cat_chart=per_category_chart(prod) if prod and prod.per_category else "",
        curve=curve,
        curve_chart=learning_curve_chart(curve) if curve and curve.get("reports") else "",
        fmt=_fmt,
    )


def create_app(
    model_name: str | None = None,
    registry_factory: Callable[[str | None], Any] | None = None,
    *,
    login_required: bool = False,
):
    """A FastAPI app reading the registry on every request (the page is small; history changes monthly).

    ``login_required``: every route first asks Airflow's auth manager (the plugin sets it; the api-server
    does not authenticate plugin apps itself).
    """
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse

    dependencies = []
    if login_required:
        from news_signals.ops.web.auth import airflow_login

        dependencies.append(airflow_login())
    app = FastAPI(
        title="news-signals model history",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=dependencies,
    )

    def _load() -> History:
        return load_history(model_name, registry_factory)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        history = _load()
        return HTMLResponse(render_page(history, load_learning_curve()), status_code=503 if history.error else 200)

    @app.get("/api/history")
    def api_history() -> JSONResponse:
        history = _load()
        body = {**history.to_dict(), "learning_curve": load_learning_curve()}
        return JSONResponse(body, status_code=503 if history.error else 200)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _fmt(x: float | None, digits: int = 3) -> str:
    """Scores with 3 decimals; larger figures (latencies in ms) with 1."""
    if x is None:
        return "–"
    return f"{x:.{digits if abs(x) < 10 else 1}f}"
