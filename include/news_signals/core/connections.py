"""Credentials from an Airflow connection or, outside Airflow, from environment variables.

Secrets are returned to the caller only; nothing here logs them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionInfo:
    conn_id: str
    host: str | None
    login: str | None
    password: str | None  # the secret: never log, never XCom
    schema: str | None
    port: int | None
    extra: dict

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"ConnectionInfo(conn_id={self.conn_id!r}, host={self.host!r}, schema={self.schema!r}, password=***)"


def get_connection(conn_id: str) -> ConnectionInfo | None:
    """The Airflow connection ``conn_id`` if Airflow knows it, else ``AIRFLOW_CONN_<ID>`` parsed, else None."""
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception as exc:  # no Airflow, no task context, or not defined
        log.debug("connection %s not available from Airflow: %s", conn_id, type(exc).__name__)
        conn = None
    if conn is None:
        uri = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if not uri:
            return None
        try:
            from airflow.sdk import Connection

            conn = Connection.from_json(uri) if uri.lstrip().startswith("{") else Connection(conn_id=conn_id, uri=uri)
        except Exception:
            return _parse_uri(conn_id, uri)
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return ConnectionInfo(conn_id, conn.host, conn.login, conn.password, conn.schema, conn.port, dict(extra or {}))


def _parse_uri(conn_id: str, uri: str) -> ConnectionInfo:
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(uri)
    return ConnectionInfo(
        conn_id,
        parts.hostname,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        parts.path.lstrip("/") or None,
        parts.port,
        dict(parse_qsl(parts.query)),
    )
