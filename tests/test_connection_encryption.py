"""Secrets at rest: a Hopsworks connection stored through Airflow's own models, read back raw from the
``connection`` table of the metadata DB (SQLite here, Postgres in compose; the columns are the same).

With a Fernet key the password and extra are ciphertext, decryptable only with that key. With an empty
key Airflow 3.3.2 (as 3.1.8 before it) does not refuse: ``airflow.models.crypto.get_fernet`` logs "empty
cryptography key - values will not be stored encrypted" (3.3 logs it on stdout, 3.1 on stderr) and stores the
API key in plain text (``is_encrypted`` false).
That is why the compose stack must not start without a key (docs/OPERATIONS.md, "Secrets at rest").
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

SECRET = "hw-api-key-not-a-real-one-7f3c"  # noqa: S105 - a test value
CONN_ID = "hopsworks_encryption_probe"

# Run in a fresh interpreter: Airflow caches its Fernet object per process (crypto._fernet), and the
# test process runs in unit-test mode, which draws a random key.
STORE = """
import json, os
from airflow.models import Connection
from airflow.utils.session import create_session
with create_session() as session:
    session.query(Connection).filter(Connection.conn_id == os.environ["PROBE_CONN_ID"]).delete()
    session.add(Connection(
        conn_id=os.environ["PROBE_CONN_ID"], conn_type="generic", host="c.app.hopsworks.ai",
        schema="news", password=os.environ["HOPSWORKS_API_KEY"], extra=json.dumps({"project": "news"}),
    ))
"""
READ = """
import os
from airflow.models import Connection
from airflow.utils.session import create_session
with create_session() as session:
    conn = session.query(Connection).filter(Connection.conn_id == os.environ["PROBE_CONN_ID"]).one()
    print(conn.password == os.environ["HOPSWORKS_API_KEY"])
"""


def _airflow(code: str, fernet_key: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a new Python with Airflow configured like a deployment (not unit-test mode)."""
    full_env = {
        **os.environ,
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
        "PROBE_CONN_ID": CONN_ID,
        "HOPSWORKS_API_KEY": SECRET,  # via the environment, never argv
        **env,
    }
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=300)


def _raw_row() -> sqlite3.Row:
    """The stored row as the database holds it (the ORM would decrypt it)."""
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("sqlite:///"), url
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT password, is_encrypted, extra, is_extra_encrypted FROM connection WHERE conn_id = ?",
            (CONN_ID,),
        ).fetchone()
    assert row is not None, f"{CONN_ID} was not stored"
    return row


@pytest.fixture()
def cleanup(airflow_db):
    yield
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(url) as db:
        db.execute("DELETE FROM connection WHERE conn_id = ?", (CONN_ID,))


def test_with_a_fernet_key_the_api_key_is_ciphertext_at_rest(cleanup):
    from cryptography.fernet import Fernet, InvalidToken

    key = Fernet.generate_key().decode()
    stored = _airflow(STORE, key)
    assert stored.returncode == 0, stored.stderr[-3000:]
    assert SECRET not in stored.stdout + stored.stderr

    row = _raw_row()
    assert row["is_encrypted"] == 1 and row["is_extra_encrypted"] == 1
    assert SECRET not in row["password"] and "news" not in row["extra"]
    assert Fernet(key.encode()).decrypt(row["password"].encode()).decode() == SECRET
    assert json.loads(Fernet(key.encode()).decrypt(row["extra"].encode())) == {"project": "news"}
    with pytest.raises(InvalidToken):  # useless to whoever copies the database without the key
        Fernet(Fernet.generate_key()).decrypt(row["password"].encode())

    same_key = _airflow(READ, key)
    assert same_key.returncode == 0 and same_key.stdout.strip() == "True", same_key.stderr[-3000:]
    wrong_key = _airflow(READ, Fernet.generate_key().decode())
    assert wrong_key.returncode != 0 and "InvalidToken" in wrong_key.stderr
    assert SECRET not in wrong_key.stderr


def test_with_an_empty_fernet_key_airflow_stores_plain_text(cleanup):
    """What Airflow 3.3.2 does, pinned: no refusal, a warning, and the key readable in the table."""
    stored = _airflow(STORE, "")
    assert stored.returncode == 0, stored.stderr[-3000:]
    assert "empty cryptography key - values will not be stored encrypted" in stored.stdout + stored.stderr
    row = _raw_row()
    assert row["is_encrypted"] == 0 and row["password"] == SECRET
