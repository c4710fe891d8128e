"""airflow_settings.yaml: its content, and applying it to a real (SQLite) Airflow metadata DB."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
import yaml

from tools.airflow_settings import DEFAULT_SETTINGS_FILE, SettingsError, apply_settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hw-secret-key-9f8e7d"


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_SETTINGS_FILE.read_text())["airflow"]


def test_file_declares_the_contract_objects():
    raw = _raw()
    assert {c["conn_id"] for c in raw["connections"]} >= {"hopsworks_default", "docker_default"}
    pools = {p["pool_name"]: p["pool_slot"] for p in raw["pools"]}
    assert pools["gpu"] == 1
    # No literal secret: every password is an environment reference.
    for conn in raw["connections"]:
        if conn.get("conn_password"):
            assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", conn["conn_password"]), conn["conn_id"]


def _names_read_by_dags() -> set[str]:
    """Variables the DAG files (and the package) read: Variable.get("x") and {{ var.value.x }} / var.json.x."""
    names: set[str] = set()
    files = list((ROOT / "dags").glob("*.py")) + list((ROOT / "include" / "news_signals").rglob("*.py"))
    for path in files:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"Variable\.get\(\s*[\"']([^\"']+)[\"']", text))
        names |= set(re.findall(r"var\.(?:value|json)\.([A-Za-z_][A-Za-z0-9_]*)", text))
    return names


def test_every_variable_the_dags_read_is_declared():
    declared = set(load_settings(env={}).variables)
    missing = _names_read_by_dags() - declared
    assert not missing, f"add these variables to airflow_settings.yaml: {sorted(missing)}"


def test_connections_with_unset_env_are_skipped_not_created_empty():
    settings = load_settings(env={})
    assert set(settings.skipped_connections) == {"hopsworks_default", "docker_default"}
    assert settings.connections == []

    settings = load_settings(env={"HOPSWORKS_API_KEY": SECRET, "HOPSWORKS_PROJECT": "news"})
    conn = {c.conn_id: c for c in settings.connections}["hopsworks_default"]
    assert conn.fields["password"] == SECRET
    assert conn.fields["schema"] == "news"
    assert conn.fields["host"] == "c.app.hopsworks.ai"  # the ${HOPSWORKS_HOST:-...} default
    assert conn.fields["port"] == 443


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nothing: here\n", "top-level 'airflow:'"),
        ("airflow:\n  pools:\n    - pool_name: gpu\n      pool_slot: many\n", "pools[0]"),
        ("airflow:\n  connections:\n    - conn_id: x\n", "connections[0]: needs conn_id and conn_type"),
        ("airflow:\n  connections:\n    - {conn_id: x, conn_type: http, conn_pasword: y}\n", "unknown keys ['conn_pasword']"),
        ("airflow:\n  variables:\n    - {variable_name: a, variable_value: '${NOPE_NOT_SET}'}\n", "NOPE_NOT_SET is not set"),
        ("airflow:\n  variables:\n    - {variable_name: a, variable_value: 1}\n    - {variable_name: a, variable_value: 2}\n", "appears twice"),
    ],
)
def test_bad_files_name_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(path, env={})


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_apply_to_a_real_airflow_is_idempotent_and_keeps_the_secret_out_of_logs(airflow_db, tmp_path, caplog):
    from cryptography.fernet import Fernet

    settings_file = tmp_path / "airflow_settings.yaml"
    raw = yaml.safe_load(DEFAULT_SETTINGS_FILE.read_text())
    raw["airflow"]["variables"] = [*(raw["airflow"].get("variables") or []), {"variable_name": "ns_probe", "variable_value": "${NS_PROBE:-42}"}]
    settings_file.write_text(yaml.safe_dump(raw))
    # One fixed Fernet key for both applies (unit-test mode would draw a new one per process).
    fernet_key = Fernet.generate_key().decode()
    env = {**os.environ, "HOPSWORKS_API_KEY": SECRET, "HOPSWORKS_PROJECT": "news", "AIRFLOW__CORE__FERNET_KEY": fernet_key}

    caplog.set_level(logging.DEBUG)
    for _ in range(2):  # applying twice must not fail nor duplicate anything
        apply_settings(settings_file, env=env)
    assert SECRET not in caplog.text
    assert "hopsworks_default" in caplog.text and "docker_default skipped" in caplog.text

    # Imported only now: importing Airflow reconfigures logging and would detach caplog.
    from airflow.models import Pool
    from airflow.utils.session import create_session
    from sqlalchemy import select, text

    with create_session() as session:
        pool = session.scalar(select(Pool).where(Pool.pool == "gpu"))
        assert pool is not None and pool.slots == 1
        # Raw rows: the ORM would decrypt with this process's own key.
        rows = session.execute(text("SELECT conn_id, host, schema, password, is_encrypted FROM connection")).all()
        by_id = {r.conn_id: r for r in rows}
        assert "docker_default" not in by_id and len([r for r in rows if r.conn_id == "hopsworks_default"]) == 1
        row = by_id["hopsworks_default"]
        assert row.host == "c.app.hopsworks.ai" and row.schema == "news"
        assert row.is_encrypted and SECRET not in row.password  # stored encrypted...
        assert Fernet(fernet_key.encode()).decrypt(row.password.encode()).decode() == SECRET  # ...and it is the key
        var = session.execute(text("SELECT val, is_encrypted FROM variable WHERE key = 'ns_probe'")).one()
        value = Fernet(fernet_key.encode()).decrypt(var.val.encode()).decode() if var.is_encrypted else var.val
        assert value == "42"  # the ${NS_PROBE:-42} default
