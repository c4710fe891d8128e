#!/usr/bin/env bash
# The parts of the official image's /entrypoint that docker-compose.yaml relies on:
#   - a uid with no passwd entry still gets a usable HOME;
#   - _AIRFLOW_DB_MIGRATE=true: wait for the metadata database, then `airflow db migrate`;
#   - the command runs as `airflow <args>` unless it is a program (bash, python, airflow, celery ...).
set -euo pipefail

if ! whoami >/dev/null 2>&1; then
  export HOME="${AIRFLOW_USER_HOME_DIR:-/home/airflow}"
fi

wait_for_db() {
  local tries="${CONNECTION_CHECK_MAX_COUNT:-20}" sleep_s="${CONNECTION_CHECK_SLEEP_TIME:-3}"
  [ "$tries" -gt 0 ] || return 0
  for ((i = 1; i <= tries; i++)); do
    if airflow db check >/dev/null 2>&1; then return 0; fi
    echo "entrypoint: metadata database not answering yet ($i/$tries)" >&2
    sleep "$sleep_s"
  done
  echo "entrypoint: the metadata database never answered; check AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" >&2
  airflow db check
}

if [ "${_AIRFLOW_DB_MIGRATE:-false}" = "true" ]; then
  wait_for_db
  airflow db migrate
fi

if [ $# -eq 0 ]; then set -- --help; fi
if [ "$1" = "airflow" ] || command -v "$1" >/dev/null 2>&1 && [[ "$1" != -* ]] && [ "$1" != "celery" ]; then
  exec "$@"
fi
exec airflow "$@"
