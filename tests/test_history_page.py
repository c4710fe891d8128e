"""The model-history page: real registry files, real HTTP (uvicorn on loopback and TestClient), the plugin."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.request

import pytest
from news_signals.ops.history import load_history
from news_signals.ops.web import create_app

from tools.example_history import build_example_registry


@pytest.fixture()
def registry_home(ns_home):
    versions = build_example_registry()
    assert versions == [1, 2, 3, 4]
    return ns_home


def test_history_reads_registry_and_gate_files(registry_home):
    h = load_history()
    assert h.error is None and h.backend == "local"
    assert [r.version for r in h.rows] == [1, 2, 3, 4]
    assert [r.decision for r in h.rows] == ["promote", "promote", "keep", "promote"]
    assert h.production is not None and h.production.version == 4
    v3 = h.rows[2]
    assert "vs_production" in v3.failed_rules and v3.reason.startswith("failed:")
    # the headline is the held-out human macro-F1, beside keywords on the same rows, with the interval
    assert all(r.keywords_macro_f1 == pytest.approx(0.412) and r.heldout_rows == 900 for r in h.rows)
    assert all(r.interval and r.interval[0] < r.macro_f1 - r.keywords_macro_f1 < r.interval[1] for r in h.rows)
    assert set(h.production.per_category) == {"emergencies", "weather_wet", "weather_temp", "transportation"}
    assert h.rows[3].macro_f1 > h.rows[1].macro_f1 > h.rows[0].macro_f1
    assert all(r.agreement_macro_f1 > r.macro_f1 for r in h.rows)  # agreement is its own, separate number


def _serve(app):
    """uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def test_page_over_real_http(registry_home):
    server, thread, base = _serve(create_app())
    try:
        with urllib.request.urlopen(f"{base}/", timeout=30) as resp:
            assert resp.status == 200
            html = resp.read().decode()
        with urllib.request.urlopen(f"{base}/api/history", timeout=30) as resp:
            data = json.loads(resp.read())
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    assert "Model history: news_signals" in html
    for v in (1, 2, 3, 4):
        assert f'id="v{v}"' in html
    assert html.count("<svg") == 2  # the macro-F1 chart and the per-category chart, inline
    assert "held-out human macro-F1" in html and "agreement with bootstrap labels" in html
    assert "keywords, same held-out rows" in html and "weather temp" in html
    assert re.search(r'id="v4">.*?badge prod', html, re.S)
    assert re.search(r'id="v3">.*?badge keep', html, re.S)
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)  # no CDN, no JS
    assert "<metadata>" not in html
    assert data["production_version"] == 4
    assert [v["decision"] for v in data["versions"]] == ["promote", "promote", "keep", "promote"]


def test_empty_registry_page(ns_home):
    from fastapi.testclient import TestClient

    resp = TestClient(create_app()).get("/")
    assert resp.status_code == 200
    assert 'id="empty"' in resp.text and "<svg" not in resp.text


def test_registry_down_is_shown_not_500(ns_home):
    from news_signals.registry import RegistryError

    def broken(_name):
        raise RegistryError("Hopsworks at hops.example:443 did not answer")

    from fastapi.testclient import TestClient

    client = TestClient(create_app(registry_factory=broken))
    resp = client.get("/")
    assert resp.status_code == 503
    assert 'id="registry-error"' in resp.text and "did not answer" in resp.text and "Registry down" in resp.text
    api = client.get("/api/history")
    assert api.status_code == 503 and "did not answer" in api.json()["error"]


def test_airflow_plugin_mounts_the_app(registry_home, monkeypatch):
    """The plugin as the api-server loads it: plugins_manager → init_plugins mounts it at /model-history, login required."""
    from airflow import plugins_manager
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    # load the plugins afresh (an earlier test in this process may have loaded them already): Airflow 3.3
    # keeps them in functools.cache'd loaders instead of module globals
    caches = [f for f in vars(plugins_manager).values() if callable(getattr(f, "cache_clear", None))]
    for f in caches:
        f.cache_clear()
    fastapi_apps, _ = plugins_manager.get_fastapi_plugins()
    ours = [a for a in fastapi_apps if a["url_prefix"] == "/model-history"]
    assert len(ours) == 1

    from airflow.api_fastapi.app import init_plugins

    api = FastAPI()
    init_plugins(api)
    client = TestClient(api)
    # mounted, and closed to anonymous callers (logged-in access: tests/test_auth_plugin.py)
    for path in ("/model-history/", "/model-history/api/history"):
        resp = client.get(path)
        assert resp.status_code == 401, (path, resp.status_code)
        assert 'id="v4"' not in resp.text and "production_version" not in resp.text


