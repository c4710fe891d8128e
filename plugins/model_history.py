"""Airflow 3 plugin: the model-history page, mounted by the api-server at ``/model-history/``.

Airflow 3 (3.1 to 3.3) mounts each ``fastapi_apps`` entry with ``app.mount(url_prefix, app)`` (prefixes under
/api/v2, /ui and /execution are reserved) and lists ``external_views`` in the UI's navigation;
``url_route`` makes the UI embed the page under ``/plugin/model-history``. All logic lives in
``news_signals.ops.web``; this file is wiring only. The api-server does not authenticate plugin apps,
so the app is created with ``login_required=True``: every route asks Airflow's auth manager first.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from news_signals.ops.web import create_app

URL_PREFIX = "/model-history"


class ModelHistoryPlugin(AirflowPlugin):
    name = "news_signals_model_history"
    fastapi_apps = [
        {"app": create_app(login_required=True), "url_prefix": URL_PREFIX, "name": "news-signals model history"},
    ]
    external_views = [
        {
            "name": "Model history",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "model-history",
        },
    ]
