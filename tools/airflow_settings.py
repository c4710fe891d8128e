"""Read ``airflow_settings.yaml`` (Astro CLI format) and apply it to a local Airflow.

Why our own applier: the Astro CLI is not part of this stack, and the demo must set up connections,
variables and the ``gpu`` pool with nothing but Airflow. It writes one import file per kind and runs
``airflow pools import``, ``airflow connections import --overwrite`` and ``airflow variables import``
(Airflow's own CLI commands, run together in one child process: Airflow takes seconds to start), so
applying twice gives the same result.

Values may reference the environment as ``${NAME}`` or ``${NAME:-default}``. A connection that
references an unset variable without a default is skipped (and logged by id only): e.g.
``hopsworks_default`` is created only when ``HOPSWORKS_API_KEY`` is set, so the local registry stays the
default. Secrets go to the import files (mode 0600, deleted afterwards), never to a log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from news_signals.core.config import PROJECT_ROOT

log = logging.getLogger(__name__)

DEFAULT_SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_CONN_FIELDS = {
    "conn_type": "conn_type",
    "conn_host": "host",
    "conn_schema": "schema",
    "conn_login": "login",
    "conn_password": "password",
    "conn_port": "port",
    "conn_extra": "extra",
    "conn_description": "description",
}


class SettingsError(ValueError):
    """The settings file is malformed; the message names the item and the fix."""


class _Unset(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Pool:
    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class Connection:
    conn_id: str
    fields: dict[str, Any]  # Airflow Connection keyword names (conn_type, host, login, ...)


@dataclass
class AirflowSettings:
    pools: list[Pool] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    skipped_connections: dict[str, str] = field(default_factory=dict)  # conn_id -> unset env var


def _expand(value: Any, env: dict[str, str]) -> Any:
    """``${NAME}`` / ``${NAME:-default}`` in strings (recursively in dicts); raises _Unset."""
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is None:
            raise _Unset(name)
        return default

    return _ENV_REF.sub(sub, value)


def _items(section: Any, kind: str) -> list[dict[str, Any]]:
    if section is None:
        return []
    if not isinstance(section, list) or not all(isinstance(x, dict) for x in section):
        raise SettingsError(f"airflow.{kind} must be a list of mappings (Astro CLI format)")
    return section


def load_settings(path: str | Path = DEFAULT_SETTINGS_FILE, env: dict[str, str] | None = None) -> AirflowSettings:
    """Parse and validate the file, expanding ``${ENV}`` references against ``env`` (default os.environ)."""
    import yaml

    env = dict(os.environ if env is None else env)
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"settings file {path} not found; pass the path of airflow_settings.yaml")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path} is not valid YAML: {exc}") from exc
    root = doc.get("airflow") if isinstance(doc, dict) else None
    if not isinstance(root, dict):
        raise SettingsError(f"{path} needs a top-level 'airflow:' mapping with connections, pools, variables")
    settings = AirflowSettings()

    for i, item in enumerate(_items(root.get("pools"), "pools")):
        name = item.get("pool_name")
        slots = item.get("pool_slot")
        if not name or not isinstance(slots, int) or isinstance(slots, bool) or slots < 0:
            raise SettingsError(f"pools[{i}]: needs pool_name and an integer pool_slot >= 0, got {item!r}")
        settings.pools.append(Pool(str(name), slots, str(item.get("pool_description") or "")))

    seen: set[str] = set()
    for i, item in enumerate(_items(root.get("connections"), "connections")):
        conn_id = item.get("conn_id")
        if not conn_id or not item.get("conn_type"):
            raise SettingsError(f"connections[{i}]: needs conn_id and conn_type (e.g. conn_type: http)")
        if conn_id in seen:
            raise SettingsError(f"connections[{i}]: conn_id {conn_id!r} appears twice")
        seen.add(conn_id)
        unknown = set(item) - set(_CONN_FIELDS) - {"conn_id"}
        if unknown:
            raise SettingsError(f"connection {conn_id}: unknown keys {sorted(unknown)}; allowed: {sorted(_CONN_FIELDS)}")
        try:
            values = {_CONN_FIELDS[k]: _expand(v, env) for k, v in item.items() if k != "conn_id" and v not in (None, "")}
        except _Unset as unset:
            settings.skipped_connections[conn_id] = unset.name
            continue
        if "port" in values:
            try:
                values["port"] = int(values["port"])
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"connection {conn_id}: conn_port must be a number, got {values['port']!r}") from exc
        if isinstance(values.get("extra"), dict):
            values["extra"] = json.dumps(values["extra"])
        settings.connections.append(Connection(str(conn_id), values))

    for i, item in enumerate(_items(root.get("variables"), "variables")):
        name = item.get("variable_name")
        if not name:
            raise SettingsError(f"variables[{i}]: needs variable_name")
        if name in settings.variables:
            raise SettingsError(f"variables[{i}]: variable {name!r} appears twice")
        value = item.get("variable_value")
        try:
            value = _expand("" if value is None else value, env)
        except _Unset as unset:
            raise SettingsError(f"variable {name}: environment variable {unset.name} is not set (or give a default)") from None
        settings.variables[str(name)] = value if isinstance(value, str) else json.dumps(value)
    return settings


def write_import_files(settings: AirflowSettings, dest: Path) -> dict[str, Path]:
    """The JSON files ``airflow {pools,connections,variables} import`` read; 0600 (they hold secrets)."""
    docs = {
        "pools": {p.name: {"slots": p.slots, "description": p.description, "include_deferred": False} for p in settings.pools},
        "connections": {c.conn_id: c.fields for c in settings.connections},
        "variables": settings.variables,
    }
    paths: dict[str, Path] = {}
    for kind, doc in docs.items():
        if not doc:
            continue
        path = dest / f"{kind}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
        paths[kind] = path
    return paths


def import_commands(paths: dict[str, Path]) -> list[list[str]]:
    """The Airflow CLI argument lists that import ``paths`` (overwriting what exists)."""
    cmds = []
    if "pools" in paths:
        cmds.append(["pools", "import", str(paths["pools"])])
    if "connections" in paths:
        cmds.append(["connections", "import", "--overwrite", str(paths["connections"])])
    if "variables" in paths:
        cmds.append(["variables", "import", "--action-on-existing-key", "overwrite", str(paths["variables"])])
    return cmds


def _run_airflow_commands(cmds: list[list[str]]) -> None:
    """Run several Airflow CLI commands in THIS process, exactly as ``airflow`` would (one start-up, not three)."""
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    write_default_airflow_configuration_if_needed()
    parser = cli_parser.get_parser()
    for argv in cmds:
        args = parser.parse_args(argv)
        args.func(args)


def apply_settings(
    path: str | Path = DEFAULT_SETTINGS_FILE,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> AirflowSettings:
    """Apply pools, connections and variables to the Airflow configured in ``env`` (default: os.environ).

    The Airflow commands run in one child process of ``python`` (an interpreter with Airflow), so the
    caller's own Airflow configuration, if any, is not involved.
    """
    settings = load_settings(path, env)
    run_env = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="news-signals-settings-") as tmp:
        cmds = import_commands(write_import_files(settings, Path(tmp)))
        if cmds:
            proc = subprocess.run(
                [python, "-m", "tools.airflow_settings", "--run-airflow-commands", json.dumps(cmds)],
                capture_output=True, text=True, env=run_env,
            )
            if proc.returncode != 0:
                # Airflow's own output names the failing object; it does not echo passwords.
                raise SettingsError(
                    f"applying {path} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
                )
    log.info("pools: %s", ", ".join(f"{p.name}={p.slots}" for p in settings.pools) or "none")
    log.info("connections: %s", ", ".join(c.conn_id for c in settings.connections) or "none")
    for conn_id, var in settings.skipped_connections.items():
        log.info("connection %s skipped: %s is not set", conn_id, var)
    log.info("variables: %s", ", ".join(settings.variables) or "none")
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Apply airflow_settings.yaml (Astro CLI format) to the local Airflow.")
    parser.add_argument("settings", nargs="?", default=str(DEFAULT_SETTINGS_FILE), help="path (default: airflow_settings.yaml)")
    parser.add_argument("--check", action="store_true", help="only parse and validate; print what would be applied")
    parser.add_argument("--run-airflow-commands", help=argparse.SUPPRESS)  # internal: the child of apply_settings
    args = parser.parse_args(argv)
    if args.run_airflow_commands:
        _run_airflow_commands(json.loads(args.run_airflow_commands))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.check:
            settings = load_settings(args.settings)
            print(json.dumps({
                "pools": {p.name: p.slots for p in settings.pools},
                "connections": [c.conn_id for c in settings.connections],
                "skipped_connections": settings.skipped_connections,
                "variables": sorted(settings.variables),
            }, indent=2))
        else:
            apply_settings(args.settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