def test_page_renders_in_headless_chromium(registry_home, tmp_path):
    """bench/render_history_page.py's render(): a real browser draws the page to a PNG."""
    import importlib.util
    import struct
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "render_history_page", Path(__file__).resolve().parents[1] / "bench" / "render_history_page.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    if bench.find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install -y --no-install-recommends chromium)")
    out = tmp_path / "page.png"
    bench.render(out, width=1000, height=800)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1000, 800)
    assert len(data) > 20_000  # a blank page compresses to a few KB; charts and tables do not
    assert not list(tmp_path.glob(".tmp-*"))


def test_page_draws_the_learning_curve_when_one_was_written(registry_home):
    from fastapi.testclient import TestClient
    from news_signals.core.storage import Storage
    from news_signals.ops.learning_curve import REPORT

    def rep(macro):
        return {"macro_f1": macro, "categories": {"emergencies": {"f1": macro}}}

    curve = {
        "rows": 3100,
        "gated_categories": ["emergencies"],
        "rows_per_category": {"emergencies": {"known": 3100, "present": 300}},
        "reports": {"keywords": rep(0.6), "hybrid": rep(0.62), "news_signals@1": rep(0.63), "news_signals@2": rep(0.71)},
        "versions": [
            {"ref": "news_signals@1", "version": 1, "production": False, "human_training_labels": 0, "macro_f1": 0.63,
             "vs_keywords": {"delta": 0.03, "low": -0.01, "high": 0.07, "confidence": 0.95}},
            {"ref": "news_signals@2", "version": 2, "production": True, "human_training_labels": 812, "macro_f1": 0.71,
             "vs_keywords": {"delta": 0.11, "low": 0.07, "high": 0.15, "confidence": 0.95}},
        ],
    }
    Storage().write_json(Storage().path(*REPORT), curve)
    client = TestClient(create_app())
    html = client.get("/").text
    assert 'id="learning-curve"' in html and html.count("<svg") == 3
    assert "812 human labels" in html and "3100 held-out rows" in html
    assert client.get("/api/history").json()["learning_curve"]["reports"]["hybrid"]["macro_f1"] == 0.62


# ---- production moves: every promotion and rollback, with who, when and why ----------------------
def _moves_html(html: str) -> str:
    return html.split('id="moves"', 1)[1].split("</section>", 1)[0]


def test_production_moves_promotion_then_rollback_in_json_and_html(registry_home):
    """The example registry's real promote() calls, then a real rollback() whose reason is hostile input."""
    from fastapi.testclient import TestClient
    from news_signals.core.config import Settings
    from news_signals.core.storage import Storage
    from news_signals.ops.history import MOVE_FIELDS
    from news_signals.registry import LocalRegistry

    registry = LocalRegistry(Settings().model_name, Storage())
    registry.promote(4, "re-approved after INC-7", by="bob", action="approve")
    reason = '<script>alert("x")</script> v4 mislabels storms & floods'
    registry.rollback(2, reason, by="alice <ops>")

    client = TestClient(create_app())
    data = client.get("/api/history").json()
    moves = data["promotions"]
    assert data["production_version"] == 2 and data["promotions_error"] is None
    assert all(set(m) == set(MOVE_FIELDS) for m in moves)  # the recorded fields, nothing else
    assert [(m["action"], m["version"], m["previous"]) for m in moves] == [  # oldest first
        ("promote", 1, None), ("promote", 2, 1), ("promote", 4, 2), ("approve", 4, 4), ("rollback", 2, 4),
    ]
    assert (moves[-1]["by"], moves[-1]["reason"]) == ("alice <ops>", reason)
    assert (moves[-2]["by"], moves[-2]["reason"]) == ("bob", "re-approved after INC-7")
    assert moves[0]["by"] == "" and moves[0]["reason"] == "all rules passed"
    assert moves == registry.promotions()  # the registry's own records
    assert all(m["promoted_at"] for m in moves)

    html = client.get("/").text
    assert "Production moves" in html and 'id="no-moves"' not in html
    table = _moves_html(html)
    assert table.count('class="move"') == 5
    assert "<script" not in html  # escaped, not executed
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; v4 mislabels storms &amp; floods" in table
    assert "alice &lt;ops&gt;" in table and "<ops>" not in table
    assert table.index("rollback") < table.index("approve") < table.index("re-approved")  # newest first
    assert re.search(r'badge rollback">rollback</span></td>\s*<td><strong>v2</strong></td>\s*<td>v4</td>', table)
    assert re.search(r'badge promote">promote</span></td>\s*<td><strong>v1</strong></td>\s*<td>–</td>\s*<td>–</td>',
                     table)  # the first promotion: no previous, no recorded "by"
    assert 'title="' + moves[-1]["promoted_at"] + '"' in table


