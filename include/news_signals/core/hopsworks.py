"""Log in to Hopsworks from the ``hopsworks_default`` connection, never interactively.

``hopsworks.login()`` prompts on stdin without ``api_key_value`` and asks which project to
use without ``project``: both hang an Airflow task, so both are always passed here.
The Airflow side only builds the keyword arguments (``login_kwargs``); ``hopsworks`` itself is
imported in the isolated interpreter only (news_signals.isolated).
Connection fields: password = API key, host = host, port = port (default 443),
schema or ``extra["project"]`` = project name.
"""

from __future__ import annotations

import logging
from typing import Any

from news_signals.core.connections import ConnectionInfo, get_connection

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "hopsworks_default"


class HopsworksConfigError(ValueError):
    """The Hopsworks connection is missing a field the login needs."""


def login_kwargs(conn: ConnectionInfo) -> dict[str, Any]:
    """The keyword arguments for ``hopsworks.login`` (contains the secret: do not log)."""
    project = conn.schema or conn.extra.get("project")
    missing = [
        what
        for what, value in (
            ("password (the API key)", conn.password),
            ("host", conn.host),
            ("schema or extra.project", project),
        )
        if not value
    ]
    if missing:
        raise HopsworksConfigError(
            f"connection {conn.conn_id!r} lacks {', '.join(missing)}; set e.g. "
            f"AIRFLOW_CONN_{conn.conn_id.upper()}='hopsworks://:API_KEY@my.hopsworks.ai:443/my_project'"
        )
    kwargs: dict[str, Any] = {"host": conn.host, "project": project, "api_key_value": conn.password}
    port = conn.port or conn.extra.get("port")
    if port:
        kwargs["port"] = int(port)
    if "hostname_verification" in conn.extra:
        kwargs["hostname_verification"] = str(conn.extra["hostname_verification"]).lower() in (
            "1",
            "true",
            "yes",
        )
    return kwargs


def hopsworks_configured(conn_id: str = DEFAULT_CONN_ID) -> bool:
    return get_connection(conn_id) is not None


def choose_backend(choice: str) -> str:
    """``local`` or ``hopsworks`` for a setting of ``auto`` / ``local`` / ``hopsworks``.

    ``auto`` is Hopsworks when its connection exists, so the registry, the feature store and
    ``doctor`` agree; a forced ``hopsworks`` without the connection fails where it logs in.
    """
    choice = (choice or "auto").strip().lower()
    if choice not in ("auto", "local", "hopsworks"):
        raise ValueError(f"backend {choice!r}: use auto, local or hopsworks")
    if choice != "auto":
        return choice
    return "hopsworks" if hopsworks_configured() else "local"


def connection(conn_id: str = DEFAULT_CONN_ID) -> ConnectionInfo:
    """The Hopsworks connection; HopsworksConfigError naming it when it does not exist."""
    conn = get_connection(conn_id)
    if conn is None:
        raise HopsworksConfigError(
            f"no Airflow connection {conn_id!r}; create it (password = API key, host, schema = project)"
        )
    return conn


def login(conn_id: str = DEFAULT_CONN_ID) -> Any:
    """A logged-in ``hopsworks.project.Project`` for the connection's project.

    Only inside the isolated Hopsworks interpreter (news_signals.isolated.worker logs in with the
    kwargs it got on stdin; this is the same call for code that runs there with the connection).
    """
    kwargs = login_kwargs(connection(conn_id))
    import hopsworks

    log.info("logging in to Hopsworks %s project %s", kwargs["host"], kwargs["project"])
    return hopsworks.login(**kwargs)
