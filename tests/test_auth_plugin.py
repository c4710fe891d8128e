"""The model-history plugin behind Airflow's login, tested through the real api-server app
(``airflow.api_fastapi.app.create_app``) with the SimpleAuthManager, tokens from its own ``/auth/token``.

Anonymous callers get 401, bad tokens 403, a user the auth manager denies 403, and a logged-in user
200, on the page and on its JSON, exactly like ``/api/v2/dags``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tools.example_history import build_example_registry

PAGE, API = "/model-history/", "/model-history/api/history"


@pytest.fixture()
def api_server(airflow_db, ns_home, tmp_path, monkeypatch):
    """Airflow's api-server FastAPI app with this repo's plugins and two known SimpleAuthManager users."""
    build_example_registry()
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"vera": "viewer-pw", "ada": "admin-pw"}))
    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER",
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    )
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "vera:viewer,ada:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-only-jwt-secret-" + "0123456789abcdef" * 4)

    from airflow import plugins_manager
    from airflow.api_fastapi import app as api_app
    from fastapi.testclient import TestClient

    # load the plugins afresh (an earlier test in this process may have loaded them already): Airflow 3.3
    # keeps them in functools.cache'd loaders instead of module globals
    caches = [f for f in vars(plugins_manager).values() if callable(getattr(f, "cache_clear", None))]
    for f in caches:
        f.cache_clear()
    app = api_app.create_app()
    try:
        yield TestClient(app)
    finally:
        api_app.purge_cached_app()
        for f in caches:
            f.cache_clear()


def _token(client, username: str, password: str) -> str:
    resp = client.post("/auth/token", json={"username": username, "password": password})
    assert resp.status_code == 201, resp.text
    return resp.json()["access_token"]


def test_anonymous_and_bad_tokens_are_refused_like_the_rest_api(api_server):
    client = api_server
    assert client.get("/api/v2/dags").status_code == 401  # the reference: Airflow's own API
    for path in (PAGE, API, "/model-history/healthz"):
        resp = client.get(path)
        assert resp.status_code == 401, (path, resp.status_code)
        assert "news_signals" not in resp.text and "production_version" not in resp.text
        bad = client.get(path, headers={"Authorization": "Bearer not-a-jwt"})
        assert bad.status_code == 403, (path, bad.status_code)
        assert client.get(path, cookies={"_token": "forged"}).status_code == 403
    assert client.post("/auth/token", json={"username": "vera", "password": "wrong"}).status_code == 401


def test_logged_in_users_get_the_page_and_the_json(api_server):
    client = api_server
    token = _token(client, "vera", "viewer-pw")  # the lowest SimpleAuthManager role
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v2/dags", headers=headers).status_code == 200
    page = client.get(PAGE, headers=headers)
    assert page.status_code == 200 and 'id="v4"' in page.text
    data = client.get(API, headers=headers)
    assert data.status_code == 200 and data.json()["production_version"] == 4
    # the UI embeds the page in an iframe: the browser sends the login cookie, not a header
    client.cookies.set("_token", _token(client, "ada", "admin-pw"))
    assert client.get(PAGE).status_code == 200
    client.cookies.clear()


def test_a_user_the_auth_manager_denies_gets_403(api_server):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client = api_server
    no_role = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="eve", role=None))
    for path in (PAGE, API):
        assert client.get(path, headers={"Authorization": f"Bearer {no_role}"}).status_code == 403


def test_an_auth_manager_error_fails_closed(api_server, monkeypatch):
    """A crash inside the access check is a 403, never the page (and never a 500 with a traceback)."""
    from airflow.api_fastapi.app import get_auth_manager

    client = api_server
    token = _token(client, "ada", "admin-pw")

    def broken(**_kwargs):
        raise RuntimeError("policy backend unreachable")

    monkeypatch.setattr(get_auth_manager(), "is_authorized_custom_view", broken)
    resp = client.get(API, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403 and "unreachable" not in resp.text

    async def broken_user(_token):
        raise RuntimeError("token store down")

    monkeypatch.setattr(get_auth_manager(), "get_user_from_token", broken_user)
    resp = client.get(PAGE, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401 and "token store" not in resp.text


# ---- the standalone page -------------------------------------------------------------------------
def test_standalone_page_refuses_non_loopback_hosts(capsys):
    from news_signals.ops.web.__main__ import main

    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):  # noqa: S104 - refused on purpose
        with pytest.raises(SystemExit) as exc:
            main(["--host", host])
        assert exc.value.code == 2
        assert "not a loopback address" in capsys.readouterr().err


def test_standalone_page_listens_on_loopback_only(ns_home):
    import psutil

    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "news_signals.ops.web", "--port", str(port)],
        env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stderr.read().decode()[-2000:])
                time.sleep(0.1)
        listening = [
            c.laddr for c in psutil.Process(proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(addr.ip == "127.0.0.1" and addr.port == port for addr in listening)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