def test_no_production_move_yet(ns_home, tmp_path):
    from fastapi.testclient import TestClient
    from news_signals.core.config import Settings
    from news_signals.core.storage import Storage
    from news_signals.registry import LocalRegistry
    from test_registry import fake_artifact

    client = TestClient(create_app())
    for versions in (0, 1):  # an empty registry, then one registered but never promoted version
        if versions:
            LocalRegistry(Settings().model_name, Storage()).register(fake_artifact(tmp_path / "a"), {}, None, "kept")
        resp = client.get("/")
        assert resp.status_code == 200
        assert 'id="no-moves"' in resp.text and "No production move yet." in resp.text
        assert 'class="move"' not in resp.text
        data = client.get("/api/history").json()
        assert data["promotions"] == [] and data["promotions_error"] is None
        assert len(data["versions"]) == versions
    assert 'id="v1"' in resp.text


def test_unreadable_promotion_log_keeps_the_versions(registry_home):
    """promotions() failing (a corrupt promotions.json) is shown in its section; the versions still render."""
    from fastapi.testclient import TestClient
    from news_signals.core.config import Settings
    from news_signals.core.storage import Storage
    from news_signals.registry import LocalRegistry

    (registry_home / "registry" / Settings().model_name / "promotions.json").write_text("{not json")
    client = TestClient(create_app(registry_factory=lambda name: LocalRegistry(name, Storage())))
    resp = client.get("/")
    assert resp.status_code == 200 and 'id="v4"' in resp.text and 'id="moves-error"' in resp.text
    data = client.get("/api/history").json()
    assert data["promotions"] == [] and data["promotions_error"] and data["production_version"] == 4


def test_hopsworks_production_moves_come_from_the_tag_history(monkeypatch, ns_home, tmp_path):
    """The Hopsworks backend, through the isolated worker (stand-in project of hsml autospecs): the tag history."""
    from news_signals.registry import get_registry
    from test_hopsworks_isolation import CONN, ROOT, fake_artifact

    monkeypatch.setenv("NEWS_SIGNALS_HOPSWORKS_STANDIN", "hopsworks_standin:login")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests" / "hopsworks_env"), os.environ["PYTHONPATH"]]))
    monkeypatch.setenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", CONN)
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "hopsworks")
    reg = get_registry("m")
    try:
        for v in (1, 2):
            reg.register(fake_artifact(tmp_path / str(v), f"w{v}".encode()), {"macro_f1": 0.5})
        reg.promote(1, "first", by="promotion gate")
        reg.promote(2, "better", by="promotion gate")
        reg.rollback(1, "v2 regressed on <weather>", "ada")

        h = load_history("m", registry_factory=lambda _name: reg)
        assert h.error is None and h.promotions == reg.promotions()
        assert [(m["action"], m["version"], m["previous"], m["by"]) for m in h.promotions] == [
            ("promote", 1, None, "promotion gate"), ("promote", 2, 1, "promotion gate"), ("rollback", 1, 2, "ada"),
        ]
        from news_signals.ops.web import render_page

        html = render_page(h)
        assert "v2 regressed on &lt;weather&gt;" in _moves_html(html)
    finally:
        reg.close()
